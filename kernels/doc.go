// Package kernels holds synth's CPU compute kernels, written in C and compiled by cgo.
//
// kernels.h documents every op (shapes, aliasing, threading, numerics). Each has a
// plain scalar reference, synth_<op>_<dtype>_ref in ref.c (the specification: obvious
// loops, double accumulators), and SIMD variants synth_<op>_<dtype>_<isa> for avx2
// (AVX2+FMA+F16C) and avx512 (F/BW/DQ/VL). The variants are one source, simd.h,
// compiled by avx2.c and avx512.c over a small vector vocabulary (and once more by
// avx512vnni.c, whose integer dot products are vpdpbusd, for CPUs with AVX512_VNNI), so
// all run the same algorithms; they are chosen once at start-up from the CPU features
// cpuid reports (Pick), and For gives any runnable variant to tests and benchmarks. im2col and the
// load-time conversions (quantize, dequantize, pack, unpack) are memory shuffles with one
// implementation for every variant.
//
// Kernels never start threads: each takes (ith, nth) and does that share of the op;
// package native runs one call per worker. C never prints or aborts and keeps no
// pointer; the Go wrappers (Set's methods) check every operand's extent against its
// slice before calling, so C never touches memory outside them.
//
// The GEMM variants read weights packed once at load (Pack) into panels of the
// micro-kernel's width, quantized blocks kept quantized. For the quantized types (Q8_0,
// Q4_0 and the K-quants Q4_K, Q5_K, Q6_K) they quantize the activations to 8 bits per 32
// values and use integer dot products (llama.cpp's approach: AVX2 vpmaddubsw, AVX-512
// VNNI vpdpbusd); QGEMMRef is that computation's specification and QuantizesX says
// where a variant does it. The panels are a complete copy of the weights, so a caller may keep them
// alone: Unpack rebuilds the raw rows bit for bit and GatherRows reads rows (embedding
// lookups) from panels of any width. Attention reads keys and values in f32 or f16 (an
// f16 KV cache, filled by StoreRowsF16). The parity harness (harness_test.go and the *_test.go beside it) runs every
// op for every variant at 1, 3 and 8 threads against the reference.
//
// kernels imports nothing of synth. Only package native imports kernels.
package kernels
