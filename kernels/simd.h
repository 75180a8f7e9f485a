// simd.h: the SIMD kernels, written once over a small vector vocabulary and compiled per
// ISA by avx2.c and avx512.c, which define before including it:
//   ISA_SFX(name)  the variant suffix (name##_avx2)
//   VL, NR, MR     lanes per vector, GEMM panel width (2*VL), GEMM micro-tile rows
//   vf, vm         float vector and lane-mask types, and the v* operations.
// Semantics of every kernel: see its _ref in ref.c (and kernels.h). Each definition says
// how it differs (reduction order, approximations).

#if NR != 2 * VL
#error "the micro-kernels hold two vectors per row"
#endif

// ---- vector math --------------------------------------------------------------------------

// vexp: e^x. n = round(x log2 e), r = x - n ln 2 (ln 2 split in two so r is exact to
// ~1e-10), e^r by its Taylor series to r^7 (|r| <= ln2/2: truncation 5e-9 relative), times
// 2^n. About 2 ulp. x > 88 is treated as 88 (e^88 = 1.7e38); x < -87 gives 0 (the true
// value is below 2^-125, and -inf gives 0 too).
static inline vf vexp(vf x) {
	vf xc = vmin(vset1(88.0f), vmax(vset1(-87.0f), x)); // NaN (second operand) passes
	vf n = vround(vmul(xc, vset1(1.44269504088896341f)));
	vf r = vfnma(n, vset1(0.693359375f), xc); // ln2 hi: 8 significant bits, n*hi is exact
	r = vfnma(n, vset1(-2.12194440e-4f), r);  // ln2 lo
	vf p = vset1(1.0f / 5040);
	p = vfma(p, r, vset1(1.0f / 720));
	p = vfma(p, r, vset1(1.0f / 120));
	p = vfma(p, r, vset1(1.0f / 24));
	p = vfma(p, r, vset1(1.0f / 6));
	p = vfma(p, r, vset1(0.5f));
	p = vfma(p, r, vset1(1.0f));
	p = vfma(p, r, vset1(1.0f));
	return vsel(vlt(x, vset1(-87.0f)), vmul(p, vpow2(n)), vzero());
}

// x * sigmoid(t) = x / (1 + e^-t)
static inline vf vx_sigmoid(vf x, vf t) { return vdiv(x, vadd(vset1(1.0f), vexp(vsub(vzero(), t)))); }

// GELU (erf form) as x * Phi(x), Phi(x) = 1 - erfc(x/sqrt2)/2 for x >= 0 and erfc(|x|/sqrt2)/2
// below, so no cancellation: erfc(z) ~ t(a1 + t(a2 + t(a3 + t(a4 + t a5)))) e^(-z^2),
// t = 1/(1 + p z), Abramowitz & Stegun 7.1.26 (absolute error <= 1.5e-7).
static inline vf vgelu(vf x) {
	vf z = vmul(vabs(x), vset1(0.70710678118654752f));
	vf t = vdiv(vset1(1.0f), vfma(vset1(0.3275911f), z, vset1(1.0f)));
	vf p = vset1(1.061405429f);
	p = vfma(p, t, vset1(-1.453152027f));
	p = vfma(p, t, vset1(1.421413741f));
	p = vfma(p, t, vset1(-0.284496736f));
	p = vfma(p, t, vset1(0.254829592f));
	vf half_erfc = vmul(vmul(vmul(p, t), vexp(vsub(vzero(), vmul(z, z)))), vset1(0.5f));
	vf phi = vsel(vlt(x, vzero()), vsub(vset1(1.0f), half_erfc), half_erfc);
	return vmul(x, phi);
}

// GELU (tanh form): 0.5 x (1 + tanh(u)) = x sigmoid(2u), u = sqrt(2/pi)(x + 0.044715 x^3).
static inline vf vgelu_tanh(vf x) {
	vf u = vmul(vset1(0.79788456080286535588f), vfma(vmul(vset1(0.044715f), x), vmul(x, x), x));
	return vx_sigmoid(x, vadd(u, u));
}

static inline vf vact(int act, vf x) {
	switch (act) {
	case SYNTH_ACT_GELU:
		return vgelu(x);
	case SYNTH_ACT_GELU_TANH:
		return vgelu_tanh(x);
	case SYNTH_ACT_QUICKGELU:
		return vx_sigmoid(x, vmul(x, vset1(1.702f)));
	case SYNTH_ACT_RELU:
		return vmax(vzero(), x); // the second operand wins on NaN: NaN passes through
	default:
		return x;
	}
}

// ---- GEMM ---------------------------------------------------------------------------------

#define KC 384 // k per block (384 x 32 floats of B: L1-sized; measured best of 192..512)
#define MC (MR * (264 / MR)) // rows per packed A block (L2): 264 covers a ViT image's 257

// The micro-kernel: acc[i][0..1] += sum_kk a(i, kk) * b[kk][0..NR), a(i, kk) at
// a[i*ars + kk*aks]. Inlined with constant mr so that acc lives in registers.
static inline __attribute__((always_inline)) void mk(const int mr, vf acc[][2], const float *a, int64_t ars,
                                                     int64_t aks, const float *b, int64_t kc) {
	for (int64_t kk = 0; kk < kc; kk++) {
		vf b0 = vload(b + kk * NR), b1 = vload(b + kk * NR + VL);
#pragma GCC unroll 16
		for (int i = 0; i < mr; i++) {
			vf av = vset1(a[i * ars + kk * aks]);
			acc[i][0] = vfma(av, b0, acc[i][0]);
			acc[i][1] = vfma(av, b1, acc[i][1]);
		}
	}
}

// gemm_args: one GEMM call, shared by its tiles.
typedef struct {
	const float *bias; // [n] or NULL
	const float *res;  // [m, n] or NULL
	int64_t ldr, ldy;
	int act;
	int accum_y; // start from y (the in-place residual) instead of 0
} gemm_args;

// store_tile is the GEMM epilogue: rows [0, mr) x columns [0, nv) of y (at row `row` of
// the output, column col) = act(acc + bias) + res.
static inline __attribute__((always_inline)) void store_tile(const int mr, vf acc[][2], float *y, int64_t col,
                                                             int64_t nv, const gemm_args *g, int64_t row) {
	vf b0 = vzero(), b1 = vzero();
	if (g->bias) {
		b0 = vloadn(g->bias + col, nv);
		b1 = vloadn(g->bias + col + VL, nv - VL);
	}
	for (int i = 0; i < mr; i++) {
		vf v0 = vact(g->act, vadd(acc[i][0], b0));
		vf v1 = vact(g->act, vadd(acc[i][1], b1));
		if (g->res) {
			const float *r = g->res + (row + i) * g->ldr + col;
			v0 = vadd(v0, vloadn(r, nv));
			v1 = vadd(v1, vloadn(r + VL, nv - VL));
		}
		vstoren(y + i * g->ldy, v0, nv);
		vstoren(y + i * g->ldy + VL, v1, nv - VL);
	}
}

// add_y adds rows [0, mr) x columns [0, nv) of y (partial sums, or the in-place residual).
static inline __attribute__((always_inline)) void add_y(const int mr, vf acc[][2], const float *y, int64_t nv,
                                                        int64_t ldy) {
#pragma GCC unroll 16
	for (int i = 0; i < mr; i++) {
		acc[i][0] = vadd(acc[i][0], vloadn(y + i * ldy, nv));
		acc[i][1] = vadd(acc[i][1], vloadn(y + i * ldy + VL, nv - VL));
	}
}

// gemm_tile computes rows [0, mr) x columns [0, nv) of y (nv <= NR) for one K block:
// ap: packed A tile [kc][MR]; bp: B panel [kc][NR]. first: the first K block (start from 0,
// or from y when accum_y); last: apply bias, activation and residual and store.
static inline __attribute__((always_inline)) void gemm_tile(const int mr, const float *ap, const float *bp, int64_t kc,
                                                            float *y, int64_t col, int64_t nv, int first, int last,
                                                            const gemm_args *g, int64_t row) {
	vf acc[MR][2];
	int load = !first || g->accum_y;
#pragma GCC unroll 16
	for (int i = 0; i < mr; i++) {
		acc[i][0] = vzero();
		acc[i][1] = vzero();
		// fetch the tile of y while the K loop runs: its partial sums are added after
		// the loop, and the stores then hit L1
		_mm_prefetch((const char *)(y + i * g->ldy), _MM_HINT_T0);
		_mm_prefetch((const char *)(y + i * g->ldy + NR - 1), _MM_HINT_T0);
	}
	mk(mr, acc, ap, 1, MR, bp, kc);
	if (load) add_y(mr, acc, y, nv, g->ldy);
	if (!last) {
#pragma GCC unroll 16
		for (int i = 0; i < mr; i++) {
			vstoren(y + i * g->ldy, acc[i][0], nv);
			vstoren(y + i * g->ldy + VL, acc[i][1], nv - VL);
		}
		return;
	}
	store_tile(mr, acc, y, col, nv, g, row);
}

#define GEMM_TILE_FN(r)                                                                                         \
	static __attribute__((noinline)) void gemm_tile_##r(const float *ap, const float *bp, int64_t kc, float *y, \
	                                                    int64_t col, int64_t nv, int first, int last,          \
	                                                    const gemm_args *g, int64_t row) {                     \
		gemm_tile(r, ap, bp, kc, y, col, nv, first, last, g, row);                                             \
	}
GEMM_TILE_FN(1)
GEMM_TILE_FN(2)
GEMM_TILE_FN(3)
GEMM_TILE_FN(4)
GEMM_TILE_FN(5)
GEMM_TILE_FN(6)
#if MR > 6
GEMM_TILE_FN(7)
GEMM_TILE_FN(8)
GEMM_TILE_FN(9)
GEMM_TILE_FN(10)
GEMM_TILE_FN(11)
GEMM_TILE_FN(12)
#endif

typedef void (*gemm_tile_fn)(const float *, const float *, int64_t, float *, int64_t, int64_t, int, int,
                             const gemm_args *, int64_t);
static const gemm_tile_fn gemm_tiles[MR + 1] = {
	NULL, gemm_tile_1, gemm_tile_2, gemm_tile_3, gemm_tile_4, gemm_tile_5, gemm_tile_6,
#if MR > 6
	gemm_tile_7, gemm_tile_8, gemm_tile_9, gemm_tile_10, gemm_tile_11, gemm_tile_12,
#endif
};

// pack_a copies rows [0, mc) x columns [0, kc) of x into tiles of MR rows, k-major:
// ap[t*MR*kc + kk*MR + i] = x[(t*MR + i)*ldx + kk]. Rows past mc in the last tile are
// left alone: the tile kernel for that many rows never reads them. Four rows at a time
// go through 4x4 transposes, so each load and store moves four floats.
static void pack_a(const float *x, int64_t ldx, int64_t mc, int64_t kc, float *ap) {
	for (int64_t t = 0; t * MR < mc; t++) {
		int64_t mr = mc - t * MR < MR ? mc - t * MR : MR;
		float *dst = ap + t * MR * kc;
		const float *src = x + t * MR * ldx;
		int64_t i = 0;
		for (; i + 4 <= mr; i += 4) {
			const float *r0 = src + i * ldx, *r1 = r0 + ldx, *r2 = r1 + ldx, *r3 = r2 + ldx;
			int64_t kk = 0;
			for (; kk + 4 <= kc; kk += 4) {
				__m128 a = _mm_loadu_ps(r0 + kk), b = _mm_loadu_ps(r1 + kk), c = _mm_loadu_ps(r2 + kk),
				       d = _mm_loadu_ps(r3 + kk);
				_MM_TRANSPOSE4_PS(a, b, c, d);
				_mm_storeu_ps(dst + kk * MR + i, a);
				_mm_storeu_ps(dst + (kk + 1) * MR + i, b);
				_mm_storeu_ps(dst + (kk + 2) * MR + i, c);
				_mm_storeu_ps(dst + (kk + 3) * MR + i, d);
			}
			for (; kk < kc; kk++) {
				dst[kk * MR + i] = r0[kk];
				dst[kk * MR + i + 1] = r1[kk];
				dst[kk * MR + i + 2] = r2[kk];
				dst[kk * MR + i + 3] = r3[kk];
			}
		}
		for (; i < mr; i++)
			for (int64_t kk = 0; kk < kc; kk++) dst[kk * MR + i] = src[i * ldx + kk];
	}
}

