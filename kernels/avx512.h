// avx512.h: the vector vocabulary of the AVX-512 variants (see simd.h), shared by
// avx512.c and avx512vnni.c, which differ only in the integer dot product.
#ifndef SYNTH_AVX512_H
#define SYNTH_AVX512_H
#include <immintrin.h>

#include "common.h"

#define VL 16
#define NR SYNTH_NR_AVX512 // GEMM panel width: two vectors
#define NREG 32 // vector registers
#define MR 12 // GEMM micro-tile rows: 12 x 2 accumulators + 2 B + 1 broadcast of 32 zmm

typedef __m512 vf;
typedef __mmask16 vm;

#define vzero() _mm512_setzero_ps()
#define vset1(x) _mm512_set1_ps(x)
#define vload(p) _mm512_loadu_ps(p)
#define vstore(p, v) _mm512_storeu_ps(p, v)
#define vadd(a, b) _mm512_add_ps(a, b)
#define vsub(a, b) _mm512_sub_ps(a, b)
#define vmul(a, b) _mm512_mul_ps(a, b)
#define vdiv(a, b) _mm512_div_ps(a, b)
#define vmax(a, b) _mm512_max_ps(a, b) // b when either is NaN
#define vmin(a, b) _mm512_min_ps(a, b)
#define vfma(a, b, c) _mm512_fmadd_ps(a, b, c)   // a*b + c
#define vfnma(a, b, c) _mm512_fnmadd_ps(a, b, c) // c - a*b
#define vabs(a) _mm512_abs_ps(a)
#define vround(a) _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define vtrunc(a) _mm512_roundscale_ps(a, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC)
#define vor_sign(a, s) _mm512_or_ps(a, _mm512_and_ps(s, _mm512_set1_ps(-0.0f))) // a with s's sign bit or-ed in
#define vlt(a, b) _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ)
#define veq(a, b) _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ)
#define visnan(a) _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q)
#define vany(m) ((m) != 0)
#define vfirst(m) __builtin_ctz((unsigned)(m))
#define vsel(m, a, b) _mm512_mask_blend_ps(m, a, b) // m ? b : a, lane by lane
#define vhsum(a) _mm512_reduce_add_ps(a)
#define vhmax(a) _mm512_reduce_max_ps(a)
// 2^n for integral n in [-126, 127] held in a float vector
#define vpow2(n) _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23))
// the lane numbers 0..VL-1 (compared with a count to mask the lanes past it)
#define viota() _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)

// out[0..3] = the sums of a, b, c and d (halves folded, then the AVX2 hadd tree)
static inline void vhsum4(vf a, vf b, vf c, vf d, float *out) {
#define HALVES(x) _mm256_add_ps(_mm512_castps512_ps256(x), _mm512_extractf32x8_ps(x, 1))
	__m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(HALVES(a), HALVES(b)), _mm256_hadd_ps(HALVES(c), HALVES(d)));
#undef HALVES
	_mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1)));
}

static inline vm lanes(int64_t n) { return n >= VL ? (vm)0xffff : n <= 0 ? (vm)0 : (vm)((1u << n) - 1); }
static inline vf vloadn(const float *p, int64_t n) { return n >= VL ? vload(p) : _mm512_maskz_loadu_ps(lanes(n), p); }
static inline void vstoren(float *p, vf v, int64_t n) {
	if (n >= VL) vstore(p, v);
	else if (n > 0) _mm512_mask_storeu_ps(p, lanes(n), v);
}

// VL weights of each kind, to f32 (exact)
static inline vf vload_f16(const void *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }
// n halfs (fewer than VL: masked, the rest zero) to f32, and f32 to n halfs rounding to
// nearest even (masked store)
static inline vf vloadn_f16(const uint16_t *p, int64_t n) {
	return n >= VL ? vload_f16(p) : _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(lanes(n), p));
}
static inline void vstoren_f16(uint16_t *p, vf v, int64_t n) {
	__m256i h = _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	if (n >= VL) _mm256_storeu_si256((__m256i *)p, h);
	else if (n > 0) _mm256_mask_storeu_epi16(p, lanes(n), h);
}
static inline vf vload_bf16(const void *p) {
	return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}
static inline vf vload_i8(const void *p) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)p))); }

// ---- integer vectors (the quantized-activation GEMM) ----------------------------------------

typedef __m512i vi;
#define vi_zero() _mm512_setzero_si512()
#define vi_load(p) _mm512_loadu_si512((const void *)(p))
#define vi_set1_u32(u) _mm512_set1_epi32((int)(u))
#define vi_set1_u8(b) _mm512_set1_epi8((char)(b))
#define vi_and(a, b) _mm512_and_si512(a, b)
#define vi_or(a, b) _mm512_or_si512(a, b)
#define vi_xor(a, b) _mm512_xor_si512(a, b)
#define vi_srl16(a, n) _mm512_srl_epi16(a, _mm_cvtsi32_si128(n))
#define vi_sll16(a, n) _mm512_sll_epi16(a, _mm_cvtsi32_si128(n))
#define vi_sub32(a, b) _mm512_sub_epi32(a, b)
#define vi_set1_i32(v) _mm512_set1_epi32(v)
#define vi_cvtf(a) _mm512_cvtepi32_ps(a)

// VL unsigned bytes to f32 (exact)
static inline vf vload_u8(const void *p) { return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p))); }

// vdot_us: acc + the sum of the 4 products u*s in each 32-bit lane, u unsigned and s
// signed bytes. Without VNNI through 16-bit pair sums (u*s + u*s must stay below 2^15:
// the callers' codes are at most 63 against |s| <= 127).
// vdot_ss: the same for signed w against signed x (|w|, |x| <= 127): w's sign moves onto
// x, so the pair sums stay within 2*127*127. With VNNI the callers instead offset signed
// codes by 128 (vi_xor 0x80) and use vdot_us, subtracting 128 * sum(x) per block.
#if SYNTH_VNNI
static inline vi vdot_us(vi acc, vi u, vi s) { return _mm512_dpbusd_epi32(acc, u, s); }
#else
static inline vi vdot_us(vi acc, vi u, vi s) {
	return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), _mm512_set1_epi16(1)));
}
#endif
// vdot_us_scaled: vdot_us with each lane's 16-bit pair sums multiplied by sc's 16-bit
// values instead of 1 (vpmaddwd), a per-row scale applied on the way (Q6_K)
static inline vi vdot_us_scaled(vi acc, vi u, vi s, vi sc) {
	return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), sc));
}
// vi_scale16: VL int8 scales, one per 32-bit lane, in both 16-bit halves of the lane
static inline vi vi_scale16(const void *p) {
	__m512i t = _mm512_and_si512(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)p)), _mm512_set1_epi32(0xffff));
	return _mm512_or_si512(t, _mm512_slli_epi32(t, 16));
}
static inline vi vdot_ss(vi acc, vi w, vi x) {
	__mmask64 neg = _mm512_movepi8_mask(w);
	vi sx = _mm512_mask_sub_epi8(x, neg, _mm512_setzero_si512(), x);
	return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(_mm512_abs_epi8(w), sx), _mm512_set1_epi16(1)));
}

// 32 floats (two vectors), already integral and within [-127, 127], to 32 int8
static inline void vstore_q8(int8_t *p, vf a, vf b) {
	_mm_storeu_si128((__m128i *)p, _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(a)));
	_mm_storeu_si128((__m128i *)(p + 16), _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(b)));
}

#endif
