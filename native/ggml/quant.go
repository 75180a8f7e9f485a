package ggml

/*
#cgo CPPFLAGS: -I${SRCDIR}/../../third_party/ggml/include
#include <stdint.h>
#include <string.h>
#include "ggml.h"
#include "ggml-cpu.h"

// to_f32 decodes n values of type t (ggml's to_float; F16 and BF16 through the CPU
// backend's vector conversions). Returns 0, or -1 when t has no conversion.
static int synth_ggml_to_f32(enum ggml_type t, const void *src, float *dst, int64_t n) {
	switch (t) {
	case GGML_TYPE_F32:
		memcpy(dst, src, (size_t)n * 4);
		return 0;
	case GGML_TYPE_F16:
		ggml_cpu_fp16_to_fp32((const ggml_fp16_t *)src, dst, n);
		return 0;
	case GGML_TYPE_BF16:
		ggml_cpu_bf16_to_fp32((const ggml_bf16_t *)src, dst, n);
		return 0;
	default: {
		const struct ggml_type_traits *tr = ggml_get_type_traits(t);
		if (tr == NULL || tr->to_float == NULL) return -1;
		tr->to_float(src, dst, n);
		return 0;
	}
	}
}
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	// compiles and links ggml (base + CPU backend); none of its Go code is used
	_ "github.com/ollama/ollama/ml/backend/ggml/ggml/src"

	"synth/weights"
)

var cpuInit sync.Once

// Codec is a weights.Codec over the linked ggml: decoding with ggml's converters and
// quantizing with ggml_quantize_chunk (no importance matrix: its reference quantizers,
// the bytes llama.cpp's quantize writes), split over Threads goroutines by whole rows.
type Codec struct {
	Threads int // <= 0: GOMAXPROCS
}

var _ weights.Codec = Codec{}

func (c Codec) threads() int {
	if c.Threads > 0 {
		return c.Threads
	}
	return runtime.GOMAXPROCS(0)
}

// ggmlType maps d to its ggml_type, refusing the types ggml cannot convert.
func ggmlType(d weights.DType) (C.enum_ggml_type, error) {
	t := d.GGMLType()
	if t < 0 || !d.IsFloat() {
		return 0, fmt.Errorf("ggml: %s has no ggml float conversion", d)
	}
	return C.enum_ggml_type(t), nil
}

// parallel runs f on [lo, hi) shares of n items (whole multiples of unit) on up to
// threads goroutines, at least minItems each.
func parallel(n, unit, threads, minItems int, f func(lo, hi int) error) error {
	parts := max(1, min(threads, n/max(minItems, 1)))
	units := n / unit
	errs := make([]error, parts)
	var wg sync.WaitGroup
	for p := range parts {
		lo, hi := units*p/parts*unit, units*(p+1)/parts*unit
		if p == parts-1 {
			hi = n
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[p] = f(lo, hi)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// ToF32 decodes n values of d from data (F32, F16, BF16 and every ggml type with a
// to_float) into a new slice.
func (c Codec) ToF32(d weights.DType, data []byte, n int) ([]float32, error) {
	t, err := ggmlType(d)
	if err != nil {
		return nil, err
	}
	size, err := d.ByteSize(int64(n))
	if err != nil {
		return nil, fmt.Errorf("ggml: decode: %w", err)
	}
	if int64(len(data)) != size {
		return nil, fmt.Errorf("ggml: decode %d values of %s from %d bytes, want %d", n, d, len(data), size)
	}
	out := make([]float32, n)
	if n == 0 {
		return out, nil
	}
	cpuInit.Do(func() { C.ggml_cpu_init() })
	bs, bb := d.BlockSize(), d.BlockBytes()
	err = parallel(n, bs, c.threads(), 1<<16, func(lo, hi int) error {
		if C.synth_ggml_to_f32(t, unsafe.Pointer(&data[lo/bs*bb]), (*C.float)(unsafe.Pointer(&out[lo])), C.int64_t(hi-lo)) != 0 {
			return fmt.Errorf("ggml: %s has no conversion to f32", d)
		}
		return nil
	})
	return out, err
}

// Quantize encodes rows x cols values of src as d with ggml_quantize_chunk: F32, F16,
// BF16 and ggml's quantized types that need no importance matrix. cols must be a
// multiple of d's block size.
func (c Codec) Quantize(d weights.DType, src []float32, rows, cols int) ([]byte, error) {
	size, err := d.ByteSize(int64(rows) * int64(cols))
	if err != nil || rows < 0 || cols < 0 {
		return nil, fmt.Errorf("ggml: quantize %d rows of %d to %s", rows, cols, d)
	}
	out := make([]byte, size)
	return out, c.QuantizeInto(d, src, rows, cols, out)
}

// QuantizeInto is Quantize writing into out (exactly the bytes of rows x cols of d).
func (c Codec) QuantizeInto(d weights.DType, src []float32, rows, cols int, out []byte) error {
	t, err := ggmlType(d)
	if err != nil {
		return err
	}
	if rows < 0 || cols < 0 || rows*cols != len(src) || cols%d.BlockSize() != 0 {
		return fmt.Errorf("ggml: quantize %d values as %d rows of %d to %s", len(src), rows, cols, d)
	}
	if bool(C.ggml_quantize_requires_imatrix(t)) {
		return fmt.Errorf("ggml: %s needs an importance matrix", d)
	}
	rowBytes := int(C.ggml_row_size(t, C.int64_t(cols)))
	if len(out) != rows*rowBytes {
		return fmt.Errorf("ggml: quantize %d rows of %d to %s into %d bytes, want %d", rows, cols, d, len(out), rows*rowBytes)
	}
	if rows == 0 || cols == 0 {
		return nil
	}
	return parallel(rows, 1, c.threads(), max(1, (1<<16)/cols), func(lo, hi int) error {
		n := C.ggml_quantize_chunk(t, (*C.float)(unsafe.Pointer(&src[0])), unsafe.Pointer(&out[0]),
			C.int64_t(lo*cols), C.int64_t(hi-lo), C.int64_t(cols), nil)
		if int(n) != (hi-lo)*rowBytes {
			return fmt.Errorf("ggml: quantize rows %d..%d to %s wrote %d bytes, want %d", lo, hi, d, int(n), (hi-lo)*rowBytes)
		}
		return nil
	})
}