// ---- quantized weights: codes and scales ----------------------------------------------------
// A packed block of a quantized weight (kernels.h "weight packing") read a chunk of 32
// values at a time: qcodes returns group g (values 4g..4g+3) of chunk c for the VL rows of
// half v, one row per 32-bit lane, as unsigned codes (Q8_0: the signed values).

#define GOFF(g, v) ((((int64_t)(g)) * NR + (v) * VL) * 4)

static inline __attribute__((always_inline)) vi qcodes(const int dt, const uint8_t *pb, int c, int g, int v) {
	const vi lo4 = vi_set1_u8(0x0f);
	switch (dt) {
	case SYNTH_Q8_0:
		return vi_load(pb + PK_Q_OFF(NR) + GOFF(g, v));
	case SYNTH_Q4_0: {
		vi b = vi_load(pb + PK_Q_OFF(NR) + GOFF(g & 3, v));
		return g < 4 ? vi_and(b, lo4) : vi_and(vi_srl16(b, 4), lo4);
	}
	case SYNTH_Q4_K:
	case SYNTH_Q5_K: {
		vi b = vi_load(pb + PK4K_Q(NR) + (int64_t)(c / 2) * 32 * NR + GOFF(g, v));
		vi q = c & 1 ? vi_and(vi_srl16(b, 4), lo4) : vi_and(b, lo4);
		if (dt == SYNTH_Q5_K)
			q = vi_or(q, vi_sll16(vi_and(vi_srl16(vi_load(pb + PK5K_H(NR) + GOFF(g, v)), c), vi_set1_u8(1)), 4));
		return q;
	}
	default: { // Q6_K
		int h = c / 4, cc = c % 4;
		vi b = vi_load(pb + PK6K_Q(NR) + (int64_t)(2 * h + (cc & 1)) * 32 * NR + GOFF(g, v));
		vi q = cc >= 2 ? vi_and(vi_srl16(b, 4), lo4) : vi_and(b, lo4);
		vi hb = vi_load(pb + PK6K_H(NR) + (int64_t)h * 32 * NR + GOFF(g, v));
		return vi_or(q, vi_sll16(vi_and(vi_srl16(hb, 2 * cc), vi_set1_u8(3)), 4));
	}
	}
}

// byte_lane widens byte t of each 32-bit lane of a code vector to f32: signed for Q8_0,
// unsigned otherwise (exact).
static inline __attribute__((always_inline)) vf byte_lane(vi q, int t, int sgn) {
#if VL == 8
	__m256i s = _mm256_slli_epi32(q, 24 - 8 * t);
	return _mm256_cvtepi32_ps(sgn ? _mm256_srai_epi32(s, 24) : _mm256_srli_epi32(s, 24));
#else
	__m512i s = _mm512_sll_epi32(q, _mm_cvtsi32_si128(24 - 8 * t));
	return _mm512_cvtepi32_ps(sgn ? _mm512_srai_epi32(s, 24) : _mm512_srli_epi32(s, 24));
#endif
}

// chunk_scales: the f32 scale (a) and offset (b) of chunk c (granule gr of 16 values for
// Q6_K) of packed block pb for half v: value = a * code - b (Q4_0: a * (code - 8); Q6_K:
// a * (code - 32); Q8_0: a * code). The products are exact (f16 times a small integer).
static inline __attribute__((always_inline)) void chunk_scales(const int dt, const uint8_t *pb, int c, int gr, int v,
                                                               vf *a, vf *b) {
	vf d = vload_f16(pb + 2 * v * VL);
	*b = vzero();
	switch (dt) {
	case SYNTH_Q4_K:
	case SYNTH_Q5_K:
		*a = vmul(d, vload_u8(pb + PK4K_SC(NR) + (int64_t)c * NR + v * VL));
		*b = vmul(vload_f16(pb + 2 * NR + 2 * v * VL), vload_u8(pb + PK4K_M(NR) + (int64_t)c * NR + v * VL));
		break;
	case SYNTH_Q6_K:
		*a = vmul(d, vload_i8(pb + PK6K_SC(NR) + (int64_t)(2 * c + gr) * NR + v * VL));
		break;
	default:
		*a = d;
	}
}

// code_offset is the integer subtracted from every code before its scale (Q4_0 8, Q6_K 32).
static inline int code_offset(int dt) { return dt == SYNTH_Q4_0 ? 8 : dt == SYNTH_Q6_K ? 32 : 0; }

// dequant_panel writes the K block [k0, k0+kc) of packed panel p of a non-f32 weight as
// f32 [kc][NR] into out (exact: the same values the raw rows dequantize to). k0 and kc
// are multiples of 32 for the quantized types.
static void dequant_panel(int dt, const uint8_t *panel, int64_t k0, int64_t kc, float *out) {
	if (dt == SYNTH_F16 || dt == SYNTH_BF16) {
		const uint8_t *src = panel + k0 * NR * 2;
		for (int64_t kk = 0; kk < kc; kk++, src += NR * 2) {
			vstore(out + kk * NR, dt == SYNTH_F16 ? vload_f16(src) : vload_bf16(src));
			vstore(out + kk * NR + VL, dt == SYNTH_F16 ? vload_f16(src + VL * 2) : vload_bf16(src + VL * 2));
		}
		return;
	}
	int64_t sbv = block_vals(dt), pbb = pblock_bytes(dt) * NR;
	vf off = vset1((float)code_offset(dt));
	for (int64_t kk = 0; kk < kc; kk += QK) {
		int64_t at = k0 + kk;
		const uint8_t *pb = panel + at / sbv * pbb;
		int c = (int)(at % sbv / QK);
		for (int v = 0; v < 2; v++) {
			vf a[2], b[2];
			chunk_scales(dt, pb, c, 0, v, &a[0], &b[0]);
			chunk_scales(dt, pb, c, 1, v, &a[1], &b[1]);
			for (int g = 0; g < 8; g++) {
				vi q = qcodes(dt, pb, c, g, v);
				int gr = dt == SYNTH_Q6_K && g >= 4;
				for (int t = 0; t < 4; t++) {
					vf code = vsub(byte_lane(q, t, dt == SYNTH_Q8_0), off);
					vstore(out + (kk + 4 * g + t) * NR + v * VL, vsub(vmul(a[gr], code), b[gr]));
				}
			}
		}
	}
}

// ---- small-M GEMM (decoding): weights converted in registers -----------------------------

// The next k step of a packed panel as two f32 vectors (exact, as dequant_panel).
// Blocks of 32 k carry one scale per lane: d0, d1 are loaded at each block start.
#define W_F32(kk) w0 = vload(pf + (kk) * NR), w1 = vload(pf + (kk) * NR + VL)
#define W_F16(kk) w0 = vload_f16(pb + (kk) * NR * 2), w1 = vload_f16(pb + (kk) * NR * 2 + VL * 2)
#define W_BF16(kk) w0 = vload_bf16(pb + (kk) * NR * 2), w1 = vload_bf16(pb + (kk) * NR * 2 + VL * 2)

#define FMA_ROWS(kcol)                                               \
	_Pragma("GCC unroll 16") for (int i = 0; i < mr; i++) {         \
		vf av = vset1(x[i * ldx + (kcol)]);                         \
		acc[i][0] = vfma(av, w0, acc[i][0]);                        \
		acc[i][1] = vfma(av, w1, acc[i][1]);                        \
	}

// small_tile: rows [0, mr) of y for one panel over all of K, x read in place (rows of
// ldx): acc[i][:] = sum_k x[i][k] w[k][:], converting each k step of the packed panel
// once for all mr rows. Then bias, activation, residual, store (as gemm_tile). (The
// quantized types take the integer-dot path below.)
static inline __attribute__((always_inline)) void small_tile(const int mr, const int dt, const float *x, int64_t ldx,
                                                             const uint8_t *panel, int64_t k, float *y, int64_t col,
                                                             int64_t nv, const gemm_args *g, int64_t row) {
	vf acc[MR][2], w0, w1;
#pragma GCC unroll 16
	for (int i = 0; i < mr; i++) acc[i][0] = acc[i][1] = vzero();
	switch (dt) {
	case SYNTH_F32: {
		const float *pf = (const float *)panel;
		for (int64_t kk = 0; kk < k; kk++) {
			W_F32(kk);
			FMA_ROWS(kk)
		}
		break;
	}
	case SYNTH_F16:
	case SYNTH_BF16: {
		const uint8_t *pb = panel;
		for (int64_t kk = 0; kk < k; kk++) {
			if (dt == SYNTH_F16) W_F16(kk);
			else W_BF16(kk);
			FMA_ROWS(kk)
		}
		break;
	}
	}
	if (g->accum_y) add_y(mr, acc, y, nv, g->ldy); // the in-place residual: y holds it
	store_tile(mr, acc, y, col, nv, g, row);
}

#define SMALL_FN(dtn, dt, r)                                                                                  \
	static __attribute__((noinline)) void small_##dtn##_##r(const float *x, int64_t ldx, const uint8_t *panel, \
	                                                       int64_t k, float *y, int64_t col, int64_t nv,      \
	                                                       const gemm_args *g, int64_t row) {                 \
		small_tile(r, dt, x, ldx, panel, k, y, col, nv, g, row);                                              \
	}
#define SMALL_DT(dtn, dt)                                                                                    \
	SMALL_FN(dtn, dt, 1) SMALL_FN(dtn, dt, 2) SMALL_FN(dtn, dt, 3) SMALL_FN(dtn, dt, 4) SMALL_FN(dtn, dt, 5) \
	SMALL_FN(dtn, dt, 6) SMALL_MORE(dtn, dt)
#if MR > 6
#define SMALL_MORE(dtn, dt) \
	SMALL_FN(dtn, dt, 7) SMALL_FN(dtn, dt, 8) SMALL_FN(dtn, dt, 9) SMALL_FN(dtn, dt, 10) SMALL_FN(dtn, dt, 11) SMALL_FN(dtn, dt, 12)
#define SMALL_LIST_MORE(dtn) , small_##dtn##_7, small_##dtn##_8, small_##dtn##_9, small_##dtn##_10, small_##dtn##_11, small_##dtn##_12
#else
#define SMALL_MORE(dtn, dt)
#define SMALL_LIST_MORE(dtn)
#endif
SMALL_DT(f32, SYNTH_F32)
SMALL_DT(f16, SYNTH_F16)
SMALL_DT(bf16, SYNTH_BF16)

typedef void (*small_fn)(const float *, int64_t, const uint8_t *, int64_t, float *, int64_t, int64_t, const gemm_args *,
                         int64_t);
