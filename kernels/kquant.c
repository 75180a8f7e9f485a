// kquant.c: the K-quants (Q4_K, Q5_K, Q6_K) at load time: the reference quantizers,
// bit-exact with ggml's quantize_row_q{4,5,6}_K_ref (ggml-quants.c), the value of one
// element of a raw or packed block, and the copy of a super-block between its raw and
// its packed layout (kernels.h "weight packing").
//
// Bit-exactness: the searches below follow ggml's arithmetic operation for operation, in
// the same order and with the same expression shapes, so that the compiler makes the
// same choices as it does for ggml (which is built with the same flags): the same
// products fused into FMAs where the target has them, none where it does not. The tests
// compare every byte with the linked ggml's ggml_quantize_chunk.
#include <math.h>
#include <string.h>

#include "common.h"

#define EPS_ALL_ZERO 1e-15f // ggml GROUP_MAX_EPS: a group below it is all zeros

static inline int imax(int a, int b) { return a > b ? a : b; }
static inline int imin(int a, int b) { return a < b ? a : b; }

// round_int rounds to the nearest integer, ties to even, for |f| <= 2^22: adding 1.5*2^23
// leaves the integer in the low mantissa bits (ggml nearest_int).
static inline int round_int(float f) {
	float v = f + 12582912.f;
	int32_t i;
	memcpy(&i, &v, 4);
	return (i & 0x007fffff) - 0x00400000;
}

// fit_min_scale chooses, for n values x with weights w, codes L in [0, nmax] with a
// scale and a min such that x ~ scale*L - min (min >= 0 is returned in *neg_min), by
// trying the inverse scales (nmax + rmin + rdelta*is)/(max - min), is = 0..nsteps, and
// keeping the one with the least weighted squared error after a weighted least-squares
// refit (ggml make_qkx2_quants with use_mad false).
static float fit_min_scale(int n, int nmax, const float *x, const float *w, uint8_t *L, float *neg_min, uint8_t *Laux,
                           float rmin, float rdelta, int nsteps) {
	float lo = x[0], hi = x[0];
	float sw = w[0];
	float sx = sw * x[0];
	for (int i = 1; i < n; ++i) {
		if (x[i] < lo) lo = x[i];
		if (x[i] > hi) hi = x[i];
		float wi = w[i];
		sw += wi;
		sx += wi * x[i];
	}
	if (lo > 0) lo = 0;
	if (hi == lo) {
		for (int i = 0; i < n; ++i) L[i] = 0;
		*neg_min = -lo;
		return 0.f;
	}
	float iscale = nmax / (hi - lo);
	float scale = 1 / iscale;
	float best = 0;
	for (int i = 0; i < n; ++i) {
		int l = round_int(iscale * (x[i] - lo));
		L[i] = (uint8_t)imax(0, imin(nmax, l));
		float diff = scale * L[i] + lo - x[i];
		diff = diff * diff;
		float wi = w[i];
		best += wi * diff;
	}
	for (int is = 0; is <= nsteps; ++is) {
		iscale = (rmin + rdelta * is + nmax) / (hi - lo);
		float sl = 0, sl2 = 0, sxl = 0;
		for (int i = 0; i < n; ++i) {
			int l = round_int(iscale * (x[i] - lo));
			l = imax(0, imin(nmax, l));
			Laux[i] = (uint8_t)l;
			float wi = w[i];
			sl += wi * l;
			sl2 += wi * l * l;
			sxl += wi * l * x[i];
		}
		float det = sw * sl2 - sl * sl;
		if (det > 0) {
			float s = (sw * sxl - sx * sl) / det;
			float m = (sl2 * sx - sl * sxl) / det;
			if (m > 0) {
				m = 0;
				s = sxl / sl2;
			}
			float err = 0;
			for (int i = 0; i < n; ++i) {
				float diff = s * Laux[i] + m - x[i];
				diff = diff * diff;
				float wi = w[i];
				err += wi * diff;
			}
			if (err < best) {
				for (int i = 0; i < n; ++i) L[i] = Laux[i];
				best = err;
				scale = s;
				lo = m;
			}
		}
	}
	*neg_min = -lo;
	return scale;
}

