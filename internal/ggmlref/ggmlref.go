// Package ggmlref exposes the linked ggml's own quantizers and dequantizers (the ones
// llama.cpp uses) so that tests can check our GGUF codecs and kernels bit for bit against
// them. It is imported by tests only; nothing at run time depends on it.
package ggmlref

/*
#cgo CPPFLAGS: -I${SRCDIR}/../../third_party/ggml/include
#include <stdint.h>
#include "ggml.h"

static int synth_ggmlref_to_float(enum ggml_type t, const void *src, float *dst, int64_t n) {
	const struct ggml_type_traits *tr = ggml_get_type_traits(t);
	if (tr == NULL || tr->to_float == NULL) return -1;
	tr->to_float(src, dst, n);
	return 0;
}
*/
import "C"

import (
	"fmt"
	"unsafe"

	// Compiles and links ggml (base + CPU backend); we use none of its Go code.
	_ "github.com/ollama/ollama/ml/backend/ggml/ggml/src"
)

// Type is a ggml tensor type id (the numbers GGUF files use).
type Type int

const (
	F32  Type = 0
	F16  Type = 1
	Q4_0 Type = 2
	Q4_1 Type = 3
	Q5_0 Type = 6
	Q5_1 Type = 7
	Q8_0 Type = 8
	Q2_K Type = 10
	Q3_K Type = 11
	Q4_K Type = 12
	Q5_K Type = 13
	Q6_K Type = 14
	BF16 Type = 30
)

// BlockSize is the number of values in one block of t.
func BlockSize(t Type) int { return int(C.ggml_blck_size(C.enum_ggml_type(t))) }

// TypeSize is the byte size of one block of t.
func TypeSize(t Type) int { return int(C.ggml_type_size(C.enum_ggml_type(t))) }

// RowSize is the byte size of a row of n values of t.
func RowSize(t Type, n int) int { return int(C.ggml_row_size(C.enum_ggml_type(t), C.int64_t(n))) }

// Quantize converts nrows rows of rowLen float32 values with ggml_quantize_chunk (no
// importance matrix). rowLen must be a multiple of BlockSize(t).
func Quantize(t Type, src []float32, nrows, rowLen int) ([]byte, error) {
	if nrows*rowLen != len(src) {
		return nil, fmt.Errorf("ggmlref: %d values for %d rows of %d", len(src), nrows, rowLen)
	}
	if bs := BlockSize(t); bs <= 0 || rowLen%bs != 0 {
		return nil, fmt.Errorf("ggmlref: row length %d is not a multiple of the block size %d of type %d", rowLen, bs, t)
	}
	if bool(C.ggml_quantize_requires_imatrix(C.enum_ggml_type(t))) {
		return nil, fmt.Errorf("ggmlref: type %d needs an importance matrix", t)
	}
	dst := make([]byte, nrows*RowSize(t, rowLen))
	if len(src) == 0 {
		return dst, nil
	}
	n := C.ggml_quantize_chunk(C.enum_ggml_type(t), (*C.float)(unsafe.Pointer(&src[0])), unsafe.Pointer(&dst[0]),
		0, C.int64_t(nrows), C.int64_t(rowLen), nil)
	if int(n) != len(dst) {
		return nil, fmt.Errorf("ggmlref: quantize wrote %d bytes, expected %d", int(n), len(dst))
	}
	return dst, nil
}

// Dequantize converts n values of type t stored in src to float32 with ggml's to_float.
func Dequantize(t Type, src []byte, n int) ([]float32, error) {
	if bs := BlockSize(t); bs <= 0 || n%bs != 0 {
		return nil, fmt.Errorf("ggmlref: %d values is not a multiple of the block size of type %d", n, t)
	}
	if need := RowSize(t, n); len(src) < need {
		return nil, fmt.Errorf("ggmlref: %d bytes for %d values of type %d, need %d", len(src), n, t, need)
	}
	dst := make([]float32, n)
	if n == 0 {
		return dst, nil
	}
	if C.synth_ggmlref_to_float(C.enum_ggml_type(t), unsafe.Pointer(&src[0]), (*C.float)(unsafe.Pointer(&dst[0])), C.int64_t(n)) != 0 {
		return nil, fmt.Errorf("ggmlref: type %d has no to_float", t)
	}
	return dst, nil
}
