// common.h: helpers shared by the reference and SIMD kernels (not part of the API).
#ifndef SYNTH_COMMON_H
#define SYNTH_COMMON_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"

#define QK 32       // values per Q8_0 / Q4_0 block (ggml QK8_0, QK4_0)
#define Q8_BYTES 34 // sizeof(block_q8_0): f16 scale + 32 int8
#define Q4_BYTES 18 // sizeof(block_q4_0): f16 scale + 16 bytes of nibbles

// share splits [0, n) into nth nearly equal contiguous parts; part ith is [*lo, *hi).
static inline void share(int64_t n, int ith, int nth, int64_t *lo, int64_t *hi) {
	*lo = n * ith / nth;
	*hi = n * (ith + 1) / nth;
}

static inline int bad_thread(int ith, int nth) { return nth < 1 || ith < 0 || ith >= nth; }

static inline uint32_t f32_bits(float f) {
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

static inline float bits_f32(uint32_t u) {
	float f;
	memcpy(&f, &u, 4);
	return f;
}

// IEEE binary16 -> binary32, exact (subnormals, inf and NaN included).
static inline float f16_to_f32(uint16_t h) {
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t exp = (h >> 10) & 0x1f;
	uint32_t man = h & 0x3ff;
	if (exp == 0x1f) return bits_f32(sign | 0x7f800000 | (man << 13));
	if (exp != 0) return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
	// subnormal (or zero): man * 2^-24, exact in f32
	float v = (float)man * 0x1p-24f;
	return sign ? -v : v;
}

// binary32 -> binary16, round to nearest even; overflow gives inf, NaN gives the quiet
// NaN 0x7e00 with the sign kept (what ggml's software conversion returns).
static inline uint16_t f32_to_f16(float f) {
	uint32_t x = f32_bits(f);
	uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
	uint32_t ax = x & 0x7fffffff;
	if (ax > 0x7f800000) return sign | 0x7e00;
	if (ax >= 0x477ff000) return sign | 0x7c00; // >= 65520 rounds past the largest half, 65504
	if (ax >= 0x38800000) {                     // normal half: >= 2^-14
		uint32_t r = ax + 0x0fff + ((ax >> 13) & 1); // round to nearest even at bit 13
		return sign | (uint16_t)((r - 0x38000000) >> 13); // rebias exponent 127 -> 15
	}
	if (ax <= 0x33000000) return sign; // <= 2^-25: half of the smallest subnormal, ties to 0
	// subnormal half: value / 2^-24 rounded to nearest even
	uint32_t man = (ax & 0x7fffff) | 0x800000;
	int s = 126 - (int)(ax >> 23); // value = man * 2^(e-150) = (man >> s) * 2^-24
	uint32_t q = man >> s;
	uint32_t rem = man & ((1u << s) - 1);
	uint32_t half = 1u << (s - 1);
	if (rem > half || (rem == half && (q & 1))) q++;
	return sign | (uint16_t)q;
}

static inline float bf16_to_f32(uint16_t b) { return bits_f32((uint32_t)b << 16); }

// binary32 -> bfloat16, round to nearest even; NaN stays NaN (forced quiet), as ggml.
static inline uint16_t f32_to_bf16(float f) {
	uint32_t x = f32_bits(f);
	if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 0x40);
	return (uint16_t)((x + 0x7fff + ((x >> 16) & 1)) >> 16);
}

static inline uint16_t load_u16(const void *p) {
	uint16_t v;
	memcpy(&v, p, 2);
	return v;
}

// act_ref applies an epilogue activation in double precision (the specification).
static inline double act_ref(int act, double x) {
	switch (act) {
	case SYNTH_ACT_GELU:
		return 0.5 * x * (1.0 + erf(x * 0.70710678118654752440));
	case SYNTH_ACT_GELU_TANH:
		return 0.5 * x * (1.0 + tanh(0.79788456080286535588 * (x + 0.044715 * x * x * x)));
	case SYNTH_ACT_QUICKGELU:
		return x / (1.0 + exp(-1.702 * x));
	case SYNTH_ACT_RELU:
		return x < 0 ? 0 : x; // NaN passes through, as torch.relu
	default:
		return x;
	}
}

static inline int bad_act(int act) { return act < SYNTH_ACT_NONE || act > SYNTH_ACT_RELU; }

#endif