// fit_sym_scale chooses signed codes L + nmax in [0, 2*nmax) for n values x with the
// weights x^2 (ggml make_qx_quants, rmse_type 1, no importance): the scale from the
// value of largest magnitude, then 18 nearby scales, keeping the best least-squares fit.
static float fit_sym_scale(int n, int nmax, const float *x, int8_t *L) {
	float mx = 0, amax = 0;
	for (int i = 0; i < n; ++i) {
		float ax = fabsf(x[i]);
		if (ax > amax) {
			amax = ax;
			mx = x[i];
		}
	}
	if (amax < EPS_ALL_ZERO) {
		for (int i = 0; i < n; ++i) L[i] = 0;
		return 0.f;
	}
	float iscale = -nmax / mx;
	float slx = 0, sl2 = 0;
	for (int i = 0; i < n; ++i) {
		int l = round_int(iscale * x[i]);
		l = imax(-nmax, imin(nmax - 1, l));
		L[i] = (int8_t)(l + nmax);
		float w = x[i] * x[i];
		slx += w * x[i] * l;
		sl2 += w * l * l;
	}
	float scale = sl2 ? slx / sl2 : 0.0f;
	float best = scale * slx;
	for (int is = -9; is <= 9; ++is) {
		if (is == 0) continue;
		iscale = -(nmax + 0.1f * is) / mx;
		slx = sl2 = 0;
		for (int i = 0; i < n; ++i) {
			int l = round_int(iscale * x[i]);
			l = imax(-nmax, imin(nmax - 1, l));
			float w = x[i] * x[i];
			slx += w * x[i] * l;
			sl2 += w * l * l;
		}
		if (sl2 > 0 && slx * slx > best * sl2) {
			for (int i = 0; i < n; ++i) {
				int l = round_int(iscale * x[i]);
				L[i] = (int8_t)(nmax + imax(-nmax, imin(nmax - 1, l)));
			}
			scale = slx / sl2;
			best = scale * slx;
		}
	}
	return scale;
}