#define SMALL_LIST(dtn) \
	{NULL, small_##dtn##_1, small_##dtn##_2, small_##dtn##_3, small_##dtn##_4, small_##dtn##_5, small_##dtn##_6 SMALL_LIST_MORE(dtn)}
static const small_fn small_tiles[3][MR + 1] = {SMALL_LIST(f32), SMALL_LIST(f16), SMALL_LIST(bf16)};

// half_tile: rows [0, mr) of y (MR < mr <= 2*MR: a decoding batch too tall for
// small_tile's two vectors per row) for one panel over all of K, one half (VL columns) at
// a time: mr accumulators of one vector, each k step of the half converted once (F16C for
// f16) and used by every row, so that the conversion stays in registers instead of going
// through dequant_panel's buffer. K goes in blocks of HALF_KB, both halves per block, so
// the second half reads the block from L1; the first prefetches HALF_PF bytes ahead.
// Then bias, activation, residual, store.
#ifndef HALF_KB
#define HALF_KB 256
#endif
#ifndef HALF_PF
#define HALF_PF 4096 // AVX2, m=8, F16 OPT fc1 on one thread: no prefetch 42-47 GFLOP/s, 2-8 KB ahead 49-59
#endif
static inline __attribute__((always_inline)) void half_tile(const int mr, const int dt, const float *x, int64_t ldx,
                                                            const uint8_t *panel, int64_t k, float *y, int64_t col,
                                                            int64_t nv, const gemm_args *g) {
	const int64_t esz = dt == SYNTH_F32 ? 4 : 2; // bytes per weight
	vf sums[2][2 * MR]; // each half's running sums between K blocks
#pragma GCC unroll 24
	for (int i = 0; i < mr; i++) sums[0][i] = sums[1][i] = vzero();
	for (int64_t k0 = 0; k0 < k; k0 += HALF_KB) {
		int64_t k1 = k - k0 < HALF_KB ? k : k0 + HALF_KB;
		for (int h = 0; h < 2; h++) {
			vf acc[2 * MR];
#pragma GCC unroll 24
			for (int i = 0; i < mr; i++) acc[i] = sums[h][i];
			for (int64_t kk = k0; kk < k1; kk++) {
				if (h == 0 && (kk * NR * esz) % 64 == 0) _mm_prefetch((const char *)panel + kk * NR * esz + HALF_PF, _MM_HINT_T0);
				vf w;
				if (dt == SYNTH_F32) w = vload((const float *)panel + kk * NR + h * VL);
				else if (dt == SYNTH_F16) w = vload_f16(panel + (kk * NR + h * VL) * 2);
				else w = vload_bf16(panel + (kk * NR + h * VL) * 2);
#pragma GCC unroll 24
				for (int i = 0; i < mr; i++) acc[i] = vfma(vset1(x[i * ldx + kk]), w, acc[i]);
			}
#pragma GCC unroll 24
			for (int i = 0; i < mr; i++) sums[h][i] = acc[i];
		}
	}
	for (int h = 0; h < 2; h++) {
		// the half's columns: col + h*VL, at most VL of them (the other vector stores nothing)
		int64_t hv = nv - h * VL < VL ? nv - h * VL : VL;
		if (hv <= 0) return;
		vf acc[2 * MR][2];
#pragma GCC unroll 24
		for (int i = 0; i < mr; i++) acc[i][0] = sums[h][i], acc[i][1] = vzero();
		if (g->accum_y) add_y(mr, acc, y + h * VL, hv, g->ldy);
		store_tile(mr, acc, y + h * VL, col + h * VL, hv, g, 0);
	}
}

#define HALF_FN(dtn, dt, r)                                                                                        \
	static __attribute__((noinline)) void half_##dtn##_##r(const float *x, int64_t ldx, const uint8_t *panel,      \
	                                                      int64_t k, float *y, int64_t col, int64_t nv,            \
	                                                      const gemm_args *g) {                                    \
		half_tile(r, dt, x, ldx, panel, k, y, col, nv, g);                                                         \
	}
#if MR > 6
#define HALF_DT(dtn, dt)                                                                                            \
	HALF_FN(dtn, dt, 13) HALF_FN(dtn, dt, 14) HALF_FN(dtn, dt, 15) HALF_FN(dtn, dt, 16) HALF_FN(dtn, dt, 17)        \
	HALF_FN(dtn, dt, 18) HALF_FN(dtn, dt, 19) HALF_FN(dtn, dt, 20) HALF_FN(dtn, dt, 21) HALF_FN(dtn, dt, 22)        \
	HALF_FN(dtn, dt, 23) HALF_FN(dtn, dt, 24)
#define HALF_LIST(dtn)                                                                                             \
	{half_##dtn##_13, half_##dtn##_14, half_##dtn##_15, half_##dtn##_16, half_##dtn##_17, half_##dtn##_18,         \
	 half_##dtn##_19, half_##dtn##_20, half_##dtn##_21, half_##dtn##_22, half_##dtn##_23, half_##dtn##_24}
#else
#define HALF_DT(dtn, dt) \
	HALF_FN(dtn, dt, 7) HALF_FN(dtn, dt, 8) HALF_FN(dtn, dt, 9) HALF_FN(dtn, dt, 10) HALF_FN(dtn, dt, 11) HALF_FN(dtn, dt, 12)
#define HALF_LIST(dtn) {half_##dtn##_7, half_##dtn##_8, half_##dtn##_9, half_##dtn##_10, half_##dtn##_11, half_##dtn##_12}
#endif
HALF_DT(f32, SYNTH_F32)
HALF_DT(f16, SYNTH_F16)
HALF_DT(bf16, SYNTH_BF16)

typedef void (*half_fn)(const float *, int64_t, const uint8_t *, int64_t, float *, int64_t, int64_t,
                        const gemm_args *);
static const half_fn half_tiles[3][MR] = {HALF_LIST(f32), HALF_LIST(f16), HALF_LIST(bf16)}; // [dt][mr - MR - 1]

// ---- quantized weights: the integer-dot GEMM ----------------------------------------------
// semantics: see synth_qgemm_ref. x is quantized per 32 values (quantize_rows), then per
// panel, chunk of 32 values and tile of MRQ rows, each lane's 4-value integer dot
// products are summed exactly in int32 over the chunk (or the Q6_K granule of 16), and
// the chunk is added in f32: facc += (code_sum - offset * x_sum) * (w scale * x scale)
// (minus the K-quants' min times x's sum). Differences from the reference: f32 sums over
// the chunks, in order, instead of double.

#define MRQ (NREG == 32 ? 8 : 4)
#ifndef QPF_AHEAD
#define QPF_AHEAD 2 // chunks ahead the tiles prefetch (0: none); one run each: Q5_K m=1 1.3-2.7x faster, the others within noise
#endif
#ifndef HALF_TILES
#define HALF_TILES 1
#endif
// QDOT_MAX_M is the most rows of x the integer path takes; above it the quantized types
// are dequantized a panel block at a time into the f32 GEMM. Measured on one thread of
// the Zen 4 development VM (2026-12-03, k 1408-2560, m 96-257): with vpdpbusd the integer
// path ran about 2x the f32 one at every m. With AVX2's vpmaddubsw it ran 1.1-1.35x the
// f32 path for Q8_0, Q4_0 and Q4_K at every m, the same for Q5_K (76-105 against 95-100
// GFLOP/s) and 0.7-0.9x for Q6_K, whose codes take the most work to unpack: those two keep
// the f32 path above QDOT_MAX_M_UNPACK rows. AVX-512 without VNNI takes AVX2's bounds
// (not measured: no such CPU here).
#ifndef QDOT_MAX_M
#define QDOT_MAX_M INT64_MAX
#endif
#ifndef QDOT_MAX_M_UNPACK
#if SYNTH_VNNI
#define QDOT_MAX_M_UNPACK INT64_MAX
#else
#define QDOT_MAX_M_UNPACK 96
#endif
#endif // rows per integer tile: MRQ x 2 int32 accumulators

// quantize_rows quantizes rows [0, rows) of x (k values each) as quantize_x_block does, bit
// for bit: codes q [rows][k], scales d [rows][k/32], and the sums of the codes per 16
// values s [rows][k/16]. The rounding is cvtps2dq's (the default: to nearest even).
static void quantize_rows(const float *x, int64_t ldx, int64_t rows, int64_t k, int8_t *q, float *d, int32_t *s) {
	for (int64_t r = 0; r < rows; r++) {
		const float *xr = x + r * ldx;
		for (int64_t b = 0; b < k / QK; b++) {
			const float *xb = xr + b * QK;
			vf am = vzero(), nf = vzero();
			for (int l = 0; l < QK; l += VL) {
				vf v = vload(xb + l);
				am = vmax(vabs(v), am);
				nf = vadd(nf, vmul(v, vzero())); // NaN when any value is NaN or inf
			}
			float amax = vhmax(am), nonfinite = vhsum(nf);
			int8_t *qb = q + r * k + b * QK;
			int32_t *sb = s + r * (k / 16) + 2 * b;
			if (nonfinite != nonfinite || amax < QX_TINY) {
				memset(qb, 0, QK);
				sb[0] = sb[1] = 0;
				d[r * (k / QK) + b] = amax < QX_TINY && nonfinite == nonfinite ? 0.0f : NAN;
				continue;
			}
			float dd = amax / 127.0f;
			vf id = vset1(1.0f / dd);
			vf sum16[2] = {vzero(), vzero()};
			for (int l = 0; l < QK; l += 2 * VL) {
				vf a = vmul(vload(xb + l), id), c = vmul(vload(xb + l + VL), id);
				vstore_q8(qb + l, a, c);
				sum16[l / 16] = vadd(sum16[l / 16], vround(a));
				sum16[(l + VL) / 16] = vadd(sum16[(l + VL) / 16], vround(c));
			}
			sb[0] = (int32_t)vhsum(sum16[0]);
			sb[1] = (int32_t)vhsum(sum16[1]);
			d[r * (k / QK) + b] = dd;
		}
	}
}

// qrows: a chunk of quantized rows of x, as quantize_rows lays them out.
typedef struct {
	const int8_t *q;
	const float *d;
	const int32_t *s;
	int64_t k;
} qrows;

// chunk_codes is qcodes as the dot products take them: Q8_0 offset to unsigned (w + 128)
// where vpdpbusd needs an unsigned operand.
static inline __attribute__((always_inline)) vi chunk_codes(const int dt, const uint8_t *pb, int c, int g, int v) {
	vi w = qcodes(dt, pb, c, g, v);
	if (dt == SYNTH_Q8_0 && SYNTH_VNNI) w = vi_xor(w, vi_set1_u8(0x80));
	return w;
}

// qchunks_run adds chunks [cb0, cb1) (global chunk indices along k) of panel for rows
// [0, mr) of xr into facc (rows NR floats apart).
static inline __attribute__((always_inline)) void qchunks_run(const int mr, const int dt, const uint8_t *panel,
                                                              int64_t cb0, int64_t cb1, const qrows *xr, float *facc) {
	const int off = dt == SYNTH_Q8_0 ? (SYNTH_VNNI ? 128 : 0) : code_offset(dt);
	const int64_t k = xr->k, cps = block_vals(dt) / QK, pbb = pblock_bytes(dt) * NR;
	vf fa[MRQ][2]; // the running sums, in registers across the chunks where they fit
#pragma GCC unroll 8
	for (int i = 0; i < mr; i++) fa[i][0] = vload(facc + i * NR), fa[i][1] = vload(facc + i * NR + VL);
	for (int64_t cb = cb0; cb < cb1; cb++) {
	const uint8_t *pb = panel + cb / cps * pbb;
	const int c = (int)(cb % cps);
	if (QPF_AHEAD) { // fetch the panel's bytes some chunks ahead
		const uint8_t *ahead = panel + (cb + QPF_AHEAD) * (pbb / cps);
		for (int64_t b = 0; b < pbb / cps; b += 64) _mm_prefetch((const char *)(ahead + b), _MM_HINT_T0);
	}
	vi acc[MRQ][2];
	vi sc16[2][2]; // Q6_K: the int8 scales of the chunk's two 16-value halves, per row in both 16-bit halves of its lane
	if (dt == SYNTH_Q6_K) {
		for (int h = 0; h < 2; h++)
			for (int v = 0; v < 2; v++) sc16[h][v] = vi_scale16(pb + PK6K_SC(NR) + (int64_t)(2 * c + h) * NR + v * VL);
	}
#pragma GCC unroll 8
	for (int i = 0; i < mr; i++) acc[i][0] = acc[i][1] = vi_zero();
	for (int g = 0; g < 8; g++) {
		vi w0 = chunk_codes(dt, pb, c, g, 0), w1 = chunk_codes(dt, pb, c, g, 1);
#pragma GCC unroll 8
		for (int i = 0; i < mr; i++) {
			uint32_t x4;
			memcpy(&x4, xr->q + i * k + cb * QK + 4 * g, 4);
			vi xb = vi_set1_u32(x4);
			if (dt == SYNTH_Q8_0 && !SYNTH_VNNI) {
				acc[i][0] = vdot_ss(acc[i][0], w0, xb);
				acc[i][1] = vdot_ss(acc[i][1], w1, xb);
			} else if (dt == SYNTH_Q6_K) { // each half's scale applied in the 16-bit pair sums
				acc[i][0] = vdot_us_scaled(acc[i][0], w0, xb, sc16[g / 4][0]);
				acc[i][1] = vdot_us_scaled(acc[i][1], w1, xb, sc16[g / 4][1]);
			} else {
				acc[i][0] = vdot_us(acc[i][0], w0, xb);
				acc[i][1] = vdot_us(acc[i][1], w1, xb);
			}
		}
	}
	vf a0, a1, b0, b1, s00, s01, s10, s11;
	chunk_scales(dt, pb, c, 0, 0, &a0, &b0);
	chunk_scales(dt, pb, c, 0, 1, &a1, &b1);
	if (dt == SYNTH_Q6_K) { // Q6_K: d alone; the code offset 32 times each half's scale and x sum
		a0 = vload_f16(pb), a1 = vload_f16(pb + 2 * VL);
		s00 = vload_i8(pb + PK6K_SC(NR) + (int64_t)(2 * c) * NR), s01 = vload_i8(pb + PK6K_SC(NR) + (int64_t)(2 * c) * NR + VL);
		s10 = vload_i8(pb + PK6K_SC(NR) + (int64_t)(2 * c + 1) * NR);
		s11 = vload_i8(pb + PK6K_SC(NR) + (int64_t)(2 * c + 1) * NR + VL);
	}
#pragma GCC unroll 8
	for (int i = 0; i < mr; i++) {
		float dx = xr->d[i * (k / QK) + cb];
		const int32_t *s16 = xr->s + i * (k / 16) + 2 * cb;
		int32_t xs = s16[0] + s16[1];
		vf dv = vset1(dx), f0, f1;
		if (dt == SYNTH_Q6_K) {
			vf c0 = vset1(32.0f * (float)s16[0]), c1 = vset1(32.0f * (float)s16[1]);
			f0 = vsub(vi_cvtf(acc[i][0]), vfma(s00, c0, vmul(s10, c1)));
			f1 = vsub(vi_cvtf(acc[i][1]), vfma(s01, c0, vmul(s11, c1)));
			f0 = vfma(f0, vmul(a0, dv), fa[i][0]);
			f1 = vfma(f1, vmul(a1, dv), fa[i][1]);
		} else {
			vi corr = vi_set1_i32(off * xs);
			f0 = vfma(vi_cvtf(vi_sub32(acc[i][0], corr)), vmul(a0, dv), fa[i][0]);
			f1 = vfma(vi_cvtf(vi_sub32(acc[i][1], corr)), vmul(a1, dv), fa[i][1]);
		}
		if (dt == SYNTH_Q4_K || dt == SYNTH_Q5_K) { // minus min * sum(x~)
			vf xsum = vset1(dx * (float)xs);
			f0 = vfnma(b0, xsum, f0);
			f1 = vfnma(b1, xsum, f1);
		}
		fa[i][0] = f0;
		fa[i][1] = f1;
	}
	}
#pragma GCC unroll 8
	for (int i = 0; i < mr; i++) vstore(facc + i * NR, fa[i][0]), vstore(facc + i * NR + VL, fa[i][1]);
}

#define QCHUNK_FN(dtn, dt, r)                                                                                       \
	static __attribute__((noinline)) void qchunk_##dtn##_##r(const uint8_t *panel, int64_t cb0, int64_t cb1,           \
	                                                         const qrows *xr, float *facc) {                          \
		qchunks_run(r, dt, panel, cb0, cb1, xr, facc);                                                                \
	}
