package kernels

/*
#include "kernels.h"
*/
import "C"

import "fmt"

// StreamCopy does the share (ith, nth) of dst[i] = src[i] (the STREAM copy loop) with
// s's vectors, to measure the machine's memory bandwidth next to the memory-bound
// kernels. The ref variant has no probe (it would measure its own loop).
func (s *Set) StreamCopy(src, dst []float32, ith, nth int) error {
	n := min(len(src), len(dst))
	if err := checkThread(ith, nth); err != nil || n == 0 {
		return err
	}
	switch s.isa {
	case ISAAVX512:
		C.synth_stream_copy_avx512(fptr(src), fptr(dst), C.int64_t(n), C.int(ith), C.int(nth))
	case ISAAVX2:
		C.synth_stream_copy_avx2(fptr(src), fptr(dst), C.int64_t(n), C.int(ith), C.int(nth))
	default:
		return fmt.Errorf("kernels: no stream probe for %q", s.isa)
	}
	return nil
}

// StreamRead sums the share (ith, nth) of src with s's vectors: a read-only sweep, the
// access pattern of a weight stream.
func (s *Set) StreamRead(src []float32, ith, nth int) (float32, error) {
	if err := checkThread(ith, nth); err != nil || len(src) == 0 {
		return 0, err
	}
	var sum C.float
	switch s.isa {
	case ISAAVX512:
		C.synth_stream_read_avx512(fptr(src), C.int64_t(len(src)), &sum, C.int(ith), C.int(nth))
	case ISAAVX2:
		C.synth_stream_read_avx2(fptr(src), C.int64_t(len(src)), &sum, C.int(ith), C.int(nth))
	default:
		return 0, fmt.Errorf("kernels: no stream probe for %q", s.isa)
	}
	return float32(sum), nil
}

// FMAPeak runs iters rounds of FMAPeakFlops(isa) flops of register-only FMAs with isa's
// vectors (one core's FMA peak) and returns a value depending on all of them.
func FMAPeak(isa ISA, iters int64) (float32, error) {
	switch isa {
	case ISAAVX512:
		return float32(C.synth_fma_peak_avx512(C.int64_t(iters))), nil
	case ISAAVX2:
		return float32(C.synth_fma_peak_avx2(C.int64_t(iters))), nil
	}
	return 0, fmt.Errorf("kernels: no FMA peak probe for %q", isa)
}

// FMAPeakFlops is the number of flops per round of FMAPeak: 2 (multiply, add) x lanes x
// accumulators (2 x the GEMM micro-tile rows).
func FMAPeakFlops(isa ISA) int64 {
	switch isa {
	case ISAAVX512:
		return 2 * 16 * 24
	case ISAAVX2:
		return 2 * 8 * 12
	}
	return 0
}