// quantize_q45k quantizes 256 values to a Q4_K (nmax 15) or Q5_K (nmax 31) block: per
// sub-block of 32 a scale and min fitted with weights |x| + rms(x), both stored as 6-bit
// fractions of the block's largest (f16 d and dmin), then the codes recomputed with the
// stored scale and min (ggml quantize_row_q4_K_ref, _q5_K_ref).
static void quantize_q45k(const float *x, uint8_t *blk, int nmax) {
	uint8_t L[QKK], Laux[32];
	float w[32], mins[8], scales[8];
	float max_scale = 0, max_min = 0;
	for (int j = 0; j < 8; ++j) {
		const float *xs = x + 32 * j;
		float sum_x2 = 0;
		for (int l = 0; l < 32; ++l) sum_x2 += xs[l] * xs[l];
		float av_x = sqrtf(sum_x2 / 32);
		for (int l = 0; l < 32; ++l) w[l] = av_x + fabsf(xs[l]);
		scales[j] = nmax == 15 ? fit_min_scale(32, 15, xs, w, L + 32 * j, &mins[j], Laux, -1.f, 0.1f, 20)
		                       : fit_min_scale(32, 31, xs, w, L + 32 * j, &mins[j], Laux, -0.5f, 0.1f, 15);
		if (scales[j] > max_scale) max_scale = scales[j];
		if (mins[j] > max_min) max_min = mins[j];
	}
	uint8_t *sc = blk + 4;
	memset(sc, 0, 12);
	float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
	float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
	for (int j = 0; j < 8; ++j) {
		uint8_t ls = (uint8_t)round_int(inv_scale * scales[j]);
		uint8_t lm = (uint8_t)round_int(inv_min * mins[j]);
		ls = ls < 63 ? ls : 63;
		lm = lm < 63 ? lm : 63;
		if (j < 4) {
			sc[j] = ls;
			sc[j + 4] = lm;
		} else {
			sc[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
			sc[j - 4] |= (uint8_t)((ls >> 4) << 6);
			sc[j] |= (uint8_t)((lm >> 4) << 6);
		}
	}
	uint16_t d = f32_to_f16(max_scale / 63.f), dmin = f32_to_f16(max_min / 63.f);
	memcpy(blk, &d, 2);
	memcpy(blk + 2, &dmin, 2);
	for (int j = 0; j < 8; ++j) {
		uint8_t s, m;
		kscale_min(j, sc, &s, &m);
		const float dj = f16_to_f32(d) * s;
		if (!dj) continue;
		const float dm = f16_to_f32(dmin) * m;
		for (int ii = 0; ii < 32; ++ii) {
			int l = round_int((x[32 * j + ii] + dm) / dj);
			L[32 * j + ii] = (uint8_t)imax(0, imin(nmax, l));
		}
	}
	if (nmax == 15) {
		uint8_t *q = blk + 16;
		for (int p = 0; p < 4; ++p)
			for (int l = 0; l < 32; ++l) q[32 * p + l] = (uint8_t)(L[64 * p + l] | (L[64 * p + 32 + l] << 4));
		return;
	}
	uint8_t *qh = blk + 16, *ql = blk + 48;
	memset(qh, 0, 32);
	for (int p = 0; p < 4; ++p) {
		for (int l = 0; l < 32; ++l) {
			int l1 = L[64 * p + l], l2 = L[64 * p + 32 + l];
			if (l1 > 15) {
				l1 -= 16;
				qh[l] |= (uint8_t)(1 << (2 * p));
			}
			if (l2 > 15) {
				l2 -= 16;
				qh[l] |= (uint8_t)(2 << (2 * p));
			}
			ql[32 * p + l] = (uint8_t)(l1 | (l2 << 4));
		}
	}
}

// quantize_q6k quantizes 256 values to a Q6_K block: per sub-block of 16 a signed scale
// (fit_sym_scale, 6-bit codes), the scales as int8 fractions of the largest (f16 d), then
// the codes recomputed with the stored scales (ggml quantize_row_q6_K_ref).
static void quantize_q6k(const float *x, uint8_t *blk) {
	int8_t L[QKK];
	float scales[16];
	float max_scale = 0, max_abs = 0;
	for (int s = 0; s < 16; ++s) {
		const float scale = fit_sym_scale(16, 32, x + 16 * s, L + 16 * s);
		scales[s] = scale;
		const float as = fabsf(scale);
		if (as > max_abs) {
			max_abs = as;
			max_scale = scale;
		}
	}
	uint8_t *ql = blk, *qh = blk + 128;
	int8_t *sc = (int8_t *)(blk + 192);
	if (max_abs < EPS_ALL_ZERO) {
		memset(blk, 0, Q6K_BYTES); // d = +0
		return;
	}
	float iscale = -128.f / max_scale;
	uint16_t d = f32_to_f16(1 / iscale);
	memcpy(blk + 208, &d, 2);
	for (int s = 0; s < 16; ++s) sc[s] = (int8_t)imin(127, round_int(iscale * scales[s]));
	for (int s = 0; s < 16; ++s) {
		float ds = f16_to_f32(d) * sc[s];
		if (!ds) continue;
		for (int ii = 0; ii < 16; ++ii) {
			int l = round_int(x[16 * s + ii] / ds);
			L[16 * s + ii] = (int8_t)(imax(-32, imin(31, l)) + 32);
		}
	}
	for (int h = 0; h < 2; ++h) {
		const int8_t *Lh = L + 128 * h;
		for (int l = 0; l < 32; ++l) {
			ql[64 * h + l] = (uint8_t)((Lh[l] & 0xF) | ((Lh[l + 64] & 0xF) << 4));
			ql[64 * h + l + 32] = (uint8_t)((Lh[l + 32] & 0xF) | ((Lh[l + 96] & 0xF) << 4));
			qh[32 * h + l] = (uint8_t)((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) | ((Lh[l + 64] >> 4) << 4) |
			                           ((Lh[l + 96] >> 4) << 6));
		}
	}
}

void synth_quantize_k(int dt, const float *src, uint8_t *dst, int64_t nblocks) {
	int64_t bb = block_bytes(dt);
	for (int64_t b = 0; b < nblocks; b++) {
		if (dt == SYNTH_Q6_K) quantize_q6k(src + b * QKK, dst + b * bb);
		else quantize_q45k(src + b * QKK, dst + b * bb, dt == SYNTH_Q4_K ? 15 : 31);
	}
}

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
