// Package kernels holds synth's CPU compute kernels, written in C and compiled by cgo.
//
// Every op has a plain scalar reference (synth_<op>_<dtype>_ref, the specification) and
// SIMD variants (synth_<op>_<dtype>_<isa>) selected once at start-up from the CPU
// features that github.com/klauspost/cpuid reports. Kernels never start threads: each
// takes (ith, nth) and the caller runs one call per worker.
//
// kernels imports nothing of synth. Only package native imports kernels.
package kernels
