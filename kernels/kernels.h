// kernels.h: every CPU kernel synth has, with shapes, aliasing and threading.
//
// Conventions (all kernels):
//   - Activations are f32, row-major 2-D [rows, cols] with a row stride ld >= cols in
//     elements, so a column slice of a wider matrix is passed without a copy.
//   - Threading belongs to the caller: a kernel does the share (ith, nth) of the work,
//     0 <= ith < nth, and the caller runs one call per worker. The shares of one op never
//     write the same output element, so they may run concurrently in any order.
//   - Kernels return SYNTH_OK or a SYNTH_E* status; they never print, exit or abort, and
//     keep no pointer after they return. The Go wrappers validate extents before calling,
//     so a status other than SYNTH_OK means a bug in the caller.
//   - synth_<op>_<dtype>_ref is the specification: plain loops, double accumulators for
//     long sums. Variants synth_<op>_<dtype>_<isa> (avx2, avx512) have the same semantics
//     up to the reduction order and the approximations their comments state.
//   - scratch is per-worker memory of SYNTH_SCRATCH_FLOATS floats, 64-byte aligned,
//     owned by the caller; kernels that take it use it only during the call.
#ifndef SYNTH_KERNELS_H
#define SYNTH_KERNELS_H

#include <stdint.h>

enum {
	SYNTH_OK = 0,
	SYNTH_EARG = 1, // an argument is out of range (bad dtype, shape, ith/nth)
};

// Weight dtypes, numbered as in package kernels (not ggml's numbers; 5 is not a weight
// dtype: package native numbers its I32 index type 5).
//   F32, F16 (IEEE binary16), BF16 (top half of an f32),
//   Q8_0: blocks of 32 values {f16 d; int8 qs[32]} (34 bytes), value = qs[j]*d,
//   Q4_0: blocks of 32 values {f16 d; uint8 qs[16]} (18 bytes), low nibble of qs[j] is
//         element j, high nibble element j+16, value = (nibble-8)*d,
//   Q4_K, Q5_K, Q6_K: ggml's K-quants, super-blocks of 256 values (144, 176 and 210 bytes)
//         in eight sub-blocks of 32 (Q6_K: sixteen of 16) with 6-bit (Q6_K: 8-bit) scales:
//         Q4_K {f16 d, dmin; u8 scales[12]; u8 qs[128]}, value = d*sc_s*q - dmin*m_s, q 4 bits;
//         Q5_K {f16 d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]}, the same with 5-bit q;
//         Q6_K {u8 ql[128]; u8 qh[64]; int8 scales[16]; f16 d}, value = d*sc_s*(q-32), q 6 bits.
//         The bit layouts are ggml-quants.c's (dequantize_row_q4_K, _q5_K, _q6_K).
// These are ggml's block layouts, so GGUF tensors are used in place. A row of K values
// takes synth_row_bytes(dt, K) bytes; K must be a multiple of the block size (32 for
// Q8_0 and Q4_0, 256 for the K-quants).
enum { SYNTH_F32 = 0, SYNTH_F16 = 1, SYNTH_BF16 = 2, SYNTH_Q8_0 = 3, SYNTH_Q4_0 = 4,
       SYNTH_Q4_K = 6, SYNTH_Q5_K = 7, SYNTH_Q6_K = 8, SYNTH_NDT = 9 };

// Epilogue activations, applied after the bias.
//   GELU:      0.5 x (1 + erf(x / sqrt 2))                      (torch gelu, exact)
//   GELU_TANH: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))  (gelu approximate="tanh")
//   QUICKGELU: x sigmoid(1.702 x)                               (OpenAI CLIP)
//   RELU:      max(x, 0)
enum { SYNTH_ACT_NONE = 0, SYNTH_ACT_GELU = 1, SYNTH_ACT_GELU_TANH = 2, SYNTH_ACT_QUICKGELU = 3, SYNTH_ACT_RELU = 4 };

// Floats of scratch each worker hands to a kernel: enough for every kernel here at any
// shape the Go side accepts (attention head dim <= SYNTH_MAX_HEAD_DIM).
#define SYNTH_SCRATCH_FLOATS (1 << 18)
#define SYNTH_MAX_HEAD_DIM 256

