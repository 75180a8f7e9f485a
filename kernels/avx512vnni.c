// avx512vnni.c: the avx512 variants again, for CPUs with AVX512_VNNI: the integer dot
// products of the quantized-activation GEMM are vpdpbusd. Dispatch picks them as the
// avx512 family (kernels.h SYNTH_ISA_AVX512_VNNI).
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")
#define SYNTH_VNNI 1
#define ISA_SFX(name) name##_avx512_vnni
#include "avx512.h"

#include "simd.h"
