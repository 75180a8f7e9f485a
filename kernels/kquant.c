// kquant.c: the K-quants (Q4_K, Q5_K, Q6_K) in the kernels: the value of one element
// of a raw or packed super-block, and the copy of a super-block between its raw and its
// packed layout (kernels.h "weight packing"). Quantizing to them is ggml's own code
// (native/ggml): its searches for scales and mins round differently wherever the compiler
// fuses or vectorizes differently, so a port cannot promise ggml's bytes.
#include <string.h>

#include "common.h"

// ---- element values -------------------------------------------------------------------
// The codes: Q4_K/Q5_K value l of a block is d*sc_c*q - dmin*m_c with c = l/32 (the
// product exact: an f16 times a 6-bit integer times a 5-bit one); Q6_K's d*sc_s*(q-32)
// with s = l/16 (exact too). One rounding, as ggml's dequantize_row_*.

float synth_kvalue_raw(int dt, const uint8_t *blk, int64_t l) {
	int c = (int)(l / 32), ll = (int)(l % 32);
	if (dt == SYNTH_Q6_K) {
		int h = c / 4, cc = c % 4;
		int lo = blk[64 * h + 32 * (cc & 1) + ll];
		int q = (cc >= 2 ? lo >> 4 : lo & 0xF) | ((blk[128 + 32 * h + ll] >> (2 * cc)) & 3) << 4;
		const float d = f16_to_f32(load_u16(blk + 208));
		return d * (int8_t)blk[192 + l / 16] * (float)(q - 32);
	}
	uint8_t sc, m;
	kscale_min(c, blk + 4, &sc, &m);
	const uint8_t *qs = blk + (dt == SYNTH_Q4_K ? 16 : 48);
	int lo = qs[32 * (c / 2) + ll];
	int q = c & 1 ? lo >> 4 : lo & 0xF;
	if (dt == SYNTH_Q5_K && (blk[16 + ll] >> c) & 1) q += 16;
	const float d1 = f16_to_f32(load_u16(blk)) * sc, m1 = f16_to_f32(load_u16(blk + 2)) * m;
	return (float)(d1 * (float)q) - m1;
}

// code_packed is the code of value l of row j in the packed super-block pb of nr rows:
// Q4_K 0..15, Q5_K 0..31, Q6_K 0..63 (value d*sc*(q - 32)).
int synth_kcode_packed(int dt, const uint8_t *pb, int64_t nr, int64_t j, int64_t l) {
	int c = (int)(l / 32);
	int64_t at = chunk_at(nr, j, l % 32);
	if (dt == SYNTH_Q6_K) {
		int h = c / 4, cc = c % 4;
		int lo = pb[PK6K_Q(nr) + (2 * h + (cc & 1)) * 32 * nr + at];
		return (cc >= 2 ? lo >> 4 : lo & 0xF) | ((pb[PK6K_H(nr) + h * 32 * nr + at] >> (2 * cc)) & 3) << 4;
	}
	int lo = pb[PK4K_Q(nr) + (c / 2) * 32 * nr + at];
	int q = c & 1 ? lo >> 4 : lo & 0xF;
	if (dt == SYNTH_Q5_K) q |= ((pb[PK5K_H(nr) + at] >> c) & 1) << 4;
	return q;
}

float synth_kvalue_packed(int dt, const uint8_t *pb, int64_t nr, int64_t j, int64_t l) {
	int q = synth_kcode_packed(dt, pb, nr, j, l);
	if (dt == SYNTH_Q6_K) {
		const float d = f16_to_f32(load_u16(pb + 2 * j));
		return d * (int8_t)pb[PK6K_SC(nr) + (l / 16) * nr + j] * (float)(q - 32);
	}
	int c = (int)(l / 32);
	const float d1 = f16_to_f32(load_u16(pb + 2 * j)) * pb[PK4K_SC(nr) + c * nr + j];
	const float m1 = f16_to_f32(load_u16(pb + 2 * nr + 2 * j)) * pb[PK4K_M(nr) + c * nr + j];
	return (float)(d1 * (float)q) - m1;
}