int64_t synth_row_bytes(int dt, int64_t k);

// ---- conversions and quantizers (ref only: used at load time) -------------------------
// dst: n values of dt; src: n f32. n must be a multiple of dt's block size.
// Bit-exact with ggml's quantize_row_*_ref / fp32 conversions (round to nearest even for
// F16 and BF16; Q8_0 d = amax/127, q = roundf(x/d); Q4_0 d = max/-8 of the signed value
// of largest magnitude, q = min(15, (int)(x/d + 8.5))). The K-quants are not quantized
// here (SYNTH_EARG): ggml's own quantizers make them (native/ggml), since their rounding
// depends on how the compiler fuses and vectorizes ggml's searches.
int synth_quantize_ref(int dt, const float *src, void *dst, int64_t n);
// dst: n f32 from n values of dt in src (exact for every dtype).
int synth_dequantize_ref(int dt, const void *src, float *dst, int64_t n);
// synth_quantize_ref's bytes, bit for bit, with vectors where a variant has them (F16,
// Q8_0); synth_quantize dispatches by variant index.
int synth_quantize_avx2(int dt, const float *src, void *dst, int64_t n);
int synth_quantize_avx512(int dt, const float *src, void *dst, int64_t n);
int synth_quantize_avx512_vnni(int dt, const float *src, void *dst, int64_t n);
int synth_quantize(int isa, int dt, const float *src, void *dst, int64_t n);

// ---- weight packing ---------------------------------------------------------------------
// The SIMD GEMMs read weights packed once at load into panels of nr rows (nr = the
// micro-kernel's width: 32 for avx512, 16 for avx2), rows past n zero. Panel p holds rows
// p*nr .. p*nr+nr-1, block by block along k:
//   F32, F16, BF16: elem[p][kk][j] (4 or 2 bytes each), k-major, one k step of a panel
//         being nr consecutive lanes; panel stride k*nr elements.
//   The quantized types keep their codes in bytes grouped for 4-way integer dot products:
//   "[8][nr][4]" below is a 32-value chunk of every row, byte (g*nr + j)*4 + t holding
//   value 4g+t of row j (so one 32-bit lane holds 4 consecutive values of one row).
//   Q8_0, per block: u16 d[nr] (f16 scales of rows j), int8 q[8][nr][4]: 34*nr bytes.
//   Q4_0, per block: u16 d[nr], u8 q[4][nr][4]: byte (g, j, t) holds value 4g+t of row j in
//         its low nibble and value 16+4g+t in its high nibble: 18*nr bytes.
//   Q4_K, per super-block: u16 d[nr], u16 dmin[nr], u8 sc[8][nr], u8 m[8][nr] (the 6-bit
//         scales and mins of sub-block s, unpacked from the 12 bytes), then u8 q[4][8][nr][4]:
//         pair r holds chunk 2r in the low nibbles and chunk 2r+1 in the high ones: 148*nr.
//   Q5_K: Q4_K's fields, then u8 h[8][nr][4], bit c being the fifth bit of the value in
//         chunk c: 180*nr bytes.
//   Q6_K, per super-block: u16 d[nr], int8 sc[16][nr], u8 q[4][8][nr][4] (pair 2h+e holds
//         chunk 4h+e low, chunk 4h+e+2 high: ggml's ql order), u8 h[2][8][nr][4] (bits
//         2c', 2c'+1 of h[hh] are bits 4-5 of the value in chunk 4hh+c'): 210*nr bytes.
// Values and scales are copied unchanged, so a packed panel dequantizes to exactly what
// the raw rows do. synth_packed_bytes is the size of the packed matrix; nr must be even.
// Threaded over panels.
int64_t synth_packed_bytes(int dt, int64_t n, int64_t k, int64_t nr);
int synth_pack(int dt, const void *w, int64_t n, int64_t k, int64_t nr, void *out, int ith, int nth);
// The inverse of synth_pack: the raw rows [n, k] of dt (synth_row_bytes(dt, k) bytes each)
// from panels of nr rows, bit for bit, so a packed matrix is a complete copy of its
// source. Threaded over rows.
int synth_unpack(int dt, const void *packed, int64_t n, int64_t k, int64_t nr, void *out, int ith, int nth);

