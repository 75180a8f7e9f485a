package llamacpp

/*
#cgo CXXFLAGS: -std=c++17
#include <stdlib.h>
#include "quantize.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"unsafe"
)

// ErrQuantize marks a quantization llama.cpp refused or failed (its log says why).
var ErrQuantize = errors.New("llamacpp: quantize failed")

// FType is a llama.cpp file type (llama_ftype): what llama_model_quantize makes of a
// model, its weights in one type or in a per-tensor mix ("_S", "_M", "_L").
type FType int

// fileTypes are llama_ftype's values for the names llama-quantize accepts (llama.h).
var fileTypes = map[string]FType{
	"F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q8_0": 7, "Q5_0": 8, "Q5_1": 9, "Q2_K": 10, "Q3_K_S": 11,
	"Q3_K_M": 12, "Q3_K_L": 13, "Q4_K_S": 14, "Q4_K_M": 15, "Q5_K_S": 16, "Q5_K_M": 17, "Q6_K": 18,
	"IQ2_XXS": 19, "IQ2_XS": 20, "Q2_K_S": 21, "IQ3_XS": 22, "IQ3_XXS": 23, "IQ1_S": 24, "IQ4_NL": 25,
	"IQ3_S": 26, "IQ3_M": 27, "IQ2_S": 28, "IQ2_M": 29, "IQ4_XS": 30, "IQ1_M": 31, "BF16": 32,
	"TQ1_0": 36, "TQ2_0": 37,
	// llama-quantize's shorthands for the medium mixes
	"Q3_K": 12, "Q4_K": 15, "Q5_K": 17,
}

// needsIMatrix are the types llama.cpp quantizes only with an importance matrix.
var needsIMatrix = map[FType]bool{19: true, 20: true, 21: true, 24: true, 28: true, 31: true}

// ParseFType reads a file type name as llama-quantize spells it (Q4_K_M, q8_0, ...).
func ParseFType(s string) (FType, error) {
	if t, ok := fileTypes[strings.ToUpper(s)]; ok {
		return t, nil
	}
	names := make([]string, 0, len(fileTypes))
	for n := range fileTypes {
		names = append(names, n)
	}
	sort.Strings(names)
	return 0, fmt.Errorf("llamacpp: unknown file type %q (one of %s)", s, strings.Join(names, ", "))
}

// NeedsIMatrix reports whether llama.cpp quantizes to t only with an importance matrix.
func (t FType) NeedsIMatrix() bool { return needsIMatrix[t] }

// QuantizeParams say how Quantize works.
type QuantizeParams struct {
	Threads int // <= 0: every core
	// IMatrix is the importance of each input column per tensor name (the mean squared
	// activation llama-imatrix collects), or nil. A tensor without an entry is quantized
	// without one.
	IMatrix map[string][]float32
	// AllowRequantize lets quantized tensors of the input be quantized again (lossy twice).
	AllowRequantize bool
}

// Quantize writes the GGUF model at in to out as t with llama_model_quantize: the mix
// of per-tensor types llama.cpp's quantize tool makes for that file type.
func Quantize(in, out string, t FType, p QuantizeParams) error {
	if t.NeedsIMatrix() && len(p.IMatrix) == 0 {
		return fmt.Errorf("%w: file type %d needs an importance matrix", ErrQuantize, t)
	}
	BackendInit()
	defer BackendFree()
	cin, cout := C.CString(in), C.CString(out)
	defer C.free(unsafe.Pointer(cin))
	defer C.free(unsafe.Pointer(cout))
	// the importance matrix goes to C as arrays of C memory (names, pointers to values)
	n := len(p.IMatrix)
	var names **C.char
	var vals **C.float
	var lens *C.int64_t
	if n > 0 {
		keys := make([]string, 0, n)
		for k := range p.IMatrix {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		ptr := unsafe.Sizeof(uintptr(0))
		names = (**C.char)(C.malloc(C.size_t(n) * C.size_t(ptr)))
		vals = (**C.float)(C.malloc(C.size_t(n) * C.size_t(ptr)))
		lens = (*C.int64_t)(C.malloc(C.size_t(n) * 8))
		defer C.free(unsafe.Pointer(names))
		defer C.free(unsafe.Pointer(vals))
		defer C.free(unsafe.Pointer(lens))
		ns, vs, ls := unsafe.Slice(names, n), unsafe.Slice(vals, n), unsafe.Slice(lens, n)
		for i, k := range keys {
			v := p.IMatrix[k]
			ns[i] = C.CString(k)
			defer C.free(unsafe.Pointer(ns[i]))
			vs[i] = (*C.float)(C.malloc(C.size_t(max(len(v), 1)) * 4))
			defer C.free(unsafe.Pointer(vs[i]))
			copy(unsafe.Slice((*float32)(unsafe.Pointer(vs[i])), len(v)), v)
			ls[i] = C.int64_t(len(v))
		}
	}
	threads := p.Threads
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	allow := C.int(0)
	if p.AllowRequantize {
		allow = 1
	}
	stop := captureErrors()
	rc := C.synth_llama_quantize(cin, cout, C.int(t), C.int(threads), allow, names, vals, lens, C.int64_t(n))
	why := stop()
	switch rc {
	case 0:
		return nil
	case 1:
		if why == "" {
			why = "llama.cpp gave no reason"
		}
		return fmt.Errorf("%w: %s to %s as file type %d: %s", ErrQuantize, in, out, t, why)
	default:
		return fmt.Errorf("%w: %s: the C++ side failed before llama.cpp ran (out of memory?)", ErrQuantize, in)
	}
}
