// ref.c: the reference kernels, the specification of every op (see kernels.h). Plain
// loops, double accumulators for long sums; speed is not a goal here.
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

int64_t synth_row_bytes(int dt, int64_t k) {
	if (!valid_dt(dt)) return -1;
	return k / block_vals(dt) * block_bytes(dt);
}

static int bad_dtype(int dt, int64_t k) { return !valid_dt(dt) || k % block_vals(dt) != 0; }

// ---- conversions and quantizers -------------------------------------------------------

// Q8_0 (ggml quantize_row_q8_0_ref): d = amax/127, id = 1/d (0 when d is 0),
// q = roundf(x*id) (half away from zero), d stored as f16. amax is taken as ggml's MAX
// macro takes it, so that a NaN gives ggml's bytes too (a NaN is kept until a later
// value replaces it).
static void quantize_q8_0(const float *x, uint8_t *blk) {
	float amax = 0;
	for (int j = 0; j < QK; j++) {
		float a = fabsf(x[j]);
		amax = amax > a ? amax : a;
	}
	float d = amax / 127;
	float id = d != 0 ? 1.0f / d : 0.0f;
	uint16_t dh = f32_to_f16(d);
	memcpy(blk, &dh, 2);
	for (int j = 0; j < QK; j++) blk[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
}

// Q4_0 (ggml quantize_row_q4_0_ref): d = m/-8 where m is the value of largest magnitude
// (its sign kept, first one on ties), q = min(15, trunc(x*id + 8.5)), element j in the
// low nibble of byte j and element j+16 in the high nibble.
static void quantize_q4_0(const float *x, uint8_t *blk) {
	float amax = 0, m = 0;
	for (int j = 0; j < QK; j++) {
		if (amax < fabsf(x[j])) {
			amax = fabsf(x[j]);
			m = x[j];
		}
	}
	float d = m / -8;
	float id = d != 0 ? 1.0f / d : 0.0f;
	uint16_t dh = f32_to_f16(d);
	memcpy(blk, &dh, 2);
	for (int j = 0; j < QK / 2; j++) {
		int lo = (int8_t)(x[j] * id + 8.5f);
		int hi = (int8_t)(x[j + QK / 2] * id + 8.5f);
		if (lo > 15) lo = 15;
		if (hi > 15) hi = 15;
		blk[2 + j] = (uint8_t)(lo | (hi << 4));
	}
}

int synth_quantize_ref(int dt, const float *src, void *dst, int64_t n) {
	if (bad_dtype(dt, n) || n < 0) return SYNTH_EARG;
	uint8_t *out = dst;
	switch (dt) {
	case SYNTH_F32:
		memcpy(dst, src, (size_t)n * 4);
		break;
	case SYNTH_F16:
		for (int64_t i = 0; i < n; i++) {
			uint16_t h = f32_to_f16(src[i]);
			memcpy(out + 2 * i, &h, 2);
		}
		break;
	case SYNTH_BF16:
		for (int64_t i = 0; i < n; i++) {
			uint16_t h = f32_to_bf16(src[i]);
			memcpy(out + 2 * i, &h, 2);
		}
		break;
	case SYNTH_Q8_0:
		for (int64_t b = 0; b < n / QK; b++) quantize_q8_0(src + b * QK, out + b * Q8_BYTES);
		break;
	case SYNTH_Q4_0:
		for (int64_t b = 0; b < n / QK; b++) quantize_q4_0(src + b * QK, out + b * Q4_BYTES);
		break;
	default: // the K-quants: ggml's quantizers (kquant.c)
		return SYNTH_EARG;
	}
	return SYNTH_OK;
}

// weight_at is element kk of a row of dt values (the dequantization formulas of
// kernels.h; every one is exact in f32 up to the one rounding ggml's has too).
static inline float weight_at(int dt, const uint8_t *row, int64_t kk) {
	switch (dt) {
	case SYNTH_F32: {
		float f;
		memcpy(&f, row + 4 * kk, 4);
		return f;
	}
	case SYNTH_F16:
		return f16_to_f32(load_u16(row + 2 * kk));
	case SYNTH_BF16:
		return bf16_to_f32(load_u16(row + 2 * kk));
	case SYNTH_Q8_0: {
		const uint8_t *blk = row + kk / QK * Q8_BYTES;
		return (float)(int8_t)blk[2 + kk % QK] * f16_to_f32(load_u16(blk));
	}
	case SYNTH_Q4_0: {
		const uint8_t *blk = row + kk / QK * Q4_BYTES;
		int j = (int)(kk % QK);
		int q = j < QK / 2 ? blk[2 + j] & 0x0f : blk[2 + j - QK / 2] >> 4;
		return (float)(q - 8) * f16_to_f32(load_u16(blk));
	}
	default:
		return synth_kvalue_raw(dt, row + kk / QKK * block_bytes(dt), kk % QKK);
	}
}

int synth_dequantize_ref(int dt, const void *src, float *dst, int64_t n) {
	if (bad_dtype(dt, n) || n < 0) return SYNTH_EARG;
	for (int64_t i = 0; i < n; i++) dst[i] = weight_at(dt, src, i);
	return SYNTH_OK;
}

// panel_bytes is the size of one panel of nr rows of k values (kernels.h "weight
// packing"): every block of every row, plus Q4_K/Q5_K's unpacked scales.
static int64_t panel_bytes(int dt, int64_t k, int64_t nr) { return k / block_vals(dt) * pblock_bytes(dt) * nr; }

int64_t synth_packed_bytes(int dt, int64_t n, int64_t k, int64_t nr) {
	if (bad_dtype(dt, k) || nr < 2 || nr % 2 != 0 || n < 0 || k < 0) return -1;
	return (n + nr - 1) / nr * panel_bytes(dt, k, nr);
}

// qblock is block b of a panel (Q8_0, Q4_0: 32 values; K-quants: 256), for nr rows.
static inline uint8_t *qblock(int dt, const uint8_t *panel, int64_t nr, int64_t b) {
	return (uint8_t *)panel + b * pblock_bytes(dt) * nr;
}

int synth_pack(int dt, const void *w, int64_t n, int64_t k, int64_t nr, void *out, int ith, int nth) {
	if (bad_thread(ith, nth) || synth_packed_bytes(dt, n, k, nr) < 0) return SYNTH_EARG;
	const uint8_t *wb = w;
	uint8_t *ob = out;
	int64_t rb = synth_row_bytes(dt, k), panel = panel_bytes(dt, k, nr), panels = (n + nr - 1) / nr, p0, p1;
	int64_t nb = k / block_vals(dt), bb = block_bytes(dt);
	share(panels, ith, nth, &p0, &p1);
	for (int64_t p = p0; p < p1; p++) {
		uint8_t *dst = ob + p * panel;
		memset(dst, 0, (size_t)panel);
		for (int64_t j = 0; j < nr && p * nr + j < n; j++) {
			const uint8_t *row = wb + (p * nr + j) * rb;
			switch (dt) {
			case SYNTH_F32:
			case SYNTH_F16:
			case SYNTH_BF16: {
				int64_t es = dt == SYNTH_F32 ? 4 : 2;
				for (int64_t kk = 0; kk < k; kk++) memcpy(dst + (kk * nr + j) * es, row + kk * es, (size_t)es);
				break;
			}
			case SYNTH_Q8_0:
				for (int64_t b = 0; b < nb; b++) {
					const uint8_t *blk = row + b * bb;
					uint8_t *pb = qblock(dt, dst, nr, b);
					memcpy(pb + 2 * j, blk, 2);
					for (int l = 0; l < QK; l++) pb[PK_Q_OFF(nr) + chunk_at(nr, j, l)] = blk[2 + l];
				}
				break;
			case SYNTH_Q4_0:
				for (int64_t b = 0; b < nb; b++) {
					const uint8_t *blk = row + b * bb;
					uint8_t *pb = qblock(dt, dst, nr, b);
					memcpy(pb + 2 * j, blk, 2);
					for (int l = 0; l < QK / 2; l++) pb[PK_Q_OFF(nr) + chunk_at(nr, j, l)] = blk[2 + l];
				}
				break;
			default:
				for (int64_t b = 0; b < nb; b++) synth_kpack(dt, row + b * bb, qblock(dt, dst, nr, b), nr, j);
				break;
			}
		}
	}
	return SYNTH_OK;
}

// packed_at is value kk of row j of a panel, exactly (the formulas of weight_at).
static inline float packed_at(int dt, const uint8_t *panel, int64_t nr, int64_t j, int64_t kk) {
	switch (dt) {
	case SYNTH_F32: {
		float f;
		memcpy(&f, panel + (kk * nr + j) * 4, 4);
		return f;
	}
	case SYNTH_F16:
		return f16_to_f32(load_u16(panel + (kk * nr + j) * 2));
	case SYNTH_BF16:
		return bf16_to_f32(load_u16(panel + (kk * nr + j) * 2));
	case SYNTH_Q8_0: {
		const uint8_t *pb = qblock(dt, panel, nr, kk / QK);
		return (float)(int8_t)pb[PK_Q_OFF(nr) + chunk_at(nr, j, kk % QK)] * f16_to_f32(load_u16(pb + 2 * j));
	}
	case SYNTH_Q4_0: {
		const uint8_t *pb = qblock(dt, panel, nr, kk / QK);
		int l = (int)(kk % QK);
		int byte = pb[PK_Q_OFF(nr) + chunk_at(nr, j, l % 16)];
		int q = l < 16 ? byte & 0x0f : byte >> 4;
		return (float)(q - 8) * f16_to_f32(load_u16(pb + 2 * j));
	}
	default:
		return synth_kvalue_packed(dt, qblock(dt, panel, nr, kk / QKK), nr, j, kk % QKK);
	}
}

int synth_unpack(int dt, const void *packed, int64_t n, int64_t k, int64_t nr, void *out, int ith, int nth) {
	if (bad_thread(ith, nth) || synth_packed_bytes(dt, n, k, nr) < 0) return SYNTH_EARG;
	int64_t rb = synth_row_bytes(dt, k), pbytes = panel_bytes(dt, k, nr), nb = k / block_vals(dt), bb = block_bytes(dt), r0, r1;
	share(n, ith, nth, &r0, &r1);
	for (int64_t r = r0; r < r1; r++) {
		const uint8_t *panel = (const uint8_t *)packed + r / nr * pbytes;
		int64_t j = r % nr;
		uint8_t *row = (uint8_t *)out + r * rb;
		switch (dt) {
		case SYNTH_F32:
		case SYNTH_F16:
		case SYNTH_BF16: {
			int64_t es = dt == SYNTH_F32 ? 4 : 2;
			for (int64_t kk = 0; kk < k; kk++) memcpy(row + kk * es, panel + (kk * nr + j) * es, (size_t)es);
			break;
		}
		case SYNTH_Q8_0:
		case SYNTH_Q4_0:
			for (int64_t b = 0; b < nb; b++) {
				const uint8_t *pb = qblock(dt, panel, nr, b);
				uint8_t *blk = row + b * bb;
				memcpy(blk, pb + 2 * j, 2);
				for (int l = 0; l < (dt == SYNTH_Q8_0 ? QK : QK / 2); l++) blk[2 + l] = pb[PK_Q_OFF(nr) + chunk_at(nr, j, l)];
			}
			break;
		default:
			for (int64_t b = 0; b < nb; b++) synth_kunpack(dt, qblock(dt, panel, nr, b), nr, j, row + b * bb);
			break;
		}
	}
	return SYNTH_OK;
}

// ---- row gather ---------------------------------------------------------------------------

int synth_gather_rows_ref(int dt, const void *w, int64_t n, int64_t k, int64_t nr, const int32_t *ids,
                          int64_t rows, float *out, int64_t ldo, int ith, int nth) {
	if (bad_thread(ith, nth) || bad_dtype(dt, k) || n < 0 || k < 0 || rows < 0 || nr < 0 || nr % 2 != 0) return SYNTH_EARG;
	int64_t rb = synth_row_bytes(dt, k), r0, r1;
	share(rows, ith, nth, &r0, &r1);
	for (int64_t r = r0; r < r1; r++) {
		int64_t id = ids ? ids[r] : r;
		if (id < 0 || id >= n) return SYNTH_EARG;
		float *o = out + r * ldo;
		if (nr == 0) {
			const uint8_t *row = (const uint8_t *)w + id * rb;
			for (int64_t kk = 0; kk < k; kk++) o[kk] = weight_at(dt, row, kk);
		} else {
			const uint8_t *panel = (const uint8_t *)w + id / nr * panel_bytes(dt, k, nr);
			for (int64_t kk = 0; kk < k; kk++) o[kk] = packed_at(dt, panel, nr, id % nr, kk);
		}
	}
	return SYNTH_OK;
}

// ---- f16 rows -----------------------------------------------------------------------------

int synth_store_rows_f16_ref(const float *x, int64_t ldx, int64_t rows, int64_t cols, const int64_t *dst,
                             uint16_t *y, int64_t ldy, int ith, int nth) {
	if (bad_thread(ith, nth) || rows < 0 || cols < 0) return SYNTH_EARG;
	int64_t r0, r1;
	share(rows, ith, nth, &r0, &r1);
	for (int64_t r = r0; r < r1; r++) {
		if (dst[r] < 0) return SYNTH_EARG;
		for (int64_t c = 0; c < cols; c++) y[dst[r] * ldy + c] = f32_to_f16(x[r * ldx + c]);
	}
	return SYNTH_OK;
}

// ---- GEMM ---------------------------------------------------------------------------------

// dot_exact is sum_kk x[kk] w[kk] over a row of k values of dt, in double.
static double dot_exact(int dt, const float *x, const uint8_t *row, int64_t k) {
	double acc = 0;
	for (int64_t kk = 0; kk < k; kk++) acc += (double)x[kk] * weight_at(dt, row, kk);
	return acc;
}

// dot_qx is dot_exact with x quantized per 32 values (quantize_x_block): sum over blocks
// of d * sum q w, in double.
static double dot_qx(int dt, const float *x, const uint8_t *row, int64_t k) {
	int8_t q[QK];
	double acc = 0;
	for (int64_t b = 0; b < k / QK; b++) {
		double d = quantize_x_block(x + b * QK, q), s = 0;
		for (int l = 0; l < QK; l++) s += (double)q[l] * weight_at(dt, row, b * QK + l);
		acc += d * s;
	}
	return acc;
}

// y[i][j] = act((float)(sum_kk x[i][kk] w[j][kk]) + bias[j]) + res[i][j], the sum in
// double (with qx, over x quantized: synth_qgemm_ref): the specification every variant
// is measured against.
static int gemm_ref(int dt, int qx, const float *x, int64_t ldx, const void *w, const float *bias,
                    int act, const float *res, int64_t ldr, float *y, int64_t ldy, int64_t m,
                    int64_t n, int64_t k, int ith, int nth) {
	if (bad_thread(ith, nth) || bad_dtype(dt, k) || bad_act(act) || m < 0 || n < 0 || k < 0) return SYNTH_EARG;
	if (qx && !is_quant(dt)) return SYNTH_EARG;
	if (res == y && (ldr != ldy || act != SYNTH_ACT_NONE)) return SYNTH_EARG;
	int64_t rb = synth_row_bytes(dt, k), j0, j1;
	share(n, ith, nth, &j0, &j1);
	for (int64_t j = j0; j < j1; j++) {
		const uint8_t *row = (const uint8_t *)w + j * rb;
		for (int64_t i = 0; i < m; i++) {
			float v = (float)(qx ? dot_qx(dt, x + i * ldx, row, k) : dot_exact(dt, x + i * ldx, row, k));
			if (bias) v += bias[j];
			v = (float)act_ref(act, v);
			if (res) v += res[i * ldr + j];
			y[i * ldy + j] = v;
		}
	}
	return SYNTH_OK;
}

#define GEMM_REF(name, dt)                                                                              \
	int name(const float *x, int64_t ldx, const void *w, const float *bias, int act, const float *res, \
	         int64_t ldr, float *y, int64_t ldy, int64_t m, int64_t n, int64_t k, float *scratch,      \
	         int ith, int nth, int64_t *next) {                                                         \
		(void)scratch, (void)next; /* the fixed shares */                                                \
		return gemm_ref(dt, 0, x, ldx, w, bias, act, res, ldr, y, ldy, m, n, k, ith, nth);             \
	}
GEMM_REF(synth_gemm_f32_ref, SYNTH_F32)
GEMM_REF(synth_gemm_f16_ref, SYNTH_F16)
GEMM_REF(synth_gemm_bf16_ref, SYNTH_BF16)
GEMM_REF(synth_gemm_q8_0_ref, SYNTH_Q8_0)
GEMM_REF(synth_gemm_q4_0_ref, SYNTH_Q4_0)
GEMM_REF(synth_gemm_q4_k_ref, SYNTH_Q4_K)
GEMM_REF(synth_gemm_q5_k_ref, SYNTH_Q5_K)
GEMM_REF(synth_gemm_q6_k_ref, SYNTH_Q6_K)

// The quantized-activation GEMM (kernels.h synth_qgemm_ref).
int synth_qgemm_ref(int dt, const float *x, int64_t ldx, const void *w, const float *bias, int act,
                    const float *res, int64_t ldr, float *y, int64_t ldy, int64_t m, int64_t n, int64_t k,
                    int ith, int nth) {
	return gemm_ref(dt, 1, x, ldx, w, bias, act, res, ldr, y, ldy, m, n, k, ith, nth);
}

// ---- row ops ------------------------------------------------------------------------------

// torch.nn.LayerNorm: mean and biased variance over the row, two passes in double.
int synth_layernorm_f32_ref(const float *x, int64_t ldx, const float *gamma, const float *beta,
                            float eps, float *y, int64_t ldy, int64_t rows, int64_t cols,
                            int ith, int nth) {
	if (bad_thread(ith, nth) || rows < 0 || cols < 1) return SYNTH_EARG;
	int64_t r0, r1;
	share(rows, ith, nth, &r0, &r1);
	for (int64_t r = r0; r < r1; r++) {
		const float *xr = x + r * ldx;
		float *yr = y + r * ldy;
		double mean = 0, var = 0;
		for (int64_t c = 0; c < cols; c++) mean += xr[c];
		mean /= (double)cols;
		for (int64_t c = 0; c < cols; c++) var += ((double)xr[c] - mean) * ((double)xr[c] - mean);
		var /= (double)cols;
		double inv = 1.0 / sqrt(var + (double)eps);
		for (int64_t c = 0; c < cols; c++) {
			double v = ((double)xr[c] - mean) * inv;
			if (gamma) v *= gamma[c];
			if (beta) v += beta[c];
			yr[c] = (float)v;
		}
	}
	return SYNTH_OK;
}

int synth_softmax_f32_ref(const float *x, int64_t ldx, float *y, int64_t ldy, int64_t rows,
                          int64_t cols, float scale, int logsm, int ith, int nth) {
	if (bad_thread(ith, nth) || rows < 0 || cols < 1) return SYNTH_EARG;
	int64_t r0, r1;
	share(rows, ith, nth, &r0, &r1);
	for (int64_t r = r0; r < r1; r++) {
		const float *xr = x + r * ldx;
		float *yr = y + r * ldy;
		double mx = -INFINITY;
		for (int64_t c = 0; c < cols; c++) mx = fmax(mx, (double)scale * xr[c]);
		if (mx == -INFINITY) { // every entry masked: uniform
			for (int64_t c = 0; c < cols; c++) yr[c] = logsm ? (float)-log((double)cols) : (float)(1.0 / (double)cols);
			continue;
		}
		double sum = 0;
		for (int64_t c = 0; c < cols; c++) sum += exp((double)scale * xr[c] - mx);
		double lsum = log(sum);
		for (int64_t c = 0; c < cols; c++) {
			double s = (double)scale * xr[c] - mx;
			yr[c] = logsm ? (float)(s - lsum) : (float)(exp(s) / sum);
		}
	}
	return SYNTH_OK;
}

int synth_act_f32_ref(const float *x, int64_t ldx, float *y, int64_t ldy, int64_t rows,
                      int64_t cols, int act, int ith, int nth) {
	if (bad_thread(ith, nth) || bad_act(act) || rows < 0 || cols < 0) return SYNTH_EARG;
	int64_t r0, r1;
	share(rows, ith, nth, &r0, &r1);
	for (int64_t r = r0; r < r1; r++)
		for (int64_t c = 0; c < cols; c++) y[r * ldy + c] = (float)act_ref(act, x[r * ldx + c]);
	return SYNTH_OK;
}

int synth_axpby_f32_ref(const float *a, int64_t lda, float alpha, const float *b, int64_t ldb,
                        int64_t brows, float beta, float *y, int64_t ldy, int64_t rows,
                        int64_t cols, int ith, int nth) {
	if (bad_thread(ith, nth) || rows < 0 || cols < 0 || (b && brows < 1)) return SYNTH_EARG;
	int64_t r0, r1;
	share(rows, ith, nth, &r0, &r1);
	for (int64_t r = r0; r < r1; r++) {
		const float *br = b ? b + (r % brows) * ldb : NULL;
		for (int64_t c = 0; c < cols; c++) {
			float v = alpha * a[r * lda + c];
			if (br) v += beta * br[c];
			y[r * ldy + c] = v;
		}
	}
	return SYNTH_OK;
}

int synth_l2norm_f32_ref(const float *x, int64_t ldx, float *y, int64_t ldy, int64_t rows,
                         int64_t cols, int ith, int nth) {
	if (bad_thread(ith, nth) || rows < 0 || cols < 0) return SYNTH_EARG;
	int64_t r0, r1;
	share(rows, ith, nth, &r0, &r1);
	for (int64_t r = r0; r < r1; r++) {
		double ss = 0;
		for (int64_t c = 0; c < cols; c++) ss += (double)x[r * ldx + c] * x[r * ldx + c];
		double inv = 1.0 / fmax(sqrt(ss), 1e-12);
		for (int64_t c = 0; c < cols; c++) y[r * ldy + c] = (float)(x[r * ldx + c] * inv);
	}
	return SYNTH_OK;
}

int synth_argmax_f32_ref(const float *x, int64_t ldx, int64_t rows, int64_t cols,
                         int64_t *out, int ith, int nth) {
	if (bad_thread(ith, nth) || rows < 0 || cols < 1) return SYNTH_EARG;
	int64_t r0, r1;
	share(rows, ith, nth, &r0, &r1);
	for (int64_t r = r0; r < r1; r++) {
		const float *xr = x + r * ldx;
		int64_t best = 0;
		for (int64_t c = 0; c < cols; c++) {
			if (isnan(xr[c])) {
				best = c;
				break;
			}
			if (xr[c] > xr[best]) best = c;
		}
		out[r] = best;
	}
	return SYNTH_OK;
}

// ---- patch embedding --------------------------------------------------------------------

int synth_im2col_f32_ref(const float *img, int64_t b, int64_t c, int64_t h, int64_t w,
                         int64_t p, float *out, int ith, int nth) {
	if (bad_thread(ith, nth) || b < 0 || c < 1 || p < 1 || h < p || w < p) return SYNTH_EARG;
	int64_t gh = h / p, gw = w / p, cols = c * p * p, r0, r1;
	share(b * gh * gw, ith, nth, &r0, &r1);
	for (int64_t r = r0; r < r1; r++) {
		int64_t bi = r / (gh * gw), gy = r / gw % gh, gx = r % gw;
		for (int64_t ci = 0; ci < c; ci++)
			for (int64_t ky = 0; ky < p; ky++)
				for (int64_t kx = 0; kx < p; kx++)
					out[r * cols + (ci * p + ky) * p + kx] = img[((bi * c + ci) * h + gy * p + ky) * w + gx * p + kx];
	}
	return SYNTH_OK;
}

// ---- attention --------------------------------------------------------------------------

// attn_valid says whether query position pos sees key j of the sequence.
static inline int attn_valid(const uint8_t *mask, int64_t mask_off, int causal, int64_t pos, int64_t j) {
	if (causal && j > pos) return 0;
	return !(mask && mask_off >= 0 && !mask[mask_off + j]);
}

// kv_at is element i of a row of k or v in kvdt (f16 widened exactly).
static inline double kv_at(const void *row, int kvdt, int64_t i) {
	if (kvdt == SYNTH_F16) return f16_to_f32(((const uint16_t *)row)[i]);
	return ((const float *)row)[i];
}

// kv_row is element off of row j of k or v (rows ld elements apart).
static inline const void *kv_row(const void *base, int kvdt, int64_t ld, int64_t j, int64_t off) {
	int64_t es = kvdt == SYNTH_F16 ? 2 : 4;
	return (const uint8_t *)base + (j * ld + off) * es;
}

static double dot_ref(const float *a, const void *b, int kvdt, int64_t d) {
	double s = 0;
	for (int64_t i = 0; i < d; i++) s += (double)a[i] * kv_at(b, kvdt, i);
	return s;
}

// Two passes per query (the textbook softmax): the max of the valid scores, then
// o = sum_j exp(s_j - max) v_j / sum_j exp(s_j - max), all in double.
int synth_attention_f32_ref(const float *q, int64_t ldq, const void *k, int64_t ldk,
                            const void *v, int64_t ldv, float *o, int64_t ldo,
                            const int64_t *seq, int64_t nseq, const uint8_t *mask,
                            int64_t h, int64_t d, float scale, int causal, int kvdt,
                            float *scratch, int ith, int nth) {
	(void)scratch;
	if (bad_thread(ith, nth) || nseq < 0 || h < 1 || d < 1 || d > SYNTH_MAX_HEAD_DIM) return SYNTH_EARG;
	if (kvdt != SYNTH_F32 && kvdt != SYNTH_F16) return SYNTH_EARG;
	int64_t units = 0;
	for (int64_t s = 0; s < nseq; s++) units += seq[6 * s + 1] * h;
	int64_t u0, u1, u = 0;
	share(units, ith, nth, &u0, &u1);
	double acc[SYNTH_MAX_HEAD_DIM];
	for (int64_t s = 0; s < nseq; s++) {
		const int64_t *sq = seq + 6 * s;
		int64_t qr0 = sq[0], nq = sq[1], kr0 = sq[2], nk = sq[3], qpos0 = sq[4], moff = sq[5];
		for (int64_t i = 0; i < nq; i++) {
			for (int64_t hd = 0; hd < h; hd++, u++) {
				if (u < u0 || u >= u1) continue;
				const float *qi = q + (qr0 + i) * ldq + hd * d;
				float *oi = o + (qr0 + i) * ldo + hd * d;
				int64_t pos = qpos0 + i;
				double mx = -INFINITY;
				for (int64_t j = 0; j < nk; j++)
					if (attn_valid(mask, moff, causal, pos, j))
						mx = fmax(mx, (double)scale * dot_ref(qi, kv_row(k, kvdt, ldk, kr0 + j, hd * d), kvdt, d));
				for (int64_t c = 0; c < d; c++) acc[c] = 0;
				double sum = 0;
				for (int64_t j = 0; j < nk; j++) {
					double p;
					if (mx == -INFINITY) p = 1; // no valid key: uniform over all nk
					else if (attn_valid(mask, moff, causal, pos, j))
						p = exp((double)scale * dot_ref(qi, kv_row(k, kvdt, ldk, kr0 + j, hd * d), kvdt, d) - mx);
					else continue;
					sum += p;
					const void *vj = kv_row(v, kvdt, ldv, kr0 + j, hd * d);
					for (int64_t c = 0; c < d; c++) acc[c] += p * kv_at(vj, kvdt, c);
				}
				for (int64_t c = 0; c < d; c++) oi[c] = sum > 0 ? (float)(acc[c] / sum) : 0.0f;
			}
		}
	}
	return SYNTH_OK;
}