// ---- row gather ---------------------------------------------------------------------------
// out[r] = row ids[r] of W [n, k] of dt as f32 (exact), for r < rows: embedding lookups
// and dequantizing a whole matrix (ids NULL: row r is row r). w is packed in panels of
// any even nr (synth_pack), or raw row-major rows when nr is 0 (the variants hand that
// layout to _ref). ids must be in [0, n); out: [rows, k] (ldo). Threaded over rows.
#define SYNTH_GATHER_DECL(isa)                                                                  \
	int synth_gather_rows_##isa(int dt, const void *w, int64_t n, int64_t k, int64_t nr,         \
	                            const int32_t *ids, int64_t rows, float *out, int64_t ldo, int ith, \
	                            int nth);
SYNTH_GATHER_DECL(ref)
SYNTH_GATHER_DECL(avx2)
SYNTH_GATHER_DECL(avx512)
SYNTH_GATHER_DECL(avx512_vnni)

// ---- f16 rows -----------------------------------------------------------------------------
// y[dst[r]] = x[r] rounded to IEEE binary16 (round to nearest even, as synth_quantize_ref's
// F16), for r < rows: appending keys and values to an f16 KV cache, each row to its slot's
// next position. x: [rows, cols] (ldx); y: rows of ldy halfs; dst[r] >= 0 and the rows
// dst names distinct. Threaded over rows.
#define SYNTH_STORE_F16_DECL(isa)                                                                \
	int synth_store_rows_f16_##isa(const float *x, int64_t ldx, int64_t rows, int64_t cols,       \
	                               const int64_t *dst, uint16_t *y, int64_t ldy, int ith, int nth);
SYNTH_STORE_F16_DECL(ref)
SYNTH_STORE_F16_DECL(avx2)
SYNTH_STORE_F16_DECL(avx512)
SYNTH_STORE_F16_DECL(avx512_vnni)

// ---- GEMM: y = act(x W^T + bias) + res ----------------------------------------------------
// x: [m, k] (ldx); bias: [n] or NULL; res: [m, n] (ldr) or NULL, added after act;
// y: [m, n] (ldy). y must not overlap x or w; y may alias res exactly (same pointer,
// ldy == ldr: an in-place residual) only when act is NONE.
// _ref: w is the raw row-major [n, k] of the dtype, threaded over n.
// _avx2/_avx512: w is packed (synth_pack) with nr = SYNTH_NR_AVX2/SYNTH_NR_AVX512,
//   threaded over panels of n (or row tiles of m when n is narrow); they take scratch.
//   Differences from _ref: f32 accumulation, K summed in order per output in blocks;
//   GELU uses erfc from Abramowitz & Stegun 7.1.26 (absolute error 1.5e-7) and exp,
//   tanh and sigmoid a polynomial exp (about 2 ulp).
//   For the quantized weight types (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K) where
//   synth_gemm_quantizes_x says so, the variants compute synth_qgemm_ref instead: x
//   quantized to 8 bits per 32 values, integer dot products per block, f32 across blocks.
// next: NULL, or a counter shared by the nth calls of one op, 0 before the first starts.
//   With it the variants' decoding and integer-dot paths hand out their work in small
//   units to whichever call asks first (the fixed shares, one per worker, leave a core
//   idle when another runs slower: a busy sibling, a slower core, a late start). Each
//   output is computed the same way whichever call computes it, so y is identical
//   either way. _ref and the variants' f32 blocked path take the fixed shares.
#define SYNTH_GEMM_DECL(dt, isa)                                                               \
	int synth_gemm_##dt##_##isa(const float *x, int64_t ldx, const void *w, const float *bias,  \
	                            int act, const float *res, int64_t ldr, float *y, int64_t ldy,  \
	                            int64_t m, int64_t n, int64_t k, float *scratch, int ith, int nth, \
	                            int64_t *next);
#define SYNTH_GEMM_ALL(isa)    \
	SYNTH_GEMM_DECL(f32, isa)  \
	SYNTH_GEMM_DECL(f16, isa)  \
	SYNTH_GEMM_DECL(bf16, isa) \
	SYNTH_GEMM_DECL(q8_0, isa) \
	SYNTH_GEMM_DECL(q4_0, isa) \
	SYNTH_GEMM_DECL(q4_k, isa) \
	SYNTH_GEMM_DECL(q5_k, isa) \
	SYNTH_GEMM_DECL(q6_k, isa)