#if MRQ > 4
#define QCHUNK_MORE(dtn, dt) QCHUNK_FN(dtn, dt, 5) QCHUNK_FN(dtn, dt, 6) QCHUNK_FN(dtn, dt, 7) QCHUNK_FN(dtn, dt, 8)
#define QLIST_MORE(dtn) , qchunk_##dtn##_5, qchunk_##dtn##_6, qchunk_##dtn##_7, qchunk_##dtn##_8
#else
#define QCHUNK_MORE(dtn, dt)
#define QLIST_MORE(dtn)
#endif
#define QCHUNK_DT(dtn, dt) \
	QCHUNK_FN(dtn, dt, 1) QCHUNK_FN(dtn, dt, 2) QCHUNK_FN(dtn, dt, 3) QCHUNK_FN(dtn, dt, 4) QCHUNK_MORE(dtn, dt)
QCHUNK_DT(q8_0, SYNTH_Q8_0)
QCHUNK_DT(q4_0, SYNTH_Q4_0)
QCHUNK_DT(q4_k, SYNTH_Q4_K)
QCHUNK_DT(q5_k, SYNTH_Q5_K)
QCHUNK_DT(q6_k, SYNTH_Q6_K)

typedef void (*qchunk_fn)(const uint8_t *, int64_t, int64_t, const qrows *, float *);
#define QLIST(dtn) {NULL, qchunk_##dtn##_1, qchunk_##dtn##_2, qchunk_##dtn##_3, qchunk_##dtn##_4 QLIST_MORE(dtn)}
static const qchunk_fn qchunks[SYNTH_NDT][MRQ + 1] = {
	[SYNTH_Q8_0] = QLIST(q8_0), [SYNTH_Q4_0] = QLIST(q4_0), [SYNTH_Q4_K] = QLIST(q4_k),
	[SYNTH_Q5_K] = QLIST(q5_k), [SYNTH_Q6_K] = QLIST(q6_k),
};

// qepilogue stores rows [0, rows) of facc (NR floats apart) as rows row.. of y, columns
// col..col+nv: the in-place residual, bias, activation and residual (store_tile).
static void qepilogue(const float *facc, int64_t rows, float *y, int64_t col, int64_t nv, const gemm_args *g,
                      int64_t row) {
	for (int64_t i = 0; i < rows; i++) {
		vf acc[1][2] = {{vload(facc + i * NR), vload(facc + i * NR + VL)}};
		float *yi = y + (row + i) * g->ldy + col;
		if (g->accum_y) add_y(1, acc, yi, nv, g->ldy);
		store_tile(1, acc, yi, col, nv, g, row + i);
	}
}

// gemm_q is the quantized-activation GEMM over panels [p0, p1) and rows [r0, r1): rows
// are quantized a chunk at a time into scratch (each worker its own copy), then each
// panel streams once per chunk of rows. Rows go in tiles of at most MRQ, as even as
// possible, and K in blocks of QTILE_CHUNKS: every tile runs over the block while its
// bytes sit in L1, its sums in registers. (Decoding each chunk once into a buffer that
// every tile read was 1.3-2x slower at m = 8..257 on both variants, K-quants included.)
#ifndef QTILE_CHUNKS
#define QTILE_CHUNKS 16 // one thread, OPT fc1, m = 8..257: 4, 8, 16 and 32 within noise of each other
#endif
// qrows_max is how many rows of x with k values gemm_q's scratch holds quantized.
static inline int64_t qrows_max(int64_t k) {
	int64_t per_row = k + k / QK * 4 + k / 16 * 4 + NR * 4; // bytes: codes, scales, sums, facc
	return (SYNTH_SCRATCH_FLOATS * 4 - 256) / per_row;
}

// gemm_q_panels runs panels [p0, p1) for rows c0..c0+rows, quantized in scratch.
static void gemm_q_panels(int dt, const uint8_t *w, float *y, int64_t n, int64_t k, const gemm_args *g,
                          int64_t p0, int64_t p1, int64_t c0, int64_t rows, int64_t R, float *scratch) {
	int64_t pstride = k / block_vals(dt) * pblock_bytes(dt) * NR, nc = k / QK, tiles = (rows + MRQ - 1) / MRQ;
	float *facc = scratch;                        // [R][NR]
	float *xd = facc + R * NR;                    // [R][k/32]
	int32_t *xs = (int32_t *)(xd + R * (k / QK)); // [R][k/16]
	int8_t *xq = (int8_t *)(xs + R * (k / 16));   // [R][k]
	for (int64_t p = p0; p < p1; p++) {
		const uint8_t *panel = w + p * pstride;
		memset(facc, 0, (size_t)(rows * NR) * 4);
		for (int64_t cb0 = 0; cb0 < nc; cb0 += QTILE_CHUNKS) {
			int64_t cb1 = nc - cb0 < QTILE_CHUNKS ? nc : cb0 + QTILE_CHUNKS;
			for (int64_t t = 0, i0 = 0; t < tiles; t++) {
				int64_t mr = (rows - i0 + (tiles - t) - 1) / (tiles - t); // the rest, evenly
				qrows xr = {xq + i0 * k, xd + i0 * (k / QK), xs + i0 * (k / 16), k};
				qchunks[dt][mr](panel, cb0, cb1, &xr, facc + i0 * NR);
				i0 += mr;
			}
		}
		int64_t col = p * NR, nv = n - col < NR ? n - col : NR;
		qepilogue(facc, rows, y, col, nv, g, c0);
	}
}

// gemm_q_rows quantizes rows c0..c0+rows of x into scratch (gemm_q_panels' layout).
static void gemm_q_rows(const float *x, int64_t ldx, int64_t k, int64_t c0, int64_t rows, int64_t R, float *scratch) {
	float *xd = scratch + R * NR;
	int32_t *xs = (int32_t *)(xd + R * (k / QK));
	int8_t *xq = (int8_t *)(xs + R * (k / 16));
	quantize_rows(x + c0 * ldx, ldx, rows, k, xq, xd, xs);
}

static int gemm_q(int dt, const float *x, int64_t ldx, const uint8_t *w, float *y, int64_t n, int64_t k,
                  const gemm_args *g, int64_t p0, int64_t p1, int64_t r0, int64_t r1, float *scratch) {
	int64_t R = qrows_max(k);
	if (R < 1) return SYNTH_EARG;
	if (R > r1 - r0) R = r1 - r0;
	for (int64_t c0 = r0; c0 < r1; c0 += R) {
		int64_t rows = r1 - c0 < R ? r1 - c0 : R;
		gemm_q_rows(x, ldx, k, c0, rows, R, scratch);
		gemm_q_panels(dt, w, y, n, k, g, p0, p1, c0, rows, R, scratch);
	}
	return SYNTH_OK;
}

// DYN_UNITS is about how many units per worker the shared-counter split makes: enough
// that a worker running at half speed costs little, few enough that taking one is rare.
#define DYN_UNITS 8

// take_unit hands out an op's units [0, units) from the counter its calls share
// (kernels.h, GEMM's next), to whichever call asks first: the next unit, in increasing
// order, or -1 when none is left.
static inline int64_t take_unit(int64_t *next, int64_t units) {
	int64_t u = __atomic_fetch_add(next, 1, __ATOMIC_RELAXED);
	return u < units ? u : -1;
}

// panel_group is the size of the groups of panels the shared-counter split hands out
// (about DYN_UNITS per worker); *groups is their number.
static inline int64_t panel_group(int64_t panels, int nth, int64_t *groups) {
	int64_t group = (panels + DYN_UNITS * nth - 1) / (DYN_UNITS * nth);
	*groups = (panels + group - 1) / group;
	return group;
}

// gemm_q_shared is gemm_q over all rows and panels with the work handed out from next in
// units of a group of panels for one chunk of rows, row chunks first: a call quantizes
// each chunk of rows it works on once.
static int gemm_q_shared(int dt, const float *x, int64_t ldx, const uint8_t *w, float *y, int64_t m, int64_t n,
                         int64_t k, const gemm_args *g, int64_t *next, int nth, float *scratch) {
	int64_t R = qrows_max(k);
	if (R < 1) return SYNTH_EARG;
	if (R > m) R = m;
	int64_t panels = (n + NR - 1) / NR, groups, group = panel_group(panels, nth, &groups), have = -1;
	for (int64_t u; (u = take_unit(next, (m + R - 1) / R * groups)) >= 0;) {
		int64_t c0 = u / groups * R, rows = m - c0 < R ? m - c0 : R, p0 = u % groups * group;
		if (c0 != have) gemm_q_rows(x, ldx, k, c0, rows, R, scratch), have = c0;
		gemm_q_panels(dt, w, y, n, k, g, p0, p0 + group < panels ? p0 + group : panels, c0, rows, R, scratch);
	}
	return SYNTH_OK;
}

