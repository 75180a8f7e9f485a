//go:build openblas

package native

/*
#cgo LDFLAGS: -lopenblas
#include <cblas.h>
#include <math.h>

// y [m, n] = x [m, k] W^T, W [n, k] row-major: what Linear computes.
static void synth_ob_sgemm(const float *x, const float *w, float *y, int m, int n, int k) {
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x, k, w, k, 0.0f, y, n);
}

// The unfused epilogues of an MLP block, as plain loops over y (the baseline that the
// fused Linear epilogues are measured against).
static void synth_ob_bias_quickgelu(float *y, const float *b, int m, int n) {
	for (int i = 0; i < m; i++)
		for (int j = 0; j < n; j++) {
			float v = y[i * n + j] + b[j];
			y[i * n + j] = v / (1.0f + expf(-1.702f * v));
		}
}

static void synth_ob_bias_residual(float *y, const float *b, const float *r, int m, int n) {
	for (int i = 0; i < m; i++)
		for (int j = 0; j < n; j++) y[i * n + j] += b[j] + r[i * n + j];
}
*/
import "C"

import "unsafe"

// openBLAS is the benchmark anchor: the system OpenBLAS (Debian libopenblas-dev), linked
// only in builds with the openblas tag. It is never used by the ops API.
type openBLAS struct{ threads int }

func newOpenBLAS(threads int) (blasAnchor, error) {
	C.openblas_set_num_threads(C.int(threads))
	return openBLAS{threads: threads}, nil
}

func fp(s []float32) *C.float { return (*C.float)(unsafe.Pointer(&s[0])) }

func (openBLAS) Name() string {
	return C.GoString(C.openblas_get_config()) + " core " + C.GoString(C.openblas_get_corename())
}

func (openBLAS) SGEMM(x, w, y []float32, m, n, k int) {
	C.synth_ob_sgemm(fp(x), fp(w), fp(y), C.int(m), C.int(n), C.int(k))
}

func (openBLAS) BiasQuickGELU(y, b []float32, m, n int) {
	C.synth_ob_bias_quickgelu(fp(y), fp(b), C.int(m), C.int(n))
}

func (openBLAS) BiasResidual(y, b, r []float32, m, n int) {
	C.synth_ob_bias_residual(fp(y), fp(b), fp(r), C.int(m), C.int(n))
}
