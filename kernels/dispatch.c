// dispatch.c: the ops by variant index (kernels.h, "dispatch"), one table per op.
#include "common.h"

typedef int (*gemm_fn)(const float *, int64_t, const void *, const float *, int, const float *, int64_t, float *,
                       int64_t, int64_t, int64_t, int64_t, float *, int, int, int64_t *);
#define GEMMS(isa)                                                                                          \
	{[SYNTH_F32] = synth_gemm_f32_##isa, [SYNTH_F16] = synth_gemm_f16_##isa, [SYNTH_BF16] = synth_gemm_bf16_##isa, \
	 [SYNTH_Q8_0] = synth_gemm_q8_0_##isa, [SYNTH_Q4_0] = synth_gemm_q4_0_##isa,                               \
	 [SYNTH_Q4_K] = synth_gemm_q4_k_##isa, [SYNTH_Q5_K] = synth_gemm_q5_k_##isa, [SYNTH_Q6_K] = synth_gemm_q6_k_##isa}
static const gemm_fn gemms[SYNTH_NISA][SYNTH_NDT] = {GEMMS(ref), GEMMS(avx2), GEMMS(avx512), GEMMS(avx512_vnni)};

static int bad(int isa) { return isa < SYNTH_ISA_REF || isa >= SYNTH_NISA; }

int synth_gemm(int isa, int dt, const float *x, int64_t ldx, const void *w, const float *bias, int act,
               const float *res, int64_t ldr, float *y, int64_t ldy, int64_t m, int64_t n, int64_t k,
               float *scratch, int ith, int nth, int64_t *next) {
	if (bad(isa) || !valid_dt(dt)) return SYNTH_EARG;
	return gemms[isa][dt](x, ldx, w, bias, act, res, ldr, y, ldy, m, n, k, scratch, ith, nth, next);
}

int synth_gemm_quantizes_x_avx2(int dt, int64_t m);
int synth_gemm_quantizes_x_avx512(int dt, int64_t m);
int synth_gemm_quantizes_x_avx512_vnni(int dt, int64_t m);

int synth_gemm_quantizes_x(int isa, int dt, int64_t m) {
	switch (isa) {
	case SYNTH_ISA_AVX2:
		return synth_gemm_quantizes_x_avx2(dt, m);
	case SYNTH_ISA_AVX512:
		return synth_gemm_quantizes_x_avx512(dt, m);
	case SYNTH_ISA_AVX512_VNNI:
		return synth_gemm_quantizes_x_avx512_vnni(dt, m);
	}
	return 0;
}

// VARIANTS lists op's variants in SYNTH_ISA_* order.
#define VARIANTS(op) {op##_ref, op##_avx2, op##_avx512, op##_avx512_vnni}

int synth_quantize(int isa, int dt, const float *src, void *dst, int64_t n) {
	static int (*const f[SYNTH_NISA])(int, const float *, void *, int64_t) = VARIANTS(synth_quantize);
	return bad(isa) ? SYNTH_EARG : f[isa](dt, src, dst, n);
}

int synth_layernorm(int isa, const float *x, int64_t ldx, const float *gamma, const float *beta, float eps,
                    float *y, int64_t ldy, int64_t rows, int64_t cols, int ith, int nth) {
	static int (*const f[SYNTH_NISA])(const float *, int64_t, const float *, const float *, float, float *, int64_t,
	                                  int64_t, int64_t, int, int) = VARIANTS(synth_layernorm_f32);
	return bad(isa) ? SYNTH_EARG : f[isa](x, ldx, gamma, beta, eps, y, ldy, rows, cols, ith, nth);
}

int synth_softmax(int isa, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t rows, int64_t cols,
                  float scale, int logsm, int ith, int nth) {
	static int (*const f[SYNTH_NISA])(const float *, int64_t, float *, int64_t, int64_t, int64_t, float, int, int,
	                                  int) = VARIANTS(synth_softmax_f32);
	return bad(isa) ? SYNTH_EARG : f[isa](x, ldx, y, ldy, rows, cols, scale, logsm, ith, nth);
}

int synth_act(int isa, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t rows, int64_t cols, int act,
              int ith, int nth) {
	static int (*const f[SYNTH_NISA])(const float *, int64_t, float *, int64_t, int64_t, int64_t, int, int, int) =
		VARIANTS(synth_act_f32);
	return bad(isa) ? SYNTH_EARG : f[isa](x, ldx, y, ldy, rows, cols, act, ith, nth);
}

int synth_axpby(int isa, const float *a, int64_t lda, float alpha, const float *b, int64_t ldb, int64_t brows,
                float beta, float *y, int64_t ldy, int64_t rows, int64_t cols, int ith, int nth) {
	static int (*const f[SYNTH_NISA])(const float *, int64_t, float, const float *, int64_t, int64_t, float, float *,
	                                  int64_t, int64_t, int64_t, int, int) = VARIANTS(synth_axpby_f32);
	return bad(isa) ? SYNTH_EARG : f[isa](a, lda, alpha, b, ldb, brows, beta, y, ldy, rows, cols, ith, nth);
}

int synth_l2norm(int isa, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t rows, int64_t cols, int ith,
                 int nth) {
	static int (*const f[SYNTH_NISA])(const float *, int64_t, float *, int64_t, int64_t, int64_t, int, int) =
		VARIANTS(synth_l2norm_f32);
	return bad(isa) ? SYNTH_EARG : f[isa](x, ldx, y, ldy, rows, cols, ith, nth);
}

int synth_argmax(int isa, const float *x, int64_t ldx, int64_t rows, int64_t cols, int64_t *out, int ith, int nth) {
	static int (*const f[SYNTH_NISA])(const float *, int64_t, int64_t, int64_t, int64_t *, int, int) =
		VARIANTS(synth_argmax_f32);
	return bad(isa) ? SYNTH_EARG : f[isa](x, ldx, rows, cols, out, ith, nth);
}

int synth_attention(int isa, const float *q, int64_t ldq, const void *k, int64_t ldk, const void *v, int64_t ldv,
                    float *o, int64_t ldo, const int64_t *seq, int64_t nseq, const uint8_t *mask, int64_t h,
                    int64_t d, float scale, int causal, int kvdt, float *scratch, int ith, int nth) {
	static int (*const f[SYNTH_NISA])(const float *, int64_t, const void *, int64_t, const void *, int64_t, float *,
	                                  int64_t, const int64_t *, int64_t, const uint8_t *, int64_t, int64_t, float, int,
	                                  int, float *, int, int) = VARIANTS(synth_attention_f32);
	return bad(isa) ? SYNTH_EARG
	                : f[isa](q, ldq, k, ldk, v, ldv, o, ldo, seq, nseq, mask, h, d, scale, causal, kvdt, scratch, ith,
	                         nth);
}

int synth_gather_rows(int isa, int dt, const void *w, int64_t n, int64_t k, int64_t nr, const int32_t *ids,
                      int64_t rows, float *out, int64_t ldo, int ith, int nth) {
	static int (*const f[SYNTH_NISA])(int, const void *, int64_t, int64_t, int64_t, const int32_t *, int64_t, float *,
	                                  int64_t, int, int) = VARIANTS(synth_gather_rows);
	return bad(isa) ? SYNTH_EARG : f[isa](dt, w, n, k, nr, ids, rows, out, ldo, ith, nth);
}

int synth_store_rows_f16(int isa, const float *x, int64_t ldx, int64_t rows, int64_t cols, const int64_t *dst,
                         uint16_t *y, int64_t ldy, int ith, int nth) {
	static int (*const f[SYNTH_NISA])(const float *, int64_t, int64_t, int64_t, const int64_t *, uint16_t *, int64_t,
	                                  int, int) = VARIANTS(synth_store_rows_f16);
	return bad(isa) ? SYNTH_EARG : f[isa](x, ldx, rows, cols, dst, y, ldy, ith, nth);
}