// use_qdot says whether the GEMM of dt with m rows takes the integer-dot path (the only
// path the quantized types have at m <= 2*MR: both bounds are larger).
static inline int use_qdot(int dt, int64_t m) {
	return is_quant(dt) && m <= (dt == SYNTH_Q5_K || dt == SYNTH_Q6_K ? QDOT_MAX_M_UNPACK : QDOT_MAX_M);
}
_Static_assert(QDOT_MAX_M > 2 * MR && QDOT_MAX_M_UNPACK > 2 * MR, "the small and half tiles have no quantized types");

int ISA_SFX(synth_gemm_quantizes_x)(int dt, int64_t m) { return use_qdot(dt, m); }

// decode_panels runs panels [p0, p1) for all m <= 2 * MR rows of x: each panel streams
// once, converted in registers (the small tiles), or in two halves of rows (half tiles).
static void decode_panels(int dt, const float *x, int64_t ldx, const void *w, float *y, int64_t m, int64_t n,
                          int64_t k, const gemm_args *g, int64_t p0, int64_t p1) {
	int64_t panel_bytes = k / block_vals(dt) * pblock_bytes(dt) * NR;
	for (int64_t p = p0; p < p1; p++) {
		int64_t col = p * NR, nv = n - col < NR ? n - col : NR;
		const uint8_t *panel = (const uint8_t *)w + p * panel_bytes;
		if (m <= MR)
			small_tiles[dt][m](x, ldx, panel, k, y + col, col, nv, g, 0);
		else
			half_tiles[dt][m - MR - 1](x, ldx, panel, k, y + col, col, nv, g);
	}
}

// Blocked GEMM on packed weights (BLIS order): for each K block of KC, for each block of
// MC rows packed into scratch, for each panel of NR columns (dequantized into an L1
// buffer unless f32), for each MR-row tile: the micro-kernel. Workers split the panels
// (or, when there are too few panels, the row tiles). Each output is the sum over K in
// order, in f32, started from 0 (or from y for an in-place residual).
static int gemm_simd(int dt, const float *x, int64_t ldx, const void *w, const float *bias, int act,
                     const float *res, int64_t ldr, float *y, int64_t ldy, int64_t m, int64_t n, int64_t k,
                     float *scratch, int ith, int nth, int64_t *next) {
	if (bad_thread(ith, nth) || bad_act(act) || m < 0 || n < 0 || k < 0) return SYNTH_EARG;
	if (!valid_dt(dt) || k % block_vals(dt) != 0) return SYNTH_EARG;
	if (res == y && (ldr != ldy || act != SYNTH_ACT_NONE)) return SYNTH_EARG;
	gemm_args g = {bias, res == y ? NULL : res, ldr, ldy, act, res == y};
	int64_t panels = (n + NR - 1) / NR, tiles = (m + MR - 1) / MR;
	int decoding = m <= MR || (m <= 2 * MR && HALF_TILES);
	if (next && panels >= 2 * nth && m > 0 && k > 0) { // hand out groups of panels (kernels.h, next)
		if (use_qdot(dt, m)) return gemm_q_shared(dt, x, ldx, w, y, m, n, k, &g, next, nth, scratch);
		if (decoding) {
			int64_t groups, group = panel_group(panels, nth, &groups);
			for (int64_t u; (u = take_unit(next, groups)) >= 0;)
				decode_panels(dt, x, ldx, w, y, m, n, k, &g, u * group, u * group + group < panels ? u * group + group : panels);
			return SYNTH_OK;
		}
	}
	int64_t p0 = 0, p1 = panels, r0 = 0, r1 = m;
	if (panels >= 2 * nth || tiles < nth) {
		share(panels, ith, nth, &p0, &p1);
	} else {
		int64_t t0, t1;
		share(tiles, ith, nth, &t0, &t1);
		r0 = t0 * MR;
		r1 = t1 * MR < m ? t1 * MR : m;
	}
	if (p0 >= p1 || r0 >= r1) return SYNTH_OK;
	if (use_qdot(dt, m)) return gemm_q(dt, x, ldx, w, y, n, k, &g, p0, p1, r0, r1, scratch);
	if (decoding && r0 == 0 && r1 == m) {
		decode_panels(dt, x, ldx, w, y, m, n, k, &g, p0, p1);
		return SYNTH_OK;
	}
	int64_t panel_bytes = k / block_vals(dt) * pblock_bytes(dt) * NR;
	float *ap = scratch;            // MC x KC
	float *bbuf = scratch + MC * KC; // KC x NR
	for (int64_t k0 = 0; k0 < k; k0 += KC) {
		int64_t kc = k - k0 < KC ? k - k0 : KC;
		int first = k0 == 0, last = k0 + kc == k;
		for (int64_t m0 = r0; m0 < r1; m0 += MC) {
			int64_t mc = r1 - m0 < MC ? r1 - m0 : MC;
			pack_a(x + m0 * ldx + k0, ldx, mc, kc, ap);
			for (int64_t p = p0; p < p1; p++) {
				const float *bp;
				const uint8_t *panel = (const uint8_t *)w + p * panel_bytes;
				if (dt == SYNTH_F32) {
					bp = (const float *)panel + k0 * NR;
				} else {
					dequant_panel(dt, panel, k0, kc, bbuf);
					bp = bbuf;
				}
				int64_t col = p * NR, nv = n - col < NR ? n - col : NR;
				for (int64_t t = 0; t * MR < mc; t++) {
					int64_t mr = mc - t * MR < MR ? mc - t * MR : MR;
					int64_t row = m0 + t * MR;
					gemm_tiles[mr](ap + t * MR * kc, bp, kc, y + row * ldy + col, col, nv, first, last, &g, row);
				}
			}
		}
	}
	return SYNTH_OK;
}

#define GEMM_SIMD(name, dt)                                                                                 \
	int ISA_SFX(name)(const float *x, int64_t ldx, const void *w, const float *bias, int act, const float *res, \
	                  int64_t ldr, float *y, int64_t ldy, int64_t m, int64_t n, int64_t k, float *scratch,     \
	                  int ith, int nth, int64_t *next) {                                                        \
		return gemm_simd(dt, x, ldx, w, bias, act, res, ldr, y, ldy, m, n, k, scratch, ith, nth, next);       \
	}
GEMM_SIMD(synth_gemm_f32, SYNTH_F32)
GEMM_SIMD(synth_gemm_f16, SYNTH_F16)
GEMM_SIMD(synth_gemm_bf16, SYNTH_BF16)
GEMM_SIMD(synth_gemm_q8_0, SYNTH_Q8_0)
GEMM_SIMD(synth_gemm_q4_0, SYNTH_Q4_0)
GEMM_SIMD(synth_gemm_q4_k, SYNTH_Q4_K)
GEMM_SIMD(synth_gemm_q5_k, SYNTH_Q5_K)
GEMM_SIMD(synth_gemm_q6_k, SYNTH_Q6_K)

// ---- row ops ------------------------------------------------------------------------------

// LayerNorm: two passes like the reference, in f32 with VL-lane partial sums (so the
// sums are in a different order, pairwise-ish, with f32 rounding).
int ISA_SFX(synth_layernorm_f32)(const float *x, int64_t ldx, const float *gamma, const float *beta, float eps,
                                 float *y, int64_t ldy, int64_t rows, int64_t cols, int ith, int nth) {
	if (bad_thread(ith, nth) || rows < 0 || cols < 1) return SYNTH_EARG;
	int64_t r0, r1;
	share(rows, ith, nth, &r0, &r1);
	for (int64_t r = r0; r < r1; r++) {
		const float *xr = x + r * ldx;
		float *yr = y + r * ldy;
		vf s0 = vzero(), s1 = vzero();
		int64_t c = 0;
		for (; c + 2 * VL <= cols; c += 2 * VL) {
			s0 = vadd(s0, vload(xr + c));
			s1 = vadd(s1, vload(xr + c + VL));
		}
		for (; c < cols; c += VL) s0 = vadd(s0, vloadn(xr + c, cols - c));
		float mean = vhsum(vadd(s0, s1)) / (float)cols;
		vf mv = vset1(mean);
		s0 = vzero();
		s1 = vzero();
		for (c = 0; c + 2 * VL <= cols; c += 2 * VL) {
			vf d0 = vsub(vload(xr + c), mv), d1 = vsub(vload(xr + c + VL), mv);
			s0 = vfma(d0, d0, s0);
			s1 = vfma(d1, d1, s1);
		}
		for (; c < cols; c += VL) {
			vf d = vsub(vloadn(xr + c, cols - c), mv);
			d = vsel(vlt(viota(), vset1((float)(cols - c))), vzero(), d); // masked-out lanes are 0 - mean
			s0 = vfma(d, d, s0);
		}
		float var = vhsum(vadd(s0, s1)) / (float)cols;
		vf inv = vset1(1.0f / sqrtf(var + eps));
		for (c = 0; c < cols; c += VL) {
			int64_t nv = cols - c;
			vf v = vmul(vsub(vloadn(xr + c, nv), mv), inv);
			if (gamma) v = vmul(v, vloadn(gamma + c, nv));
			if (beta) v = vadd(v, vloadn(beta + c, nv));
			vstoren(yr + c, v, nv);
		}
	}
	return SYNTH_OK;
}

// Softmax: max, then e^(s x - max) (vexp, ~2 ulp) stored and summed in f32 lanes, then a
// multiply by 1/sum (log: s x - max - log(sum), the log in scalar double).
int ISA_SFX(synth_softmax_f32)(const float *x, int64_t ldx, float *y, int64_t ldy, int64_t rows, int64_t cols,
                               float scale, int logsm, int ith, int nth) {
	if (bad_thread(ith, nth) || rows < 0 || cols < 1) return SYNTH_EARG;
	int64_t r0, r1;
	share(rows, ith, nth, &r0, &r1);
	vf sv = vset1(scale);
	for (int64_t r = r0; r < r1; r++) {
		const float *xr = x + r * ldx;
		float *yr = y + r * ldy;
		vf mx = vset1(-INFINITY);
		for (int64_t c = 0; c < cols; c += VL) {
			vf v = vmul(vloadn(xr + c, cols - c), sv);
			mx = vmax(vsel(vlt(viota(), vset1((float)(cols - c))), vset1(-INFINITY), v), mx);
		}
		float m = vhmax(mx);
		if (m == -INFINITY) {
			float u = logsm ? -logf((float)cols) : 1.0f / (float)cols;
			for (int64_t c = 0; c < cols; c++) yr[c] = u;
			continue;
		}
		vf mv = vset1(m), sum = vzero();
		for (int64_t c = 0; c < cols; c += VL) {
			int64_t nv = cols - c;
			vf e = vexp(vsub(vmul(vloadn(xr + c, nv), sv), mv));
			e = vsel(vlt(viota(), vset1((float)nv)), vzero(), e);
			sum = vadd(sum, e);
			if (!logsm) vstoren(yr + c, e, nv);
		}
		float s = vhsum(sum);
		if (logsm) {
			vf ls = vset1(m + (float)log((double)s));
			for (int64_t c = 0; c < cols; c += VL) vstoren(yr + c, vsub(vmul(vloadn(xr + c, cols - c), sv), ls), cols - c);
		} else {
			vf inv = vset1(1.0f / s);
			for (int64_t c = 0; c < cols; c += VL) vstoren(yr + c, vmul(vloadn(yr + c, cols - c), inv), cols - c);
		}
	}
	return SYNTH_OK;
}

