package kernels

/*
#cgo CFLAGS: -std=gnu11 -Wall -Wextra -Wno-unused-parameter
#cgo LDFLAGS: -lm
#include "kernels.h"
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// DType is the element type of a weight matrix (kernels.h has the block layouts).
type DType uint8

const (
	F32  DType = C.SYNTH_F32
	F16  DType = C.SYNTH_F16
	BF16 DType = C.SYNTH_BF16
	Q8_0 DType = C.SYNTH_Q8_0 // ggml block_q8_0: {f16 d; int8 qs[32]}, 34 bytes per 32 values
	Q4_0 DType = C.SYNTH_Q4_0 // ggml block_q4_0: {f16 d; uint8 qs[16]}, 18 bytes per 32 values
	Q4_K DType = C.SYNTH_Q4_K // ggml block_q4_K: 144 bytes per 256 values
	Q5_K DType = C.SYNTH_Q5_K // ggml block_q5_K: 176 bytes per 256 values
	Q6_K DType = C.SYNTH_Q6_K // ggml block_q6_K: 210 bytes per 256 values
)

func (d DType) String() string {
	switch d {
	case F32:
		return "F32"
	case F16:
		return "F16"
	case BF16:
		return "BF16"
	case Q8_0:
		return "Q8_0"
	case Q4_0:
		return "Q4_0"
	case Q4_K:
		return "Q4_K"
	case Q5_K:
		return "Q5_K"
	case Q6_K:
		return "Q6_K"
	}
	return fmt.Sprintf("DType(%d)", uint8(d))
}

// BlockSize is the number of values per block: 32 for Q8_0 and Q4_0, 256 for the
// K-quants, else 1.
func (d DType) BlockSize() int {
	switch d {
	case Q8_0, Q4_0:
		return 32
	case Q4_K, Q5_K, Q6_K:
		return 256
	}
	return 1
}

// Valid reports whether d is one of the dtypes above.
func (d DType) Valid() bool { return d <= Q4_0 || (d >= Q4_K && d <= Q6_K) }

// Quantized reports whether d is a block-quantized type (Q8_0, Q4_0, the K-quants): the
// types whose GEMM may quantize its activations (Set.QuantizesX).
func (d DType) Quantized() bool { return d.BlockSize() > 1 }

// RowBytes is the size in bytes of a row of k values of d (k a multiple of BlockSize).
func RowBytes(d DType, k int) int { return int(C.synth_row_bytes(C.int(d), C.int64_t(k))) }

// Act is an epilogue activation (formulas in kernels.h).
type Act uint8

const (
	ActNone      Act = C.SYNTH_ACT_NONE
	ActGELU      Act = C.SYNTH_ACT_GELU      // erf form
	ActGELUTanh  Act = C.SYNTH_ACT_GELU_TANH // tanh approximation
	ActQuickGELU Act = C.SYNTH_ACT_QUICKGELU // x * sigmoid(1.702 x)
	ActReLU      Act = C.SYNTH_ACT_RELU
)

func (a Act) String() string {
	switch a {
	case ActNone:
		return "none"
	case ActGELU:
		return "gelu"
	case ActGELUTanh:
		return "gelu_tanh"
	case ActQuickGELU:
		return "quick_gelu"
	case ActReLU:
		return "relu"
	}
	return fmt.Sprintf("Act(%d)", uint8(a))
}

// Valid reports whether a is one of the activations above.
func (a Act) Valid() bool { return a <= ActReLU }

const (
	// ScratchFloats is the per-worker scratch every kernel fits in.
	ScratchFloats = C.SYNTH_SCRATCH_FLOATS
	// MaxHeadDim is the largest attention head dimension the kernels take.
	MaxHeadDim = C.SYNTH_MAX_HEAD_DIM
)

// Mat is a 2-D f32 operand: Rows x Cols values, row r at Data[r*LD:], LD >= Cols.
type Mat struct {
	Data           []float32
	Rows, Cols, LD int
}

// Empty reports whether m has no storage: an absent optional operand.
func (m Mat) Empty() bool { return len(m.Data) == 0 }

// check verifies that m's rows fit its storage, so C never reads or writes past a slice.
// op and name say which operand, for the error.
func (m Mat) check(op, name string) error {
	return checkRows(op, name, "floats", len(m.Data), m.Rows, m.Cols, m.LD)
}

// checkRows is the check of a rows x cols operand with row stride ld held in n elements
// (unit names them in the error).
func checkRows(op, name, unit string, n, rows, cols, ld int) error {
	if rows < 0 || cols < 0 || ld < cols {
		return fmt.Errorf("kernels: %s %s: bad shape %dx%d with row stride %d", op, name, rows, cols, ld)
	}
	if rows > 0 && cols > 0 && n < (rows-1)*ld+cols {
		return fmt.Errorf("kernels: %s %s: %d %s cannot hold %dx%d with row stride %d", op, name, n, unit, rows, cols, ld)
	}
	return nil
}

func (m Mat) ptr() *C.float { return fptr(m.Data) }

func fptr(s []float32) *C.float {
	if len(s) == 0 {
		return nil
	}
	return (*C.float)(unsafe.Pointer(&s[0]))
}

func bptr(s []byte) unsafe.Pointer {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Pointer(&s[0])
}

// span is the address range [lo, hi) a Mat's rows cover.
func (m Mat) span() (lo, hi uintptr) {
	if m.Rows == 0 || m.Cols == 0 || len(m.Data) == 0 {
		return 0, 0
	}
	lo = uintptr(unsafe.Pointer(&m.Data[0]))
	return lo, lo + uintptr((m.Rows-1)*m.LD+m.Cols)*4
}

// Mat16 is a 2-D operand of IEEE binary16 values (an f16 KV cache): Rows x Cols halfs,
// row r at Data[r*LD:], LD >= Cols.
type Mat16 struct {
	Data           []uint16
	Rows, Cols, LD int
}

// check is Mat.check for halfs.
func (m Mat16) check(op, name string) error {
	return checkRows(op, name, "halfs", len(m.Data), m.Rows, m.Cols, m.LD)
}

func (m Mat16) span() (lo, hi uintptr) {
	if m.Rows == 0 || m.Cols == 0 || len(m.Data) == 0 {
		return 0, 0
	}
	lo = uintptr(unsafe.Pointer(&m.Data[0]))
	return lo, lo + uintptr((m.Rows-1)*m.LD+m.Cols)*2
}

func (m Mat16) ptr() unsafe.Pointer {
	if len(m.Data) == 0 {
		return nil
	}
	return unsafe.Pointer(&m.Data[0])
}

// overlaps reports whether two operands share any memory.
func overlaps(a, b Mat) bool {
	alo, ahi := a.span()
	blo, bhi := b.span()
	return spansOverlap(alo, ahi, blo, bhi)
}

func spansOverlap(alo, ahi, blo, bhi uintptr) bool { return alo < bhi && blo < ahi }

// sameView reports whether a and b are exactly the same storage and stride (allowed
// aliasing for in-place ops).
func sameView(a, b Mat) bool {
	alo, _ := a.span()
	blo, _ := b.span()
	return alo == blo && a.LD == b.LD && a.Rows == b.Rows && a.Cols == b.Cols
}

func status(op string, rc C.int) error {
	switch rc {
	case C.SYNTH_OK:
		return nil
	case C.SYNTH_EARG:
		return fmt.Errorf("kernels: %s: argument out of range", op)
	}
	return fmt.Errorf("kernels: %s: status %d", op, int(rc))
}

func checkThread(ith, nth int) error {
	if nth < 1 || ith < 0 || ith >= nth {
		return fmt.Errorf("kernels: worker %d of %d", ith, nth)
	}
	return nil
}
