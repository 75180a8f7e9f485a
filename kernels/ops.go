package kernels

/*
#include "kernels.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"
)

// Set is the kernels of one variant family. Its methods do the share (ith, nth) of an
// op: the caller runs one call per worker with the same arguments, concurrently. Every
// method checks that its operands fit their slices and returns an error when they do
// not, so a C kernel never touches memory outside them.
type Set struct {
	isa ISA
	idx C.int // SYNTH_ISA_* of isa, for the C dispatch tables (avx512 with VNNI: its own)
}

// For returns the kernels of isa, or an error when this binary or this CPU lacks it.
func For(isa ISA) (*Set, error) {
	if !Compiled(isa) {
		return nil, fmt.Errorf("kernels: variant %q is not compiled into this binary", isa)
	}
	if !supports(HostFeatures(), isa) {
		return nil, fmt.Errorf("kernels: this CPU cannot run variant %q", isa)
	}
	return newSet(isa, HostFeatures().AVX512VNNI), nil
}

// newSet returns the kernels of isa; vnni picks the avx512 kernels whose integer dot
// products use AVX512_VNNI (the CPU must have it).
func newSet(isa ISA, vnni bool) *Set {
	idx := C.SYNTH_ISA_REF
	switch isa {
	case ISAAVX2:
		idx = C.SYNTH_ISA_AVX2
	case ISAAVX512:
		idx = C.SYNTH_ISA_AVX512
		if vnni {
			idx = C.SYNTH_ISA_AVX512_VNNI
		}
	}
	return &Set{isa: isa, idx: C.int(idx)}
}

// Host returns the kernels dispatch picks for this CPU, or the ones EnvVariant names
// (HostChoice: an invalid value leaves Pick's).
func Host() *Set {
	isa, _ := HostChoice()
	return newSet(isa, HostFeatures().AVX512VNNI)
}

// ISA is the variant family of s.
func (s *Set) ISA() ISA { return s.isa }

// VNNI reports whether s's integer dot products use AVX512_VNNI.
func (s *Set) VNNI() bool { return s.idx == C.SYNTH_ISA_AVX512_VNNI }

// QuantizesX reports whether s's GEMM of dt weights with m rows of x quantizes x to 8
// bits (computes QGEMMRef's result rather than the plain reference's): the quantized
// types on the SIMD variants.
func (s *Set) QuantizesX(dt DType, m int) bool {
	return C.synth_gemm_quantizes_x(s.idx, C.int(dt), C.int64_t(m)) != 0
}

// PanelWidth is the number of weight rows per packed panel that s's GEMM wants for
// dtype dt (pass such panels in Weights.Packed), or 0 when it reads the raw rows.
func (s *Set) PanelWidth(dt DType) int {
	switch s.isa {
	case ISAAVX512:
		return C.SYNTH_NR_AVX512
	case ISAAVX2:
		return C.SYNTH_NR_AVX2
	}
	return 0
}

// Weights is a weight matrix W [N, K] as the kernels read it: its raw rows, or its
// panels, or both. The GEMM of a variant needs the layout it reads (PanelWidth: raw rows
// for ref, panels of its width otherwise); GatherRows reads either.
type Weights struct {
	DType DType
	N, K  int
	// Raw holds the rows of W in DType, row-major (ggml blocks for Q8_0/Q4_0), or is
	// empty. Any alignment; it may be memory-mapped file data.
	Raw []byte
	// Packed holds W in panels of PanelNR rows (Pack's layout, 64-byte aligned), or is
	// empty.
	Packed  []byte
	PanelNR int
}

// checkShape validates the dtype and shape, and every layout w holds against its size.
func (w *Weights) checkShape() error {
	if !w.DType.Valid() || w.N < 0 || w.K < 0 || w.K%w.DType.BlockSize() != 0 {
		return fmt.Errorf("kernels: weights %s [%d, %d]: bad dtype or shape", w.DType, w.N, w.K)
	}
	if len(w.Raw) > 0 && len(w.Raw) < w.N*RowBytes(w.DType, w.K) {
		return fmt.Errorf("kernels: weights %s [%d, %d]: %d bytes, need %d", w.DType, w.N, w.K, len(w.Raw), w.N*RowBytes(w.DType, w.K))
	}
	if len(w.Packed) > 0 {
		if w.PanelNR < 2 || w.PanelNR%2 != 0 || len(w.Packed) < PackedBytes(w.DType, w.N, w.K, w.PanelNR) {
			return fmt.Errorf("kernels: weights %s [%d, %d]: %d bytes in panels of %d, need %d", w.DType, w.N, w.K, len(w.Packed), w.PanelNR, PackedBytes(w.DType, w.N, w.K, w.PanelNR))
		}
		if uintptr(unsafe.Pointer(&w.Packed[0]))%64 != 0 {
			return fmt.Errorf("kernels: packed weights must be 64-byte aligned")
		}
	}
	return nil
}

// check validates w for s's GEMM: the layout s reads must be there.
func (w *Weights) check(s *Set) error {
	if err := w.checkShape(); err != nil {
		return err
	}
	empty := w.N == 0 || w.K == 0
	if nr := s.PanelWidth(w.DType); nr > 0 {
		if w.PanelNR != nr || (len(w.Packed) == 0 && !empty) {
			return fmt.Errorf("kernels: weights [%d, %d]: variant %s wants panels of %d rows, have %d bytes in panels of %d", w.N, w.K, s.isa, nr, len(w.Packed), w.PanelNR)
		}
	} else if len(w.Raw) == 0 && !empty {
		return fmt.Errorf("kernels: weights [%d, %d]: variant %s reads raw rows, have none", w.N, w.K, s.isa)
	}
	return nil
}

// stored returns the layout GatherRows reads: the panels when there are some (nr > 0),
// else the raw rows (nr 0).
func (w *Weights) stored() (data []byte, nr int, err error) {
	if err := w.checkShape(); err != nil {
		return nil, 0, err
	}
	if len(w.Packed) > 0 {
		return w.Packed, w.PanelNR, nil
	}
	if len(w.Raw) == 0 && w.N > 0 && w.K > 0 {
		return nil, 0, fmt.Errorf("kernels: weights [%d, %d] hold neither raw rows nor panels", w.N, w.K)
	}
	return w.Raw, 0, nil
}

// PackedBytes is the size of W [n, k] of dt packed in panels of nr rows (nr even).
func PackedBytes(dt DType, n, k, nr int) int {
	return int(C.synth_packed_bytes(C.int(dt), C.int64_t(n), C.int64_t(k), C.int64_t(nr)))
}

// Pack does the share (ith, nth) of packing the raw rows of W [n, k] of dt into panels
// of nr rows (kernels.h synth_pack); out holds PackedBytes(dt, n, k, nr) bytes.
func Pack(dt DType, raw []byte, n, k, nr int, out []byte, ith, nth int) error {
	if err := checkThread(ith, nth); err != nil {
		return err
	}
	if !dt.Valid() || nr < 2 || nr%2 != 0 || n < 0 || k < 0 || k%dt.BlockSize() != 0 ||
		len(raw) < n*RowBytes(dt, k) || len(out) < PackedBytes(dt, n, k, nr) {
		return fmt.Errorf("kernels: pack %s [%d, %d] in panels of %d: %d bytes in, %d bytes out", dt, n, k, nr, len(raw), len(out))
	}
	if n == 0 || k == 0 {
		return nil
	}
	return status("pack", C.synth_pack(C.int(dt), bptr(raw), C.int64_t(n), C.int64_t(k), C.int64_t(nr), bptr(out), C.int(ith), C.int(nth)))
}

// Unpack does the share (ith, nth) of rebuilding the raw rows of W [n, k] of dt from its
// panels of nr rows (kernels.h synth_unpack, bit-exact); out holds n*RowBytes(dt, k) bytes.
func Unpack(dt DType, packed []byte, n, k, nr int, out []byte, ith, nth int) error {
	if err := checkThread(ith, nth); err != nil {
		return err
	}
	if !dt.Valid() || nr < 2 || nr%2 != 0 || n < 0 || k < 0 || k%dt.BlockSize() != 0 ||
		len(packed) < PackedBytes(dt, n, k, nr) || len(out) < n*RowBytes(dt, k) {
		return fmt.Errorf("kernels: unpack %s [%d, %d] from panels of %d: %d bytes in, %d bytes out", dt, n, k, nr, len(packed), len(out))
	}
	if n == 0 || k == 0 {
		return nil
	}
	return status("unpack", C.synth_unpack(C.int(dt), bptr(packed), C.int64_t(n), C.int64_t(k), C.int64_t(nr), bptr(out), C.int(ith), C.int(nth)))
}

// Quantize converts f32 values to dt (bit-exact with ggml's reference quantizers):
// F32, F16, BF16, Q8_0, Q4_0 (the K-quants are ggml's to make: native/ggml); len(src)
// must be a multiple of dt's block size and dst hold RowBytes(dt, len(src)). It runs the
// host's vector quantizer where there is one (F16, Q8_0: the same bytes).
func Quantize(dt DType, src []float32, dst []byte) error { return hostQuant.Quantize(dt, src, dst) }

var hostQuant = Host()

// Quantize is the package's Quantize with s's quantizers (the reference's for ref).
func (s *Set) Quantize(dt DType, src []float32, dst []byte) error {
	n := len(src)
	if !dt.Valid() || n%dt.BlockSize() != 0 || len(dst) < RowBytes(dt, n) {
		return fmt.Errorf("kernels: quantize %d values to %s into %d bytes", n, dt, len(dst))
	}
	if dt.BlockSize() == 256 {
		return fmt.Errorf("kernels: quantize to %s: the K-quants are quantized by ggml (native/ggml)", dt)
	}
	if n == 0 {
		return nil
	}
	return status("quantize", C.synth_quantize(s.idx, C.int(dt), fptr(src), bptr(dst), C.int64_t(n)))
}

// Dequantize converts len(dst) values of dt from src to f32 (exact).
func Dequantize(dt DType, src []byte, dst []float32) error {
	n := len(dst)
	if !dt.Valid() || n%dt.BlockSize() != 0 || len(src) < RowBytes(dt, n) {
		return fmt.Errorf("kernels: dequantize %d values of %s from %d bytes", n, dt, len(src))
	}
	if n == 0 {
		return nil
	}
	return status("dequantize", C.synth_dequantize_ref(C.int(dt), bptr(src), fptr(dst), C.int64_t(n)))
}

// GEMM does y = act(x W^T + bias) + res (kernels.h synth_gemm_*). x: [M, K], y and res:
// [M, N]; bias has N values or none; res may be empty. y may be res itself (an in-place
// residual) only with ActNone. scratch: ScratchFloats floats, 64-byte aligned.
func (s *Set) GEMM(x Mat, w *Weights, bias []float32, act Act, res, y Mat, ith, nth int, scratch []float32) error {
	return s.GEMMShared(x, w, bias, act, res, y, ith, nth, scratch, nil)
}

// Work is the counter the nth calls of one GEMM share to hand out its work (kernels.h,
// GEMM's next). Reset it before the op's calls start and give each the same Work.
type Work struct{ next int64 }

// Reset readies w for the next op.
func (w *Work) Reset() { atomic.StoreInt64(&w.next, 0) }

// GEMMShared is GEMM with the work handed out from work (nil: the fixed shares) to
// whichever call asks first, so that a worker that runs slower holds up the op less. y
// is the same either way.
func (s *Set) GEMMShared(x Mat, w *Weights, bias []float32, act Act, res, y Mat, ith, nth int, scratch []float32, work *Work) error {
	if err := checkGEMM(s, x, w, bias, act, res, y, ith, nth); err != nil {
		return err
	}
	if err := checkScratch(scratch); err != nil {
		return err
	}
	if y.Rows == 0 || y.Cols == 0 {
		return nil
	}
	wp := bptr(w.Raw)
	if s.isa != ISARef {
		wp = bptr(w.Packed)
	}
	xa, ldx, bp, a, rp, ldr, yp, ldy, m, n, k := gemmArgs(x, w, bias, act, res, y)
	sc, ci, cn := fptr(scratch), C.int(ith), C.int(nth)
	var next *C.int64_t
	if work != nil {
		next = (*C.int64_t)(unsafe.Pointer(&work.next))
	}
	rc := C.synth_gemm(s.idx, C.int(w.DType), xa, ldx, wp, bp, a, rp, ldr, yp, ldy, m, n, k, sc, ci, cn, next)
	return status("gemm", rc)
}

// QGEMMRef is the specification of the GEMM with quantized activations (kernels.h
// synth_qgemm_ref) for a quantized weight type: x quantized to 8 bits per 32 values,
// then the reference's double sum over the exact weights. w needs its raw rows.
func QGEMMRef(x Mat, w *Weights, bias []float32, act Act, res, y Mat, ith, nth int) error {
	ref := newSet(ISARef, false)
	if err := checkGEMM(ref, x, w, bias, act, res, y, ith, nth); err != nil {
		return err
	}
	if !w.DType.Quantized() {
		return fmt.Errorf("kernels: qgemm: %s is not a quantized type", w.DType)
	}
	if y.Rows == 0 || y.Cols == 0 {
		return nil
	}
	xa, ldx, bp, a, rp, ldr, yp, ldy, m, n, k := gemmArgs(x, w, bias, act, res, y)
	rc := C.synth_qgemm_ref(C.int(w.DType), xa, ldx, bptr(w.Raw), bp, a, rp, ldr, yp, ldy, m, n, k, C.int(ith), C.int(nth))
	return status("qgemm", rc)
}

func gemmArgs(x Mat, w *Weights, bias []float32, act Act, res, y Mat) (xa *C.float, ldx C.int64_t, bp *C.float, a C.int,
	rp *C.float, ldr C.int64_t, yp *C.float, ldy, m, n, k C.int64_t) {
	return x.ptr(), C.int64_t(x.LD), fptr(bias), C.int(act), res.ptr(), C.int64_t(res.LD), y.ptr(), C.int64_t(y.LD),
		C.int64_t(x.Rows), C.int64_t(w.N), C.int64_t(w.K)
}

// checkGEMM validates a GEMM's operands for s.
func checkGEMM(s *Set, x Mat, w *Weights, bias []float32, act Act, res, y Mat, ith, nth int) error {
	if err := checkThread(ith, nth); err != nil {
		return err
	}
	if err := w.check(s); err != nil {
		return err
	}
	if err := x.check("gemm", "x"); err != nil {
		return err
	}
	if err := y.check("gemm", "y"); err != nil {
		return err
	}
	if x.Cols != w.K || y.Rows != x.Rows || y.Cols != w.N || !act.Valid() {
		return fmt.Errorf("kernels: gemm: x %dx%d, W [%d, %d], y %dx%d, act %d", x.Rows, x.Cols, w.N, w.K, y.Rows, y.Cols, act)
	}
	if len(bias) != 0 && len(bias) < w.N {
		return fmt.Errorf("kernels: gemm: %d bias values for %d outputs", len(bias), w.N)
	}
	if !res.Empty() {
		if err := res.check("gemm", "residual"); err != nil {
			return err
		}
		if res.Rows != y.Rows || res.Cols != y.Cols {
			return fmt.Errorf("kernels: gemm: residual %dx%d for output %dx%d", res.Rows, res.Cols, y.Rows, y.Cols)
		}
		if overlaps(res, y) && !(sameView(res, y) && act == ActNone) {
			return fmt.Errorf("kernels: gemm: output overlaps the residual (allowed only in place, without activation)")
		}
	}
	if overlaps(x, y) {
		return fmt.Errorf("kernels: gemm: output overlaps the input")
	}
	return nil
}

func checkScratch(scratch []float32) error {
	if len(scratch) < ScratchFloats || uintptr(unsafe.Pointer(&scratch[0]))%64 != 0 {
		return fmt.Errorf("kernels: scratch must be %d floats, 64-byte aligned", ScratchFloats)
	}
	return nil
}

// checkUnary validates an op that maps x to y of the same shape, y in place or apart.
func checkUnary(op string, x, y Mat) error {
	if err := x.check(op, "x"); err != nil {
		return err
	}
	if err := y.check(op, "y"); err != nil {
		return err
	}
	if x.Rows != y.Rows || x.Cols != y.Cols {
		return fmt.Errorf("kernels: %s: x %dx%d, y %dx%d", op, x.Rows, x.Cols, y.Rows, y.Cols)
	}
	if overlaps(x, y) && !sameView(x, y) {
		return fmt.Errorf("kernels: %s: output partly overlaps the input", op)
	}
	return nil
}

// LayerNorm normalises each row of x into y (torch.nn.LayerNorm, biased variance);
// gamma and beta have x.Cols values or none. y may be x.
func (s *Set) LayerNorm(x Mat, gamma, beta []float32, eps float32, y Mat, ith, nth int) error {
	if err := checkThread(ith, nth); err != nil {
		return err
	}
	if err := checkUnary("layernorm", x, y); err != nil {
		return err
	}
	if (len(gamma) != 0 && len(gamma) < x.Cols) || (len(beta) != 0 && len(beta) < x.Cols) {
		return fmt.Errorf("kernels: layernorm: %d gamma and %d beta values for rows of %d", len(gamma), len(beta), x.Cols)
	}
	if x.Rows == 0 || x.Cols == 0 {
		return nil
	}
	rc := C.synth_layernorm(s.idx, x.ptr(), C.int64_t(x.LD), fptr(gamma), fptr(beta), C.float(eps), y.ptr(), C.int64_t(y.LD), C.int64_t(x.Rows), C.int64_t(x.Cols), C.int(ith), C.int(nth))
	return status("layernorm", rc)
}

// Softmax computes the softmax (or, with log, the log-softmax) of scale*x over each row
// into y; y may be x. A row of all -inf becomes uniform.
func (s *Set) Softmax(x Mat, scale float32, log bool, y Mat, ith, nth int) error {
	if err := checkThread(ith, nth); err != nil {
		return err
	}
	if err := checkUnary("softmax", x, y); err != nil {
		return err
	}
	if x.Rows == 0 {
		return nil
	}
	if x.Cols == 0 {
		return fmt.Errorf("kernels: softmax over rows of 0 values")
	}
	lg := C.int(0)
	if log {
		lg = 1
	}
	rc := C.synth_softmax(s.idx, x.ptr(), C.int64_t(x.LD), y.ptr(), C.int64_t(y.LD), C.int64_t(x.Rows), C.int64_t(x.Cols), C.float(scale), lg, C.int(ith), C.int(nth))
	return status("softmax", rc)
}

// Activation applies act to x elementwise into y; y may be x.
func (s *Set) Activation(x Mat, act Act, y Mat, ith, nth int) error {
	if err := checkThread(ith, nth); err != nil {
		return err
	}
	if err := checkUnary("activation", x, y); err != nil {
		return err
	}
	if !act.Valid() {
		return fmt.Errorf("kernels: activation %d", act)
	}
	if x.Rows == 0 || x.Cols == 0 {
		return nil
	}
	rc := C.synth_act(s.idx, x.ptr(), C.int64_t(x.LD), y.ptr(), C.int64_t(y.LD), C.int64_t(x.Rows), C.int64_t(x.Cols), C.int(act), C.int(ith), C.int(nth))
	return status("activation", rc)
}

// Axpby computes y = alpha a + beta b, where row r of a uses row r mod b.Rows of b (b
// may have fewer rows: a broadcast) and an empty b means y = alpha a. y may be a or b.
func (s *Set) Axpby(a Mat, alpha float32, b Mat, beta float32, y Mat, ith, nth int) error {
	if err := checkThread(ith, nth); err != nil {
		return err
	}
	if err := checkUnary("axpby", a, y); err != nil {
		return err
	}
	if !b.Empty() {
		if err := b.check("axpby", "b"); err != nil {
			return err
		}
		if b.Cols != a.Cols || b.Rows < 1 || (a.Rows > 0 && a.Rows%b.Rows != 0) {
			return fmt.Errorf("kernels: axpby: b %dx%d does not broadcast to %dx%d", b.Rows, b.Cols, a.Rows, a.Cols)
		}
		if overlaps(b, y) && !sameView(b, y) {
			return fmt.Errorf("kernels: axpby: output partly overlaps b")
		}
	}
	if a.Rows == 0 || a.Cols == 0 {
		return nil
	}
	rc := C.synth_axpby(s.idx, a.ptr(), C.int64_t(a.LD), C.float(alpha), b.ptr(), C.int64_t(b.LD), C.int64_t(b.Rows), C.float(beta), y.ptr(), C.int64_t(y.LD), C.int64_t(a.Rows), C.int64_t(a.Cols), C.int(ith), C.int(nth))
	return status("axpby", rc)
}

// L2Normalize divides each row of x by its Euclidean norm (at least 1e-12) into y; y may
// be x.
func (s *Set) L2Normalize(x, y Mat, ith, nth int) error {
	if err := checkThread(ith, nth); err != nil {
		return err
	}
	if err := checkUnary("l2norm", x, y); err != nil {
		return err
	}
	if x.Rows == 0 || x.Cols == 0 {
		return nil
	}
	rc := C.synth_l2norm(s.idx, x.ptr(), C.int64_t(x.LD), y.ptr(), C.int64_t(y.LD), C.int64_t(x.Rows), C.int64_t(x.Cols), C.int(ith), C.int(nth))
	return status("l2norm", rc)
}

// Argmax writes the index of the largest value of each row of x to out[row] (the first
// on ties; a NaN wins, like torch.argmax).
func (s *Set) Argmax(x Mat, out []int64, ith, nth int) error {
	if err := checkThread(ith, nth); err != nil {
		return err
	}
	if err := x.check("argmax", "x"); err != nil {
		return err
	}
	if len(out) < x.Rows || (x.Rows > 0 && x.Cols == 0) {
		return fmt.Errorf("kernels: argmax: %d outputs for %dx%d", len(out), x.Rows, x.Cols)
	}
	if x.Rows == 0 {
		return nil
	}
	rc := C.synth_argmax(s.idx, x.ptr(), C.int64_t(x.LD), C.int64_t(x.Rows), C.int64_t(x.Cols), (*C.int64_t)(unsafe.Pointer(&out[0])), C.int(ith), C.int(nth))
	return status("argmax", rc)
}

// Im2col unfolds images img [b, c, h, w] into patch rows out [b*(h/p)*(w/p), c*p*p]
// (kernels.h synth_im2col_f32).
func (s *Set) Im2col(img []float32, b, c, h, w, p int, out []float32, ith, nth int) error {
	if err := checkThread(ith, nth); err != nil {
		return err
	}
	if b < 0 || c < 1 || p < 1 || h < p || w < p || len(img) < b*c*h*w || len(out) < b*(h/p)*(w/p)*c*p*p {
		return fmt.Errorf("kernels: im2col: image [%d, %d, %d, %d] (%d floats), patch %d, %d floats out", b, c, h, w, len(img), p, len(out))
	}
	if b == 0 {
		return nil
	}
	rc := C.synth_im2col_f32_ref(fptr(img), C.int64_t(b), C.int64_t(c), C.int64_t(h), C.int64_t(w), C.int64_t(p), fptr(out), C.int(ith), C.int(nth))
	return status("im2col", rc)
}

// SeqFields is the number of int64 values per sequence in an attention table:
// q_row0, nq, kv_row0, nk, qpos0, mask_off (kernels.h synth_attention_f32).
const SeqFields = 6

// Attention runs multi-head attention for the sequences in seq (SeqFields values each)
// with heads h of size d: o = softmax(scale q k^T, masked) v. mask holds one byte per key
// (0 = padded) at each sequence's mask_off, or is empty. q, k, v and o have rows of at
// least h*d values; o must not overlap the inputs. scratch: ScratchFloats floats.
func (s *Set) Attention(q, k, v, o Mat, seq []int64, mask []byte, h, d int, scale float32, causal bool, ith, nth int, scratch []float32) error {
	return s.attention(q, matOperand(k, "k"), matOperand(v, "v"), o, F32, seq, mask, h, d, scale, causal, ith, nth, scratch)
}

// AttentionF16 is Attention with keys and values in f16 (an f16 KV cache), widened to f32
// exactly as the kernel reads them.
func (s *Set) AttentionF16(q Mat, k, v Mat16, o Mat, seq []int64, mask []byte, h, d int, scale float32, causal bool, ith, nth int, scratch []float32) error {
	return s.attention(q, mat16Operand(k, "k"), mat16Operand(v, "v"), o, F16, seq, mask, h, d, scale, causal, ith, nth, scratch)
}

// kvOperand is the k or v of an attention call, f32 or f16.
type kvOperand struct {
	rows, cols, ld int
	ptr            unsafe.Pointer
	lo, hi         uintptr // the memory its rows cover
	err            error   // its check
}

func matOperand(m Mat, name string) kvOperand {
	lo, hi := m.span()
	return kvOperand{m.Rows, m.Cols, m.LD, unsafe.Pointer(m.ptr()), lo, hi, m.check("attention", name)}
}

func mat16Operand(m Mat16, name string) kvOperand {
	lo, hi := m.span()
	return kvOperand{m.Rows, m.Cols, m.LD, m.ptr(), lo, hi, m.check("attention", name)}
}

func (s *Set) attention(q Mat, k, v kvOperand, o Mat, kvdt DType, seq []int64, mask []byte, h, d int, scale float32, causal bool, ith, nth int, scratch []float32) error {
	if err := checkThread(ith, nth); err != nil {
		return err
	}
	if h < 1 || d < 1 || d > MaxHeadDim || len(seq)%SeqFields != 0 {
		return fmt.Errorf("kernels: attention: %d heads of %d (max %d), %d sequence fields", h, d, MaxHeadDim, len(seq))
	}
	if err := errors.Join(q.check("attention", "q"), k.err, v.err, o.check("attention", "o")); err != nil {
		return err
	}
	if min(q.Cols, k.cols, v.cols, o.Cols) < h*d {
		return fmt.Errorf("kernels: attention: q, k, v, o have %d, %d, %d, %d columns, heads need %d", q.Cols, k.cols, v.cols, o.Cols, h*d)
	}
	if q.Rows != o.Rows || k.rows != v.rows {
		return fmt.Errorf("kernels: attention: q %d rows, o %d rows, k %d rows, v %d rows", q.Rows, o.Rows, k.rows, v.rows)
	}
	olo, ohi := o.span()
	if overlaps(o, q) || spansOverlap(olo, ohi, k.lo, k.hi) || spansOverlap(olo, ohi, v.lo, v.hi) {
		return fmt.Errorf("kernels: attention: output overlaps an input")
	}
	for i := 0; i < len(seq); i += SeqFields {
		qr0, nq, kr0, nk, moff := seq[i], seq[i+1], seq[i+2], seq[i+3], seq[i+5]
		if qr0 < 0 || nq < 0 || kr0 < 0 || nk < 0 || qr0+nq > int64(q.Rows) || kr0+nk > int64(k.rows) ||
			(len(mask) > 0 && moff >= 0 && moff+nk > int64(len(mask))) {
			return fmt.Errorf("kernels: attention: sequence %d %v outside q (%d rows), k (%d rows) or mask (%d)", i/SeqFields, seq[i:i+SeqFields], q.Rows, k.rows, len(mask))
		}
	}
	if err := checkScratch(scratch); err != nil {
		return err
	}
	if len(seq) == 0 {
		return nil
	}
	cs := C.int(0)
	if causal {
		cs = 1
	}
	var mp *C.uint8_t
	if len(mask) > 0 {
		mp = (*C.uint8_t)(unsafe.Pointer(&mask[0]))
	}
	qp, ldq, kp, ldk, vp, ldv, op, ldo := q.ptr(), C.int64_t(q.LD), k.ptr, C.int64_t(k.ld), v.ptr, C.int64_t(v.ld), o.ptr(), C.int64_t(o.LD)
	sp, ns, ch, cd, sc := (*C.int64_t)(unsafe.Pointer(&seq[0])), C.int64_t(len(seq)/SeqFields), C.int64_t(h), C.int64_t(d), C.float(scale)
	scr, ci, cn := fptr(scratch), C.int(ith), C.int(nth)
	rc := C.synth_attention(s.idx, qp, ldq, kp, ldk, vp, ldv, op, ldo, sp, ns, mp, ch, cd, sc, cs, C.int(kvdt), scr, ci, cn)
	return status("attention", rc)
}

// GatherRows writes rows ids of W, dequantized to f32 (exact), into out: row i of out is
// row ids[i] of W (ids nil: row i). W is read from its panels when it has them
// (Weights.Packed, any panel width), else from its raw rows. out has K columns.
func (s *Set) GatherRows(w *Weights, ids []int32, out Mat, ith, nth int) error {
	if err := checkThread(ith, nth); err != nil {
		return err
	}
	if err := out.check("gather", "out"); err != nil {
		return err
	}
	data, nr, err := w.stored()
	if err != nil {
		return err
	}
	if out.Cols != w.K || (ids != nil && len(ids) != out.Rows) || (ids == nil && out.Rows > w.N) {
		return fmt.Errorf("kernels: gather: %d ids of W [%d, %d] into %dx%d", len(ids), w.N, w.K, out.Rows, out.Cols)
	}
	for _, id := range ids {
		if id < 0 || int(id) >= w.N {
			return fmt.Errorf("kernels: gather: row %d of W [%d, %d]", id, w.N, w.K)
		}
	}
	if out.Rows == 0 || out.Cols == 0 {
		return nil
	}
	var ip *C.int32_t
	if ids != nil {
		ip = (*C.int32_t)(unsafe.Pointer(&ids[0]))
	}
	rc := C.synth_gather_rows(s.idx, C.int(w.DType), bptr(data), C.int64_t(w.N), C.int64_t(w.K), C.int64_t(nr), ip, C.int64_t(out.Rows), out.ptr(), C.int64_t(out.LD), C.int(ith), C.int(nth))
	return status("gather", rc)
}

// StoreRowsF16 writes row r of x, rounded to f16 (to nearest even), to row dst[r] of y:
// appending to an f16 KV cache. The rows dst names must be distinct.
func (s *Set) StoreRowsF16(x Mat, dst []int64, y Mat16, ith, nth int) error {
	if err := checkThread(ith, nth); err != nil {
		return err
	}
	if err := x.check("store f16", "x"); err != nil {
		return err
	}
	if err := y.check("store f16", "y"); err != nil {
		return err
	}
	if len(dst) != x.Rows || y.Cols != x.Cols {
		return fmt.Errorf("kernels: store f16: %d destinations for %dx%d into %dx%d", len(dst), x.Rows, x.Cols, y.Rows, y.Cols)
	}
	for _, r := range dst {
		if r < 0 || r >= int64(y.Rows) {
			return fmt.Errorf("kernels: store f16: destination row %d of %d", r, y.Rows)
		}
	}
	xlo, xhi := x.span()
	ylo, yhi := y.span()
	if spansOverlap(xlo, xhi, ylo, yhi) {
		return fmt.Errorf("kernels: store f16: output overlaps the input")
	}
	if x.Rows == 0 || x.Cols == 0 {
		return nil
	}
	rc := C.synth_store_rows_f16(s.idx, x.ptr(), C.int64_t(x.LD), C.int64_t(x.Rows), C.int64_t(x.Cols), (*C.int64_t)(unsafe.Pointer(&dst[0])), (*C.uint16_t)(y.ptr()), C.int64_t(y.LD), C.int(ith), C.int(nth))
	return status("store f16", rc)
}
