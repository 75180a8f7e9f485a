package kernels

/*
#include "kernels.h"
*/
import "C"

import "fmt"

// StreamCopy does the share (ith, nth) of dst[i] = src[i] (the STREAM copy loop), to
// measure the machine's memory bandwidth next to the memory-bound kernels.
func StreamCopy(src, dst []float32, ith, nth int) {
	n := min(len(src), len(dst))
	if n == 0 || checkThread(ith, nth) != nil {
		return
	}
	C.synth_stream_copy(fptr(src), fptr(dst), C.int64_t(n), C.int(ith), C.int(nth))
}

// StreamRead returns the sum of the share (ith, nth) of src: a read-only sweep, the
// access pattern of a weight stream.
func StreamRead(src []float32, ith, nth int) float32 {
	if len(src) == 0 || checkThread(ith, nth) != nil {
		return 0
	}
	var s C.float
	C.synth_stream_read(fptr(src), C.int64_t(len(src)), &s, C.int(ith), C.int(nth))
	return float32(s)
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
