// avx2.c: the AVX2 + FMA + F16C variants. The kernels are simd.h, instantiated here over
// 8-lane vectors. AVX-512 is switched off even when -march=native has it: otherwise the
// compiler uses EVEX encodings and 32 registers here, and the "avx2" kernels measured on
// an AVX-512 machine (SYNTH_KERNELS=avx2) would not be what an AVX2-only CPU runs.
#pragma GCC target("avx2,fma,f16c,no-avx512f")
#include <immintrin.h>

#include "common.h"

#define ISA_SFX(name) name##_avx2
#define VL 8
#define NR SYNTH_NR_AVX2 // GEMM panel width: two vectors
#define NREG 16 // vector registers
#define MR 6             // GEMM micro-tile rows: 6 x 2 accumulators + 2 B + 1 broadcast of 16 ymm

typedef __m256 vf;
typedef __m256 vm; // compare results are all-ones / all-zeros lanes

#define vzero() _mm256_setzero_ps()
#define vset1(x) _mm256_set1_ps(x)
#define vload(p) _mm256_loadu_ps(p)
#define vstore(p, v) _mm256_storeu_ps(p, v)
#define vadd(a, b) _mm256_add_ps(a, b)
#define vsub(a, b) _mm256_sub_ps(a, b)
#define vmul(a, b) _mm256_mul_ps(a, b)
#define vdiv(a, b) _mm256_div_ps(a, b)
#define vmax(a, b) _mm256_max_ps(a, b) // b when either is NaN
#define vmin(a, b) _mm256_min_ps(a, b)
#define vfma(a, b, c) _mm256_fmadd_ps(a, b, c)   // a*b + c
#define vfnma(a, b, c) _mm256_fnmadd_ps(a, b, c) // c - a*b
#define vabs(a) _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a)
#define vround(a) _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define vtrunc(a) _mm256_round_ps(a, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC)
#define vor_sign(a, s) _mm256_or_ps(a, _mm256_and_ps(s, _mm256_set1_ps(-0.0f))) // a with s's sign bit or-ed in
#define vlt(a, b) _mm256_cmp_ps(a, b, _CMP_LT_OQ)
#define veq(a, b) _mm256_cmp_ps(a, b, _CMP_EQ_OQ)
#define visnan(a) _mm256_cmp_ps(a, a, _CMP_UNORD_Q)
#define vany(m) (_mm256_movemask_ps(m) != 0)
#define vfirst(m) __builtin_ctz((unsigned)_mm256_movemask_ps(m))
#define vsel(m, a, b) _mm256_blendv_ps(a, b, m) // m ? b : a, lane by lane
#define viota() _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7)
#define vpow2(n) _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23))

static inline float vhsum(vf a) {
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

static inline float vhmax(vf a) {
	__m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
	s = _mm_max_ps(s, _mm_movehl_ps(s, s));
	s = _mm_max_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

// out[0..3] = the sums of a, b, c and d
static inline void vhsum4(vf a, vf b, vf c, vf d, float *out) {
	__m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
	_mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1)));
}

// lanes(n): an integer mask of the first n lanes, for maskload/maskstore
static inline __m256i lanes(int64_t n) {
	static const int32_t tbl[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
	if (n < 0) n = 0;
	if (n > VL) n = VL;
	return _mm256_loadu_si256((const __m256i *)(tbl + VL - n));
}
static inline vf vloadn(const float *p, int64_t n) { return n >= VL ? vload(p) : _mm256_maskload_ps(p, lanes(n)); }
static inline void vstoren(float *p, vf v, int64_t n) {
	if (n >= VL) vstore(p, v);
	else if (n > 0) _mm256_maskstore_ps(p, lanes(n), v);
}

static inline vf vload_f16(const void *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
// n halfs (fewer than VL: the rest zero, nothing past them read) to f32, and f32 to n
// halfs rounding to nearest even (nothing past them written)
static inline vf vloadn_f16(const uint16_t *p, int64_t n) {
	if (n >= VL) return vload_f16(p);
	uint16_t t[VL] = {0};
	if (n > 0) memcpy(t, p, (size_t)n * 2);
	return vload_f16(t);
}
static inline void vstoren_f16(uint16_t *p, vf v, int64_t n) {
	__m128i h = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	if (n >= VL) {
		_mm_storeu_si128((__m128i *)p, h);
	} else if (n > 0) {
		uint16_t t[VL];
		_mm_storeu_si128((__m128i *)t, h);
		memcpy(p, t, (size_t)n * 2);
	}
}
static inline vf vload_bf16(const void *p) {
	return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}
static inline vf vload_i8(const void *p) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p))); }

// ---- integer vectors (the quantized-activation GEMM) ----------------------------------------

#define SYNTH_VNNI 0
typedef __m256i vi;
#define vi_zero() _mm256_setzero_si256()
#define vi_load(p) _mm256_loadu_si256((const __m256i *)(p))
#define vi_set1_u32(u) _mm256_set1_epi32((int)(u))
#define vi_set1_u8(b) _mm256_set1_epi8((char)(b))
#define vi_and(a, b) _mm256_and_si256(a, b)
#define vi_or(a, b) _mm256_or_si256(a, b)
#define vi_xor(a, b) _mm256_xor_si256(a, b)
#define vi_srl16(a, n) _mm256_srl_epi16(a, _mm_cvtsi32_si128(n))
#define vi_sll16(a, n) _mm256_sll_epi16(a, _mm_cvtsi32_si128(n))
#define vi_sub32(a, b) _mm256_sub_epi32(a, b)
#define vi_set1_i32(v) _mm256_set1_epi32(v)
#define vi_cvtf(a) _mm256_cvtepi32_ps(a)

// VL unsigned bytes to f32 (exact)
static inline vf vload_u8(const void *p) { return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p))); }

// vdot_us: acc + the sum of the 4 products u*s in each 32-bit lane, u unsigned and s
// signed bytes, through 16-bit pair sums (vpmaddubsw: u*s + u*s must stay below 2^15;
// the callers' codes are at most 63 against |s| <= 127). vdot_ss: the same for signed w
// against signed x (|w|, |x| <= 127): w's sign moves onto x (vpsignb), as ggml does.
static inline vi vdot_us(vi acc, vi u, vi s) {
	return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
}
static inline vi vdot_us_scaled(vi acc, vi u, vi s, vi sc) {
	return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), sc));
}
// vi_scale16: VL int8 scales, one per 32-bit lane, in both 16-bit halves of the lane
static inline vi vi_scale16(const void *p) {
	__m256i t = _mm256_and_si256(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)), _mm256_set1_epi32(0xffff));
	return _mm256_or_si256(t, _mm256_slli_epi32(t, 16));
}
static inline vi vdot_ss(vi acc, vi w, vi x) {
	return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w)),
	                                               _mm256_set1_epi16(1)));
}

// 16 floats (two vectors), already integral and within [-127, 127], to 16 int8
static inline void vstore_q8(int8_t *p, vf a, vf b) {
	__m256i w = _mm256_packs_epi32(_mm256_cvtps_epi32(a), _mm256_cvtps_epi32(b)); // a0-3 b0-3 a4-7 b4-7
	__m128i lo = _mm256_castsi256_si128(w), hi = _mm256_extracti128_si256(w, 1);
	__m128i bytes = _mm_packs_epi16(_mm_unpacklo_epi64(lo, hi), _mm_unpackhi_epi64(lo, hi)); // a0-7 b0-7
	_mm_storeu_si128((__m128i *)p, bytes);
}

#include "simd.h"
