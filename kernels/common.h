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
#define QKK 256     // values per K-quant super-block (ggml QK_K)
#define Q4K_BYTES 144
#define Q5K_BYTES 176
#define Q6K_BYTES 210

static inline int is_kquant(int dt) { return dt == SYNTH_Q4_K || dt == SYNTH_Q5_K || dt == SYNTH_Q6_K; }
static inline int is_quant(int dt) { return dt == SYNTH_Q8_0 || dt == SYNTH_Q4_0 || is_kquant(dt); }
static inline int valid_dt(int dt) { return dt >= SYNTH_F32 && dt < SYNTH_NDT && dt != 5; }

// block_vals is the number of values per block (super-block for the K-quants), 1 for
// the plain types; block_bytes its raw size, pblock_bytes its size per row in a panel
// (kernels.h "weight packing").
static inline int64_t block_vals(int dt) { return is_kquant(dt) ? QKK : is_quant(dt) ? QK : 1; }
static inline int64_t block_bytes(int dt) {
	switch (dt) {
	case SYNTH_F32: return 4;
	case SYNTH_F16:
	case SYNTH_BF16: return 2;
	case SYNTH_Q8_0: return Q8_BYTES;
	case SYNTH_Q4_0: return Q4_BYTES;
	case SYNTH_Q4_K: return Q4K_BYTES;
	case SYNTH_Q5_K: return Q5K_BYTES;
	case SYNTH_Q6_K: return Q6K_BYTES;
	default: return -1;
	}
}
static inline int64_t pblock_bytes(int dt) {
	switch (dt) {
	case SYNTH_Q4_K: return 148;
	case SYNTH_Q5_K: return 180;
	default: return block_bytes(dt);
	}
}

// Offsets within a packed block of nr rows (kernels.h "weight packing").
#define PK_Q_OFF(nr) (2 * (nr))          // Q8_0, Q4_0: codes after the scales
#define PK4K_SC(nr) (4 * (nr))           // Q4_K, Q5_K: sc[8][nr]
#define PK4K_M(nr) (12 * (nr))           // m[8][nr]
#define PK4K_Q(nr) (20 * (nr))           // q[4][8][nr][4]
#define PK5K_H(nr) (148 * (nr))          // Q5_K: h[8][nr][4]
#define PK6K_SC(nr) (2 * (nr))           // Q6_K: sc[16][nr]
#define PK6K_Q(nr) (18 * (nr))           // q[4][8][nr][4]
#define PK6K_H(nr) (146 * (nr))          // h[2][8][nr][4]
// the byte of value l (0..31) of row j in a "[8][nr][4]" chunk
static inline int64_t chunk_at(int64_t nr, int64_t j, int64_t l) { return (l / 4 * nr + j) * 4 + l % 4; }

// The 6-bit scale and min of sub-block j of a K-quant's 12 scale bytes (ggml
// get_scale_min_k4): j < 4 in the low 6 bits of bytes j and j+4; j >= 4 split between
// the nibbles of byte j+4 and the top 2 bits of bytes j-4 and j.
static inline void kscale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *m) {
	if (j < 4) {
		*sc = q[j] & 63;
		*m = q[j + 4] & 63;
	} else {
		*sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
		*m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
	}
}

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

// quantize_x_block is the activation quantizer of the quantized-activation GEMM
// (kernels.h synth_qgemm_ref): 32 values x to q = rint(x * id) (ties to even), id = 1/d,
// d = amax/127, returning d; a block with amax below 2^-100 becomes zeros (d 0: its
// 1/d would overflow), one holding NaN or inf gives d NaN (its outputs are then NaN).
// |q| <= 127.
#define QX_TINY 0x1p-100f
static inline float quantize_x_block(const float *x, int8_t *q) {
	float amax = 0;
	int finite = 1;
	for (int l = 0; l < QK; l++) {
		finite &= isfinite(x[l]) != 0;
		amax = fmaxf(amax, fabsf(x[l]));
	}
	if (!finite) {
		memset(q, 0, QK);
		return NAN;
	}
	if (amax < QX_TINY) {
		memset(q, 0, QK);
		return 0;
	}
	float d = amax / 127.0f, id = 1.0f / d;
	for (int l = 0; l < QK; l++) q[l] = (int8_t)rintf(x[l] * id);
	return d;
}

// Internal, kquant.c: the K-quants' element values and block copies.
float synth_kvalue_raw(int dt, const uint8_t *blk, int64_t l);
float synth_kvalue_packed(int dt, const uint8_t *pb, int64_t nr, int64_t j, int64_t l);
int synth_kcode_packed(int dt, const uint8_t *pb, int64_t nr, int64_t j, int64_t l);
void synth_kpack(int dt, const uint8_t *blk, uint8_t *pb, int64_t nr, int64_t j);
void synth_kunpack(int dt, const uint8_t *pb, int64_t nr, int64_t j, uint8_t *blk);

static inline int bad_act(int act) { return act < SYNTH_ACT_NONE || act > SYNTH_ACT_RELU; }

#endif