SYNTH_GEMM_ALL(ref)
SYNTH_GEMM_ALL(avx2)
SYNTH_GEMM_ALL(avx512)
SYNTH_GEMM_ALL(avx512_vnni)

#define SYNTH_NR_AVX2 16
#define SYNTH_NR_AVX512 32

// The GEMM with quantized activations (llama.cpp's approach for quantized weights): each
// row of x is quantized per 32 values, xq = rint(x * id) with d = amax/127, id = 1/d (0
// when d is 0), rint rounding to nearest even (f32 arithmetic; d kept in f32), so that
// x~ = d * xq; then y = act((float)(sum_k x~[k] w[k]) + bias) + res, the sum in double
// over the exactly dequantized w. A block of x holding NaN or inf gives NaN outputs. This
// is the specification of the variants' integer-dot GEMM; against synth_gemm_*_ref it
// differs by at most sum over blocks of d/2 * sum_block |w| per output (before act).
// dt: a quantized type; w raw rows as in synth_gemm_*_ref. Threaded over n.
int synth_qgemm_ref(int dt, const float *x, int64_t ldx, const void *w, const float *bias, int act,
                    const float *res, int64_t ldr, float *y, int64_t ldy, int64_t m, int64_t n, int64_t k,
                    int ith, int nth);
// Whether variant isa's GEMM of dt with m rows quantizes x (computes synth_qgemm_ref).
int synth_gemm_quantizes_x(int isa, int dt, int64_t m);

// ---- row ops ------------------------------------------------------------------------------
// LayerNorm over each row (biased variance, torch.nn.LayerNorm):
//   y = (x - mean) / sqrt(var + eps) * gamma + beta
// x, y: [rows, cols]; y may alias x exactly. gamma, beta: [cols] or NULL (1 and 0).
// Threaded over rows.
int synth_layernorm_f32_ref(const float *x, int64_t ldx, const float *gamma, const float *beta,
                            float eps, float *y, int64_t ldy, int64_t rows, int64_t cols,
                            int ith, int nth);

// Softmax of scale*x over each row, with max subtraction: y_j = exp(s x_j - max) / sum.
// A row whose entries are all -inf becomes uniform (1/cols), as if masked with a large
// finite negative like HF's finfo.min. logsm != 0 gives log-softmax instead:
//   y_j = s x_j - max - log(sum exp(s x_i - max)).
// x, y: [rows, cols]; y may alias x exactly. Threaded over rows.
int synth_softmax_f32_ref(const float *x, int64_t ldx, float *y, int64_t ldy, int64_t rows,
                          int64_t cols, float scale, int logsm, int ith, int nth);

// y = act(x) elementwise; x, y: [rows, cols]; y may alias x exactly. Threaded over rows.
int synth_act_f32_ref(const float *x, int64_t ldx, float *y, int64_t ldy, int64_t rows,
                      int64_t cols, int act, int ith, int nth);

// y[r, c] = alpha a[r, c] + beta b[r mod brows, c]: add, scaled add, scale (b NULL), and
// row broadcast (brows < rows, e.g. a position table added to every image).
// a, y: [rows, cols]; b: [brows, cols] or NULL; y may alias a or b exactly.
// Threaded over rows.
int synth_axpby_f32_ref(const float *a, int64_t lda, float alpha, const float *b, int64_t ldb,
                        int64_t brows, float beta, float *y, int64_t ldy, int64_t rows,
                        int64_t cols, int ith, int nth);

// y = x / max(||x||_2, 1e-12) per row (torch.nn.functional.normalize). y may alias x.
int synth_l2norm_f32_ref(const float *x, int64_t ldx, float *y, int64_t ldy, int64_t rows,
                         int64_t cols, int ith, int nth);

// out[r] = index of the largest x[r, :]; ties give the first; a NaN counts as larger
// than any number (torch.argmax), so a row with NaN gives its first NaN. cols >= 1.
int synth_argmax_f32_ref(const float *x, int64_t ldx, int64_t rows, int64_t cols,
                         int64_t *out, int ith, int nth);