// Activation with the vector approximations of vact (see vexp, vgelu).
int ISA_SFX(synth_act_f32)(const float *x, int64_t ldx, float *y, int64_t ldy, int64_t rows, int64_t cols, int act,
                           int ith, int nth) {
	if (bad_thread(ith, nth) || bad_act(act) || rows < 0 || cols < 0) return SYNTH_EARG;
	int64_t r0, r1;
	share(rows, ith, nth, &r0, &r1);
	for (int64_t r = r0; r < r1; r++)
		for (int64_t c = 0; c < cols; c += VL) vstoren(y + r * ldy + c, vact(act, vloadn(x + r * ldx + c, cols - c)), cols - c);
	return SYNTH_OK;
}

// axpby: alpha a + beta b as one multiply and one FMA (the reference rounds the product
// beta b separately).
int ISA_SFX(synth_axpby_f32)(const float *a, int64_t lda, float alpha, const float *b, int64_t ldb, int64_t brows,
                             float beta, float *y, int64_t ldy, int64_t rows, int64_t cols, int ith, int nth) {
	if (bad_thread(ith, nth) || rows < 0 || cols < 0 || (b && brows < 1)) return SYNTH_EARG;
	int64_t r0, r1;
	share(rows, ith, nth, &r0, &r1);
	vf av = vset1(alpha), bv = vset1(beta);
	for (int64_t r = r0; r < r1; r++) {
		const float *ar = a + r * lda, *br = b ? b + (r % brows) * ldb : NULL;
		for (int64_t c = 0; c < cols; c += VL) {
			int64_t nv = cols - c;
			vf v = vmul(av, vloadn(ar + c, nv));
			if (br) v = vfma(bv, vloadn(br + c, nv), v);
			vstoren(y + r * ldy + c, v, nv);
		}
	}
	return SYNTH_OK;
}

// L2 normalize: the sum of squares in f32 lanes, sqrt and the reciprocal in double.
int ISA_SFX(synth_l2norm_f32)(const float *x, int64_t ldx, float *y, int64_t ldy, int64_t rows, int64_t cols,
                              int ith, int nth) {
	if (bad_thread(ith, nth) || rows < 0 || cols < 0) return SYNTH_EARG;
	int64_t r0, r1;
	share(rows, ith, nth, &r0, &r1);
	for (int64_t r = r0; r < r1; r++) {
		const float *xr = x + r * ldx;
		vf s0 = vzero(), s1 = vzero();
		int64_t c = 0;
		for (; c + 2 * VL <= cols; c += 2 * VL) {
			vf a0 = vload(xr + c), a1 = vload(xr + c + VL);
			s0 = vfma(a0, a0, s0);
			s1 = vfma(a1, a1, s1);
		}
		for (; c < cols; c += VL) {
			vf a0 = vloadn(xr + c, cols - c);
			s0 = vfma(a0, a0, s0);
		}
		double nrm = sqrt((double)vhsum(vadd(s0, s1)));
		vf inv = vset1((float)(1.0 / (nrm > 1e-12 ? nrm : 1e-12)));
		for (c = 0; c < cols; c += VL) vstoren(y + r * ldy + c, vmul(vloadn(xr + c, cols - c), inv), cols - c);
	}
	return SYNTH_OK;
}

// Argmax: a vector max (NaN lanes ignored, NaN flagged), then the first lane equal to it.
int ISA_SFX(synth_argmax_f32)(const float *x, int64_t ldx, int64_t rows, int64_t cols, int64_t *out, int ith, int nth) {
	if (bad_thread(ith, nth) || rows < 0 || cols < 1) return SYNTH_EARG;
	int64_t r0, r1;
	share(rows, ith, nth, &r0, &r1);
	for (int64_t r = r0; r < r1; r++) {
		const float *xr = x + r * ldx;
		vf mx = vset1(-INFINITY);
		int nan = 0;
		for (int64_t c = 0; c < cols; c += VL) {
			vf v = vloadn(xr + c, cols - c);
			v = vsel(vlt(viota(), vset1((float)(cols - c))), vset1(-INFINITY), v);
			nan |= vany(visnan(v));
			mx = vmax(v, mx);
		}
		int64_t best = 0;
		if (nan) {
			while (!isnan(xr[best])) best++;
		} else {
			vf m = vset1(vhmax(mx));
			for (int64_t c = 0;; c += VL) {
				vm hit = veq(vloadn(xr + c, cols - c), m);
				if (vany(hit)) {
					best = c + vfirst(hit);
					break;
				}
			}
		}
		out[r] = best;
	}
	return SYNTH_OK;
}

// ---- attention --------------------------------------------------------------------------

#define BK 64 // keys per block: one block of scores per worker at a time
#define NARROW 4 // sequences with at most this many queries take the per-query path

static inline int key_masked(const uint8_t *mask, int64_t moff, int64_t j) { return mask && moff >= 0 && !mask[moff + j]; }

// Keys and values are f32 or f16 (an f16 KV cache). The kernels below take the element
// type as a constant f16 flag and are compiled once for each: kv_ptr is row j of k or v
// (rows ld elements apart), kv_load n (< VL: masked) values at element c of such a row,
// widened to f32 (exact).
static inline __attribute__((always_inline)) const void *kv_ptr(const int f16, const void *base, int64_t ld, int64_t j) {
	return (const uint8_t *)base + j * ld * (f16 ? 2 : 4);
}

static inline __attribute__((always_inline)) vf kv_load(const int f16, const void *row, int64_t c, int64_t n) {
	return f16 ? vloadn_f16((const uint16_t *)row + c, n) : vloadn((const float *)row + c, n);
}

// widen_rows writes rows [0, rows) x d of f16 src (rows lds apart) to dst as f32, rows d
// apart: a block of an f16 cache for the kernels that read k and v as f32 operands.
static void widen_rows(const uint16_t *src, int64_t lds, int64_t rows, int64_t d, float *dst) {
	for (int64_t r = 0; r < rows; r++)
		for (int64_t c = 0; c < d; c += VL) vstoren(dst + r * d + c, vloadn_f16(src + r * lds + c, d - c), d - c);
}

// mean_v writes the mean of v rows [0, nk) (head columns) to o: the output of a query
// with no valid key (uniform weights), or zeros when nk is 0.
static void mean_v(int f16, const void *v, int64_t ldv, int64_t nk, int64_t d, float *o, int64_t ostride) {
	for (int64_t c = 0; c < d; c++) {
		double s = 0;
		for (int64_t j = 0; j < nk; j++)
			s += f16 ? f16_to_f32(((const uint16_t *)v)[j * ldv + c]) : ((const float *)v)[j * ldv + c];
		o[c * ostride] = nk ? (float)(s / (double)nk) : 0.0f;
	}
}

// attend_narrow: one query row against up to HG heads h0.. at once, flash-style over
// blocks of BK keys. Per head, scores are f32 dot products over d (VL lanes, then
// horizontal sums four keys at a time), the running max and sum are rescaled per block
// (online softmax), and the output accumulates p_j v_j over d in registers, up to 8
// vectors of d at a time. f16 keys and values are widened as they are loaded. The heads
// go together because a cache row holds them side by side: the score loop reads each key
// row's hg * d values in one pass. One head at a time read d values every ldk and waited
// on memory: OPT-2.7B's F16 cache on avx2 went from 5.8-6.8 to 8.3-9.7 GB/s (medians,
// BenchmarkAttentionCached). Two things measured no better: software prefetch of the
// keys ahead or of the block's values (within noise), and the values taken a row at a
// time across the heads, sums in L1 instead of registers (0.7-0.9x). Each head's
// arithmetic is the one-head loop's, in the same order.
#define HG 8 // heads per decoding unit: hg * d contiguous values of each row
static inline __attribute__((always_inline)) void attend_narrow(const int f16, const float *qi, const void *k,
                                                                int64_t ldk, const void *v, int64_t ldv, float *oi,
                                                                int64_t nk, int64_t kend, int64_t d, int64_t hg,
                                                                float scale, const uint8_t *mask, int64_t moff,
                                                                float *scratch) {
	const int64_t es = f16 ? 2 : 4, dv = (d + VL - 1) / VL * VL;
	float *s = scratch;                  // [HG][BK] scores, then probabilities
	float *acc = s + HG * BK;            // [HG][dv]
	float *qs = acc + HG * dv;           // [HG][dv] the scaled queries, zero padded
	float mrun[HG], lrun[HG];            // running max and sum
	for (int64_t g = 0; g < hg; g++) {
		for (int64_t c = 0; c < dv; c += VL) {
			vstore(qs + g * dv + c, vmul(vloadn(qi + g * d + c, d - c), vset1(scale)));
			vstore(acc + g * dv + c, vzero());
		}
		mrun[g] = -INFINITY, lrun[g] = 0;
	}
	for (int64_t j0 = 0; j0 < kend; j0 += BK) {
		int64_t bk = kend - j0 < BK ? kend - j0 : BK;
		for (int64_t j = 0; j < bk; j += 4) {
			// four keys at once (the rows past bk repeat the last: computed, not stored)
			const uint8_t *k0 = kv_ptr(f16, k, ldk, j0 + j), *k1 = kv_ptr(f16, k, ldk, j0 + j + (j + 1 < bk)),
			              *k2 = kv_ptr(f16, k, ldk, j0 + j + (j + 2 < bk ? 2 : 0)),
			              *k3 = kv_ptr(f16, k, ldk, j0 + j + (j + 3 < bk ? 3 : 0));
			for (int64_t g = 0; g < hg; g++) {
				const int64_t off = g * d * es;
				const float *qg = qs + g * dv;
				vf a0 = vzero(), a1 = vzero(), a2 = vzero(), a3 = vzero();
				for (int64_t c = 0; c < d; c += VL) {
					vf qv = vload(qg + c);
					a0 = vfma(qv, kv_load(f16, k0 + off, c, d - c), a0);
					a1 = vfma(qv, kv_load(f16, k1 + off, c, d - c), a1);
					a2 = vfma(qv, kv_load(f16, k2 + off, c, d - c), a2);
					a3 = vfma(qv, kv_load(f16, k3 + off, c, d - c), a3);
				}
				float t[4];
				vhsum4(a0, a1, a2, a3, t);
				for (int64_t e = 0; e < 4 && j + e < bk; e++)
					s[g * BK + j + e] = key_masked(mask, moff, j0 + j + e) ? -INFINITY : t[e];
			}
		}
		for (int64_t g = 0; g < hg; g++) {
			float *sg = s + g * BK, *ag = acc + g * dv;
			vf bmv = vset1(-INFINITY);
			for (int64_t j = 0; j < bk; j += VL)
				bmv = vmax(vsel(vlt(viota(), vset1((float)(bk - j))), vset1(-INFINITY), vloadn(sg + j, bk - j)), bmv);
			float bm = vhmax(bmv);
			if (bm == -INFINITY) continue; // no valid key in this block
			float m = mrun[g], mn = m > bm ? m : bm;
			float alpha = expf(m - mn); // 0 when m is -inf
			vf mv = vset1(mn), psum = vzero();
			for (int64_t j = 0; j < bk; j += VL) {
				vf p = vexp(vsub(vloadn(sg + j, bk - j), mv));
				p = vsel(vlt(viota(), vset1((float)(bk - j))), vzero(), p);
				psum = vadd(psum, p);
				vstoren(sg + j, p, bk - j);
			}
			lrun[g] = lrun[g] * alpha + vhsum(psum);
			mrun[g] = mn;
			vf av = vset1(alpha);
			const uint8_t *vg = (const uint8_t *)v + g * d * es;
			for (int64_t c0 = 0; c0 < dv; c0 += 8 * VL) {
				int64_t nvec = (dv - c0) / VL < 8 ? (dv - c0) / VL : 8;
				vf o[8];
#pragma GCC unroll 8
				for (int e = 0; e < 8; e++) o[e] = e < nvec ? vmul(vload(ag + c0 + e * VL), av) : vzero();
				for (int64_t j = 0; j < bk; j++) {
					if (sg[j] == 0) continue;
					vf p = vset1(sg[j]);
					const void *vj = kv_ptr(f16, vg, ldv, j0 + j);
#pragma GCC unroll 8
					for (int e = 0; e < 8; e++)
						if (e < nvec) o[e] = vfma(p, kv_load(f16, vj, c0 + e * VL, d - c0 - e * VL), o[e]);
				}
#pragma GCC unroll 8
				for (int e = 0; e < 8; e++)
					if (e < nvec) vstore(ag + c0 + e * VL, o[e]);
			}
		}
	}
	for (int64_t g = 0; g < hg; g++) {
		if (lrun[g] == 0) {
			mean_v(f16, (const uint8_t *)v + g * d * es, ldv, nk, d, oi + g * d, 1);
			continue;
		}
		vf inv = vset1(1.0f / lrun[g]);
		for (int64_t c = 0; c < d; c += VL) vstoren(oi + g * d + c, vmul(vload(acc + g * dv + c), inv), d - c);
	}
}