// ---- raw <-> packed ----------------------------------------------------------------------

// synth_kpack copies the raw super-block blk of row j into the packed super-block pb of
// nr rows (pb zeroed beforehand: the Q5_K/Q6_K high bits are or-ed in).
void synth_kpack(int dt, const uint8_t *blk, uint8_t *pb, int64_t nr, int64_t j) {
	if (dt == SYNTH_Q6_K) {
		memcpy(pb + 2 * j, blk + 208, 2);
		for (int s = 0; s < 16; s++) pb[PK6K_SC(nr) + s * nr + j] = blk[192 + s];
		for (int r = 0; r < 4; r++)
			for (int l = 0; l < 32; l++) pb[PK6K_Q(nr) + r * 32 * nr + chunk_at(nr, j, l)] = blk[32 * r + l];
		for (int h = 0; h < 2; h++)
			for (int l = 0; l < 32; l++) pb[PK6K_H(nr) + h * 32 * nr + chunk_at(nr, j, l)] = blk[128 + 32 * h + l];
		return;
	}
	memcpy(pb + 2 * j, blk, 2);
	memcpy(pb + 2 * nr + 2 * j, blk + 2, 2);
	for (int c = 0; c < 8; c++) {
		uint8_t sc, m;
		kscale_min(c, blk + 4, &sc, &m);
		pb[PK4K_SC(nr) + c * nr + j] = sc;
		pb[PK4K_M(nr) + c * nr + j] = m;
	}
	const uint8_t *qs = blk + (dt == SYNTH_Q4_K ? 16 : 48);
	for (int p = 0; p < 4; p++)
		for (int l = 0; l < 32; l++) pb[PK4K_Q(nr) + p * 32 * nr + chunk_at(nr, j, l)] = qs[32 * p + l];
	if (dt == SYNTH_Q5_K)
		for (int l = 0; l < 32; l++) pb[PK5K_H(nr) + chunk_at(nr, j, l)] = blk[16 + l];
}

// synth_kunpack is the inverse: row j's raw super-block from the packed one.
void synth_kunpack(int dt, const uint8_t *pb, int64_t nr, int64_t j, uint8_t *blk) {
	if (dt == SYNTH_Q6_K) {
		memcpy(blk + 208, pb + 2 * j, 2);
		for (int s = 0; s < 16; s++) blk[192 + s] = pb[PK6K_SC(nr) + s * nr + j];
		for (int r = 0; r < 4; r++)
			for (int l = 0; l < 32; l++) blk[32 * r + l] = pb[PK6K_Q(nr) + r * 32 * nr + chunk_at(nr, j, l)];
		for (int h = 0; h < 2; h++)
			for (int l = 0; l < 32; l++) blk[128 + 32 * h + l] = pb[PK6K_H(nr) + h * 32 * nr + chunk_at(nr, j, l)];
		return;
	}
	memcpy(blk, pb + 2 * j, 2);
	memcpy(blk + 2, pb + 2 * nr + 2 * j, 2);
	uint8_t *sc = blk + 4;
	memset(sc, 0, 12);
	for (int c = 0; c < 8; c++) {
		uint8_t ls = pb[PK4K_SC(nr) + c * nr + j], lm = pb[PK4K_M(nr) + c * nr + j];
		if (c < 4) {
			sc[c] |= ls & 63;
			sc[c + 4] |= lm & 63;
		} else {
			sc[c + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
			sc[c - 4] |= (uint8_t)((ls >> 4) << 6);
			sc[c] |= (uint8_t)((lm >> 4) << 6);
		}
	}
	uint8_t *qs = blk + (dt == SYNTH_Q4_K ? 16 : 48);
	for (int p = 0; p < 4; p++)
		for (int l = 0; l < 32; l++) qs[32 * p + l] = pb[PK4K_Q(nr) + p * 32 * nr + chunk_at(nr, j, l)];
	if (dt == SYNTH_Q5_K)
		for (int l = 0; l < 32; l++) blk[16 + l] = pb[PK5K_H(nr) + chunk_at(nr, j, l)];
}