// ---- patch embedding --------------------------------------------------------------------
// im2col for a conv with kernel = stride = p, no padding (ViT patch embedding):
// img: [b, c, h, w] contiguous; out: [b*gh*gw, c*p*p] contiguous, gh = h/p, gw = w/p,
//   out[(bi*gh + gy)*gw + gx][(ci*p + ky)*p + kx] = img[bi][ci][gy*p + ky][gx*p + kx],
// the column order of a conv weight [width, c, p, p] flattened to [width, c*p*p].
// Threaded over output rows.
int synth_im2col_f32_ref(const float *img, int64_t b, int64_t c, int64_t h, int64_t w,
                         int64_t p, float *out, int ith, int nth);

// ---- attention --------------------------------------------------------------------------
// Multi-head scaled dot-product attention over nseq independent sequences, heads split
// contiguously (head hd = columns hd*d .. hd*d+d-1 of q, k, v and o).
//   seq: [nseq][6] int64: q_row0, nq, kv_row0, nk, qpos0, mask_off
//   sequence s has query rows q_row0 .. q_row0+nq-1 of q (and o) and key/value rows
//   kv_row0 .. kv_row0+nk-1 of k and v. Query i is at absolute position qpos0+i; with
//   causal it sees keys j <= qpos0+i. mask (bytes, 0 = padded key) holds key j of s at
//   mask[mask_off + j]; mask_off < 0 or mask NULL: every key valid.
//   score_ij = scale * q_i . k_j; o_i = sum_j softmax_j(score_ij) v_j over the valid j,
//   with max subtraction. A query with no valid key gets the mean of v over all nk keys
//   (uniform weights: what HF's finfo.min masking gives); with nk == 0, zeros.
// q: (ldq), o: (ldo) rows of h*d floats at least; k (ldk), v (ldv): rows of h*d values
// of kvdt, SYNTH_F32 or SYNTH_F16 (an f16 KV cache: values widened exactly to f32 as they
// are read, so the result is that of f32 k and v holding the same values). o must not
// overlap q, k or v. d <= SYNTH_MAX_HEAD_DIM. Threaded over sequences, heads and queries.
int synth_attention_f32_ref(const float *q, int64_t ldq, const void *k, int64_t ldk,
                            const void *v, int64_t ldv, float *o, int64_t ldo,
                            const int64_t *seq, int64_t nseq, const uint8_t *mask,
                            int64_t h, int64_t d, float scale, int causal, int kvdt,
                            float *scratch, int ith, int nth);

// ---- SIMD variants of the row ops, argmax and attention ----------------------------------
// Same contracts as the _ref kernels above (the differences in reduction order and
// approximations are stated at each definition in simd.h).
#define SYNTH_VARIANT_DECLS(isa)                                                                            \
	int synth_layernorm_f32_##isa(const float *x, int64_t ldx, const float *gamma, const float *beta,    \
	                              float eps, float *y, int64_t ldy, int64_t rows, int64_t cols, int ith, \
	                              int nth);                                                               \
	int synth_softmax_f32_##isa(const float *x, int64_t ldx, float *y, int64_t ldy, int64_t rows,        \
	                            int64_t cols, float scale, int logsm, int ith, int nth);                 \
	int synth_act_f32_##isa(const float *x, int64_t ldx, float *y, int64_t ldy, int64_t rows,            \
	                        int64_t cols, int act, int ith, int nth);                                     \
	int synth_axpby_f32_##isa(const float *a, int64_t lda, float alpha, const float *b, int64_t ldb,     \
	                          int64_t brows, float beta, float *y, int64_t ldy, int64_t rows,            \
	                          int64_t cols, int ith, int nth);                                            \
	int synth_l2norm_f32_##isa(const float *x, int64_t ldx, float *y, int64_t ldy, int64_t rows,         \
	                           int64_t cols, int ith, int nth);                                           \
	int synth_argmax_f32_##isa(const float *x, int64_t ldx, int64_t rows, int64_t cols, int64_t *out,    \
	                           int ith, int nth);                                                         \
	int synth_attention_f32_##isa(const float *q, int64_t ldq, const void *k, int64_t ldk,               \
	                              const void *v, int64_t ldv, float *o, int64_t ldo, const int64_t *seq,  \
	                              int64_t nseq, const uint8_t *mask, int64_t h, int64_t d, float scale,  \
	                              int causal, int kvdt, float *scratch, int ith, int nth);