// attend_wide: a block of up to NR queries of one head, vectorised across the queries.
// The scaled queries are transposed once into qt [d][NR]; per block of BK keys, the
// micro-kernel computes scores st[j][queries] = sum_c k[j][c] qt[c][:] (keys as rows,
// read in place), the online softmax runs lane-wise (one lane per query), and the
// output accumulates transposed, ot[c][:] += sum_j v[j][c] p[j][:], also with the
// micro-kernel. Scores and sums are f32. f16 keys and values are widened a block at a
// time into scratch first (a 1/NR share of the block's flops in conversions).
static inline __attribute__((always_inline)) void attend_wide(const int f16, const float *q, int64_t ldq,
                                                              const void *k, int64_t ldk, const void *v, int64_t ldv,
                                                              float *o, int64_t ldo, int64_t nq, int64_t nk,
                                                              int64_t qpos0, int64_t d, float scale, int causal,
                                                              const uint8_t *mask, int64_t moff, float *scratch) {
	float *qt = scratch;                            // [d][NR]
	float *st = qt + SYNTH_MAX_HEAD_DIM * NR;       // [BK][NR] scores, then probabilities
	float *ot = st + BK * NR;                       // [d][NR]
	float *lrow = ot + SYNTH_MAX_HEAD_DIM * NR;     // [NR] the softmax sums, per query
	float *kbuf = lrow + NR;                        // [BK][d] f16 keys of the block, widened
	float *vbuf = kbuf + BK * SYNTH_MAX_HEAD_DIM;   // [BK][d] f16 values of the block, widened
	// query rows are read along the row (a column walk down rows a multiple of 4 KiB apart
	// would miss L1 at every step); lanes past nq stay 0
	for (int64_t c = 0; c < d; c++) {
		vstore(qt + c * NR, vzero());
		vstore(qt + c * NR + VL, vzero());
		vstore(ot + c * NR, vzero());
		vstore(ot + c * NR + VL, vzero());
	}
	for (int64_t i = 0; i < nq; i++)
		for (int64_t c = 0; c < d; c++) qt[c * NR + i] = q[i * ldq + c] * scale;
	vf m0 = vset1(-INFINITY), m1 = m0, l0 = vzero(), l1 = vzero();
	int64_t kend = causal ? qpos0 + nq : nk; // keys past the last query's position are masked for all
	if (kend > nk) kend = nk;
	vf pos0 = vadd(viota(), vset1((float)qpos0)), pos1 = vadd(pos0, vset1((float)VL));
	for (int64_t j0 = 0; j0 < kend; j0 += BK) {
		int64_t bk = kend - j0 < BK ? kend - j0 : BK;
		const float *kb = (const float *)k + j0 * ldk, *vb = (const float *)v + j0 * ldv; // the block's rows
		int64_t ldkb = ldk, ldvb = ldv;
		if (f16) {
			widen_rows((const uint16_t *)k + j0 * ldk, ldk, bk, d, kbuf);
			widen_rows((const uint16_t *)v + j0 * ldv, ldv, bk, d, vbuf);
			kb = kbuf, vb = vbuf, ldkb = ldvb = d;
		}
		// scores: rows of MR keys at a time
		for (int64_t j = 0; j < bk; j += MR) {
			int64_t mr = bk - j < MR ? bk - j : MR;
			vf acc[MR][2];
			for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = vzero();
			const float *kj = kb + j * ldkb;
			switch (mr) {
#define MK_CASE(r)                                 \
	case r:                                    \
		mk(r, acc, kj, ldkb, 1, qt, d);        \
		break;
				MK_CASE(1) MK_CASE(2) MK_CASE(3) MK_CASE(4) MK_CASE(5) MK_CASE(6)
#if MR > 6
				MK_CASE(7) MK_CASE(8) MK_CASE(9) MK_CASE(10) MK_CASE(11) MK_CASE(12)
#endif
#undef MK_CASE
			}
			for (int64_t i = 0; i < mr; i++) {
				vf s0 = acc[i][0], s1 = acc[i][1];
				int64_t key = j0 + j + i;
				if (key_masked(mask, moff, key)) {
					s0 = s1 = vset1(-INFINITY);
				} else if (causal) { // query lanes whose position is before the key
					vf kv = vset1((float)key);
					s0 = vsel(vlt(pos0, kv), s0, vset1(-INFINITY));
					s1 = vsel(vlt(pos1, kv), s1, vset1(-INFINITY));
				}
				vstore(st + (j + i) * NR, s0);
				vstore(st + (j + i) * NR + VL, s1);
			}
		}
		// online softmax, one lane per query
		vf b0 = vset1(-INFINITY), b1 = b0;
		for (int64_t j = 0; j < bk; j++) {
			b0 = vmax(vload(st + j * NR), b0);
			b1 = vmax(vload(st + j * NR + VL), b1);
		}
		vf n0 = vmax(m0, b0), n1 = vmax(m1, b1);
		// lanes still without a valid key subtract 0 instead of -inf: their p and alpha are 0
		vf z0 = vsel(veq(n0, vset1(-INFINITY)), n0, vzero()), z1 = vsel(veq(n1, vset1(-INFINITY)), n1, vzero());
		vf a0 = vexp(vsub(m0, z0)), a1 = vexp(vsub(m1, z1));
		vf ps0 = vzero(), ps1 = vzero();
		for (int64_t j = 0; j < bk; j++) {
			vf p0 = vexp(vsub(vload(st + j * NR), z0)), p1 = vexp(vsub(vload(st + j * NR + VL), z1));
			ps0 = vadd(ps0, p0);
			ps1 = vadd(ps1, p1);
			vstore(st + j * NR, p0);
			vstore(st + j * NR + VL, p1);
		}
		l0 = vfma(l0, a0, ps0);
		l1 = vfma(l1, a1, ps1);
		m0 = n0;
		m1 = n1;
		// ot = ot * alpha + v^T p, rows of MR head columns at a time
		for (int64_t c = 0; c < d; c += MR) {
			int64_t mr = d - c < MR ? d - c : MR;
			vf acc[MR][2];
			for (int64_t i = 0; i < mr; i++) {
				acc[i][0] = vmul(vload(ot + (c + i) * NR), a0);
				acc[i][1] = vmul(vload(ot + (c + i) * NR + VL), a1);
			}
			const float *vc = vb + c;
			switch (mr) {
#define MKV_CASE(r)                                \
	case r:                                    \
		mk(r, acc, vc, 1, ldvb, st, bk);       \
		break;
				MKV_CASE(1) MKV_CASE(2) MKV_CASE(3) MKV_CASE(4) MKV_CASE(5) MKV_CASE(6)
#if MR > 6
				MKV_CASE(7) MKV_CASE(8) MKV_CASE(9) MKV_CASE(10) MKV_CASE(11) MKV_CASE(12)
#endif
#undef MKV_CASE
			}
			for (int64_t i = 0; i < mr; i++) {
				vstore(ot + (c + i) * NR, acc[i][0]);
				vstore(ot + (c + i) * NR + VL, acc[i][1]);
			}
		}
	}
	vstore(lrow, l0);
	vstore(lrow + VL, l1);
	for (int64_t i = 0; i < nq; i++) {
		if (lrow[i] == 0) {
			mean_v(f16, v, ldv, nk, d, o + i * ldo, 1);
			continue;
		}
		float inv = 1.0f / lrow[i];
		for (int64_t c = 0; c < d; c++) o[i * ldo + c] = ot[c * NR + i] * inv;
	}
}

// attention_kv is the attention loop for keys and values of one element type: sequences
// with at most NARROW queries (decoding) go query by query (attend_narrow); longer ones
// in blocks of NR queries (attend_wide). Work units are (sequence, query, group of HG
// heads) or (sequence, query block, head), dealt round-robin to the workers.
static inline __attribute__((always_inline)) void attention_kv(const int f16, const float *q, int64_t ldq,
                                                               const void *k, int64_t ldk, const void *v,
                                                               int64_t ldv, float *o, int64_t ldo, const int64_t *seq,
                                                               int64_t nseq, const uint8_t *mask, int64_t h, int64_t d,
                                                               float scale, int causal, float *scratch, int ith,
                                                               int nth) {
	int64_t u = 0;
	for (int64_t s = 0; s < nseq; s++) {
		const int64_t *sq = seq + 6 * s;
		int64_t qr0 = sq[0], nq = sq[1], kr0 = sq[2], nk = sq[3], qpos0 = sq[4], moff = sq[5];
		int narrow = nq <= NARROW;
		int64_t per = narrow ? 1 : NR, hstep = narrow ? HG : 1;
		for (int64_t i0 = 0; i0 < nq; i0 += per) {
			for (int64_t hd = 0; hd < h; hd += hstep, u++) {
				if (u % nth != ith) continue;
				const float *qh = q + (qr0 + i0) * ldq + hd * d;
				const void *kh = kv_ptr(f16, k, ldk, kr0), *vh = kv_ptr(f16, v, ldv, kr0);
				kh = (const uint8_t *)kh + hd * d * (f16 ? 2 : 4);
				vh = (const uint8_t *)vh + hd * d * (f16 ? 2 : 4);
				float *oh = o + (qr0 + i0) * ldo + hd * d;
				if (narrow) {
					int64_t kend = causal ? qpos0 + i0 + 1 : nk;
					if (kend > nk) kend = nk;
					attend_narrow(f16, qh, kh, ldk, vh, ldv, oh, nk, kend, d, h - hd < HG ? h - hd : HG, scale, mask, moff,
					              scratch);
				} else {
					int64_t nb = nq - i0 < NR ? nq - i0 : NR;
					attend_wide(f16, qh, ldq, kh, ldk, vh, ldv, oh, ldo, nb, nk, qpos0 + i0, d, scale, causal, mask,
					            moff, scratch);
				}
			}
		}
	}
}

static __attribute__((noinline)) void attention_f32kv(const float *q, int64_t ldq, const void *k, int64_t ldk,
                                                      const void *v, int64_t ldv, float *o, int64_t ldo,
                                                      const int64_t *seq, int64_t nseq, const uint8_t *mask, int64_t h,
                                                      int64_t d, float scale, int causal, float *scratch, int ith,
                                                      int nth) {
	attention_kv(0, q, ldq, k, ldk, v, ldv, o, ldo, seq, nseq, mask, h, d, scale, causal, scratch, ith, nth);
}

static __attribute__((noinline)) void attention_f16kv(const float *q, int64_t ldq, const void *k, int64_t ldk,
                                                      const void *v, int64_t ldv, float *o, int64_t ldo,
                                                      const int64_t *seq, int64_t nseq, const uint8_t *mask, int64_t h,
                                                      int64_t d, float scale, int causal, float *scratch, int ith,
                                                      int nth) {
	attention_kv(1, q, ldq, k, ldk, v, ldv, o, ldo, seq, nseq, mask, h, d, scale, causal, scratch, ith, nth);
}

