// avx512.c: the AVX-512 variants (F/BW/DQ/VL; FMA and F16C for conversions). The
// kernels are simd.h, instantiated here over 16-lane vectors (avx512.h). VNNI is switched
// off even when -march=native has it, so that this flavour is what a CPU without it runs
// (avx512vnni.c is the one with it).
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c,no-avx512vnni")
#define SYNTH_VNNI 0
#define ISA_SFX(name) name##_avx512
#include "avx512.h"

#include "simd.h"