SYNTH_VARIANT_DECLS(avx2)
SYNTH_VARIANT_DECLS(avx512)
SYNTH_VARIANT_DECLS(avx512_vnni)

// ---- dispatch -------------------------------------------------------------------------------
// The ops by variant index, for callers that choose the variant at run time (the Go
// wrappers): each forwards to synth_<op>_<dtype>_<isa>, with the same arguments.
// SYNTH_ISA_AVX512_VNNI is the avx512 family on a CPU with AVX512_VNNI: the same kernels,
// with vpdpbusd in the integer dot products.
enum { SYNTH_ISA_REF = 0, SYNTH_ISA_AVX2 = 1, SYNTH_ISA_AVX512 = 2, SYNTH_ISA_AVX512_VNNI = 3, SYNTH_NISA = 4 };
int synth_gemm(int isa, int dt, const float *x, int64_t ldx, const void *w, const float *bias, int act,
               const float *res, int64_t ldr, float *y, int64_t ldy, int64_t m, int64_t n, int64_t k,
               float *scratch, int ith, int nth, int64_t *next);
int synth_layernorm(int isa, const float *x, int64_t ldx, const float *gamma, const float *beta, float eps,
                    float *y, int64_t ldy, int64_t rows, int64_t cols, int ith, int nth);
int synth_softmax(int isa, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t rows, int64_t cols,
                  float scale, int logsm, int ith, int nth);
int synth_act(int isa, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t rows, int64_t cols, int act,
              int ith, int nth);
int synth_axpby(int isa, const float *a, int64_t lda, float alpha, const float *b, int64_t ldb, int64_t brows,
                float beta, float *y, int64_t ldy, int64_t rows, int64_t cols, int ith, int nth);
int synth_l2norm(int isa, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t rows, int64_t cols, int ith,
                 int nth);
int synth_argmax(int isa, const float *x, int64_t ldx, int64_t rows, int64_t cols, int64_t *out, int ith, int nth);
int synth_attention(int isa, const float *q, int64_t ldq, const void *k, int64_t ldk, const void *v, int64_t ldv,
                    float *o, int64_t ldo, const int64_t *seq, int64_t nseq, const uint8_t *mask, int64_t h,
                    int64_t d, float scale, int causal, int kvdt, float *scratch, int ith, int nth);
int synth_gather_rows(int isa, int dt, const void *w, int64_t n, int64_t k, int64_t nr, const int32_t *ids,
                      int64_t rows, float *out, int64_t ldo, int ith, int nth);
int synth_store_rows_f16(int isa, const float *x, int64_t ldx, int64_t rows, int64_t cols, const int64_t *dst,
                         uint16_t *y, int64_t ldy, int ith, int nth);

// ---- machine probes (benchmarks) ----------------------------------------------------------
// dst[i] = src[i] for the share (ith, nth) of n floats (STREAM "copy"), and the sum of
// src's share (a read-only sweep, like a GEMV's weight stream) into *sum; written with
// the variant's vectors so that only memory limits them.
void synth_stream_copy_avx2(const float *src, float *dst, int64_t n, int ith, int nth);
void synth_stream_copy_avx512(const float *src, float *dst, int64_t n, int ith, int nth);
void synth_stream_read_avx2(const float *src, int64_t n, float *sum, int ith, int nth);
void synth_stream_read_avx512(const float *src, int64_t n, float *sum, int ith, int nth);
// iters rounds of 2*MR independent vector FMAs on registers (MR: the variant's GEMM
// micro-tile rows, 6 for avx2 and 12 for avx512): the FMA peak of one core. Returns a
// value that depends on every FMA, so none is optimised away.
float synth_fma_peak_avx2(int64_t iters);
float synth_fma_peak_avx512(int64_t iters);
// (avx512_vnni compiles the same probes; they measure what the avx512 ones do.)
void synth_stream_copy_avx512_vnni(const float *src, float *dst, int64_t n, int ith, int nth);
void synth_stream_read_avx512_vnni(const float *src, int64_t n, float *sum, int ith, int nth);
float synth_fma_peak_avx512_vnni(int64_t iters);

#endif