// Attention: the loop above for f32 or f16 keys and values.
int ISA_SFX(synth_attention_f32)(const float *q, int64_t ldq, const void *k, int64_t ldk, const void *v,
                                 int64_t ldv, float *o, int64_t ldo, const int64_t *seq, int64_t nseq,
                                 const uint8_t *mask, int64_t h, int64_t d, float scale, int causal, int kvdt,
                                 float *scratch, int ith, int nth) {
	if (bad_thread(ith, nth) || nseq < 0 || h < 1 || d < 1 || d > SYNTH_MAX_HEAD_DIM) return SYNTH_EARG;
	if (kvdt == SYNTH_F32) attention_f32kv(q, ldq, k, ldk, v, ldv, o, ldo, seq, nseq, mask, h, d, scale, causal, scratch, ith, nth);
	else if (kvdt == SYNTH_F16) attention_f16kv(q, ldq, k, ldk, v, ldv, o, ldo, seq, nseq, mask, h, d, scale, causal, scratch, ith, nth);
	else return SYNTH_EARG;
	return SYNTH_OK;
}

// ---- row gather ---------------------------------------------------------------------------

// Gather from packed panels: the row's values lie nr elements apart in its panel (F32,
// F16, BF16) or in its 32-bit lanes of a chunk (the quantized types), so each is fetched
// with a scalar load into a buffer of VL (f16, bf16) or a chunk of 32 codes, then
// converted and scaled with vectors, the scale once per chunk. Exact, as the reference
// (the K-quants' products are exact, so the order of operations does not matter). Raw
// rows (nr 0) go to the reference.
int ISA_SFX(synth_gather_rows)(int dt, const void *w, int64_t n, int64_t k, int64_t nr, const int32_t *ids,
                               int64_t rows, float *out, int64_t ldo, int ith, int nth) {
	if (nr == 0) return synth_gather_rows_ref(dt, w, n, k, nr, ids, rows, out, ldo, ith, nth);
	if (bad_thread(ith, nth) || !valid_dt(dt) || n < 0 || k < 0 || rows < 0 || nr < 0 || nr % 2 != 0) return SYNTH_EARG;
	if (k % block_vals(dt) != 0) return SYNTH_EARG;
	int64_t sbv = block_vals(dt), pbb = pblock_bytes(dt) * nr, pstride = k / sbv * pbb, r0, r1;
	share(rows, ith, nth, &r0, &r1);
	for (int64_t r = r0; r < r1; r++) {
		int64_t id = ids ? ids[r] : r;
		if (id < 0 || id >= n) return SYNTH_EARG;
		const uint8_t *panel = (const uint8_t *)w + id / nr * pstride;
		int64_t j = id % nr;
		float *orow = out + r * ldo;
		switch (dt) {
		case SYNTH_F32: {
			const float *src = (const float *)panel + j;
			for (int64_t kk = 0; kk < k; kk++) orow[kk] = src[kk * nr];
			break;
		}
		case SYNTH_F16:
		case SYNTH_BF16: {
			const uint16_t *src = (const uint16_t *)panel + j;
			uint16_t t[VL];
			for (int64_t kk = 0; kk < k; kk += VL) {
				int64_t nv = k - kk < VL ? k - kk : VL;
				for (int64_t i = 0; i < VL; i++) t[i] = i < nv ? src[(kk + i) * nr] : 0;
				vstoren(orow + kk, dt == SYNTH_F16 ? vload_f16(t) : vload_bf16(t), nv);
			}
			break;
		}
		case SYNTH_Q8_0:
		case SYNTH_Q4_0: {
			int8_t t[QK];
			for (int64_t b = 0; b < k / QK; b++) {
				const uint8_t *pb = panel + b * pbb, *q = pb + PK_Q_OFF(nr);
				vf dv = vset1(f16_to_f32(load_u16(pb + 2 * j)));
				if (dt == SYNTH_Q8_0) {
					for (int i = 0; i < QK; i++) t[i] = (int8_t)q[chunk_at(nr, j, i)];
				} else {
					for (int i = 0; i < QK / 2; i++) {
						uint8_t byte = q[chunk_at(nr, j, i)];
						t[i] = (int8_t)((byte & 0x0f) - 8);
						t[i + QK / 2] = (int8_t)((byte >> 4) - 8);
					}
				}
				for (int i = 0; i < QK; i += VL) vstore(orow + b * QK + i, vmul(vload_i8(t + i), dv));
			}
			break;
		}
		default: { // K-quants: value = a*(code - off) - b per chunk (granule of 16 for Q6_K)
			int8_t t[QK];
			int off = code_offset(dt);
			for (int64_t kk = 0; kk < k; kk += QK) {
				const uint8_t *pb = panel + kk / QKK * pbb;
				int64_t l0 = kk % QKK;
				for (int i = 0; i < QK; i++) t[i] = (int8_t)(synth_kcode_packed(dt, pb, nr, j, l0 + i) - off);
				for (int i = 0; i < QK; i += VL) {
					int64_t l = l0 + i, c = l / QK;
					float a, bm = 0;
					if (dt == SYNTH_Q6_K) {
						a = f16_to_f32(load_u16(pb + 2 * j)) * (float)(int8_t)pb[PK6K_SC(nr) + (l / 16) * nr + j];
					} else {
						a = f16_to_f32(load_u16(pb + 2 * j)) * (float)pb[PK4K_SC(nr) + c * nr + j];
						bm = f16_to_f32(load_u16(pb + 2 * nr + 2 * j)) * (float)pb[PK4K_M(nr) + c * nr + j];
					}
					if (dt == SYNTH_Q6_K && VL > 16 - (l % 16)) { // a vector across two 16-value scales
						for (int e = 0; e < VL; e++)
							orow[kk + i + e] = f16_to_f32(load_u16(pb + 2 * j)) *
							                   (float)(int8_t)pb[PK6K_SC(nr) + ((l + e) / 16) * nr + j] * (float)t[i + e];
						continue;
					}
					vstore(orow + kk + i, vsub(vmul(vset1(a), vload_i8(t + i)), vset1(bm)));
				}
			}
			break;
		}
		}
	}
	return SYNTH_OK;
}

// ---- load-time conversions ----------------------------------------------------------------

// Quantize with vectors, bit for bit synth_quantize_ref (and so ggml's quantize_row_*_ref):
// F16 by the hardware conversion (round to nearest even, as the reference), Q8_0 with the
// reference's d = amax/127 and id = 1/d in scalar f32, x*id per lane (the same f32
// products) and roundf emulated exactly (trunc, then away from zero when the fraction,
// exact in f32, is at least one half). Blocks or vectors holding NaN or inf go to the
// reference (its NaN payloads and NaN ordering). Other types: the reference.
int ISA_SFX(synth_quantize)(int dt, const float *src, void *dst, int64_t n) {
	if (dt != SYNTH_F16 && dt != SYNTH_Q8_0) return synth_quantize_ref(dt, src, dst, n);
	if (!valid_dt(dt) || n < 0 || n % block_vals(dt) != 0) return SYNTH_EARG;
	uint8_t *out = dst;
	if (dt == SYNTH_F16) {
		int64_t i = 0;
		for (; i + VL <= n; i += VL) {
			vf v = vload(src + i);
			if (vany(visnan(v))) synth_quantize_ref(SYNTH_F16, src + i, out + 2 * i, VL);
			else vstoren_f16((uint16_t *)(out + 2 * i), v, VL);
		}
		return i < n ? synth_quantize_ref(SYNTH_F16, src + i, out + 2 * i, n - i) : SYNTH_OK;
	}
	for (int64_t b = 0; b < n / QK; b++) {
		const float *x = src + b * QK;
		uint8_t *blk = out + b * Q8_BYTES;
		vf am = vzero(), nf = vzero();
		for (int l = 0; l < QK; l += VL) {
			vf v = vload(x + l);
			am = vmax(vabs(v), am);
			nf = vadd(nf, vmul(v, vzero()));
		}
		float nonfinite = vhsum(nf);
		if (nonfinite != nonfinite) {
			synth_quantize_ref(SYNTH_Q8_0, x, blk, QK);
			continue;
		}
		float d = vhmax(am) / 127;
		float id = d != 0 ? 1.0f / d : 0.0f;
		uint16_t dh = f32_to_f16(d);
		memcpy(blk, &dh, 2);
		vf idv = vset1(id), half = vset1(0.5f), one = vset1(1.0f);
		for (int l = 0; l < QK; l += 2 * VL) {
			vf r[2];
			for (int e = 0; e < 2; e++) {
				vf v = vmul(vload(x + l + e * VL), idv);
				vf t = vtrunc(v);
				vf away = vsel(vlt(vabs(vsub(v, t)), half), vor_sign(one, v), vzero()); // ±1 where |frac| >= 1/2
				r[e] = vadd(t, away);
			}
			vstore_q8((int8_t *)blk + 2 + l, r[0], r[1]);
		}
	}
	return SYNTH_OK;
}

// ---- f16 rows -----------------------------------------------------------------------------

// f16 rows: the hardware conversion (F16C / AVX-512 vcvtps2ph) rounding to nearest even,
// the reference's rounding; only a NaN's payload may differ (both give a quiet NaN).
int ISA_SFX(synth_store_rows_f16)(const float *x, int64_t ldx, int64_t rows, int64_t cols, const int64_t *dst,
                                  uint16_t *y, int64_t ldy, int ith, int nth) {
	if (bad_thread(ith, nth) || rows < 0 || cols < 0) return SYNTH_EARG;
	int64_t r0, r1;
	share(rows, ith, nth, &r0, &r1);
	for (int64_t r = r0; r < r1; r++) {
		if (dst[r] < 0) return SYNTH_EARG;
		const float *xr = x + r * ldx;
		uint16_t *yr = y + dst[r] * ldy;
		for (int64_t c = 0; c < cols; c += VL) vstoren_f16(yr + c, vloadn(xr + c, cols - c), cols - c);
	}
	return SYNTH_OK;
}

// ---- FMA peak probe -------------------------------------------------------------------------

// 2*MR independent accumulators, as many as the GEMM micro-kernel keeps (more than FMA
// latency x throughput, fewer than the registers), register operands only. Each is a
// chain of non-associative FMAs whose result is returned, so the compiler can neither
// drop nor fold them.
float ISA_SFX(synth_fma_peak)(int64_t iters) {
	vf a[2 * MR];
	vf m = vset1(0.999999f), c = vset1(1e-7f);
	for (int i = 0; i < 2 * MR; i++) a[i] = vset1((float)i);
	for (int64_t it = 0; it < iters; it++) {
#pragma GCC unroll 24
		for (int i = 0; i < 2 * MR; i++) a[i] = vfma(a[i], m, c);
	}
	vf s = vzero();
	for (int i = 0; i < 2 * MR; i++) s = vadd(s, a[i]);
	return vhsum(s);
}

// ---- memory bandwidth probes -----------------------------------------------------------------

// STREAM copy over the share (ith, nth): four vectors in flight per step, plain stores.
void ISA_SFX(synth_stream_copy)(const float *src, float *dst, int64_t n, int ith, int nth) {
	int64_t i0, i1;
	share(n, ith, nth, &i0, &i1);
	int64_t i = i0;
	for (; i + 4 * VL <= i1; i += 4 * VL) {
		vf a = vload(src + i), b = vload(src + i + VL), c = vload(src + i + 2 * VL), d = vload(src + i + 3 * VL);
		vstore(dst + i, a);
		vstore(dst + i + VL, b);
		vstore(dst + i + 2 * VL, c);
		vstore(dst + i + 3 * VL, d);
	}
	for (; i < i1; i++) dst[i] = src[i];
}

// Read sweep over the share (ith, nth): four independent sums, so the adds never limit
// the rate.
void ISA_SFX(synth_stream_read)(const float *src, int64_t n, float *sum, int ith, int nth) {
	int64_t i0, i1;
	share(n, ith, nth, &i0, &i1);
	vf a = vzero(), b = vzero(), c = vzero(), d = vzero();
	int64_t i = i0;
	for (; i + 4 * VL <= i1; i += 4 * VL) {
		a = vadd(a, vload(src + i));
		b = vadd(b, vload(src + i + VL));
		c = vadd(c, vload(src + i + 2 * VL));
		d = vadd(d, vload(src + i + 3 * VL));
	}
	float t = vhsum(vadd(vadd(a, b), vadd(c, d)));
	for (; i < i1; i++) t += src[i];
	*sum = t;
}
