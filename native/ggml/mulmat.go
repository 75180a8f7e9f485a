package ggml

/*
#include <stdlib.h>
#include <string.h>
#include "ggml.h"
#include "ggml-cpu.h"

// A one-op graph y = W x on ggml's CPU backend with a persistent thread pool: the
// anchor our GEMM benchmarks are measured against.
typedef struct {
	struct ggml_context *ctx;
	struct ggml_cgraph *gf;
	struct ggml_tensor *x, *y;
	struct ggml_cplan plan;
} synth_mulmat;

static struct ggml_threadpool *synth_threadpool_new(int threads) {
	struct ggml_threadpool_params tpp = ggml_threadpool_params_default(threads);
	tpp.paused = true; // idle between runs, so that its threads do not spin beside other work
	return ggml_threadpool_new(&tpp);
}

// synth_mulmat_new builds the graph for W [n, k] of type t (raw rows w) and x [m, k] f32
// on thread pool tp. NULL when ggml could not allocate it.
static synth_mulmat *synth_mulmat_new(enum ggml_type t, const void *w, int64_t n, int64_t k, int64_t m,
                                      struct ggml_threadpool *tp, int threads) {
	synth_mulmat *mm = calloc(1, sizeof *mm);
	if (mm == NULL) return NULL;
	size_t size = ggml_row_size(t, k) * n + (size_t)(m * k + m * n) * 4 + 4 * ggml_tensor_overhead() +
	              ggml_graph_overhead() + (1 << 20);
	struct ggml_init_params ip = {size, NULL, false};
	mm->ctx = ggml_init(ip);
	if (mm->ctx == NULL) {
		free(mm);
		return NULL;
	}
	struct ggml_tensor *W = ggml_new_tensor_2d(mm->ctx, t, k, n);
	memcpy(W->data, w, ggml_nbytes(W));
	mm->x = ggml_new_tensor_2d(mm->ctx, GGML_TYPE_F32, k, m);
	memset(mm->x->data, 0, ggml_nbytes(mm->x));
	mm->y = ggml_mul_mat(mm->ctx, W, mm->x);
	mm->gf = ggml_new_graph(mm->ctx);
	ggml_build_forward_expand(mm->gf, mm->y);
	mm->plan = ggml_graph_plan(mm->gf, threads, tp);
	mm->plan.work_data = mm->plan.work_size ? malloc(mm->plan.work_size) : NULL;
	if (mm->plan.work_size && mm->plan.work_data == NULL) {
		ggml_free(mm->ctx);
		free(mm);
		return NULL;
	}
	return mm;
}

// synth_mulmat_run copies x in, computes, copies y out (either may be NULL: kept as is).
static int synth_mulmat_run(synth_mulmat *mm, const float *x, float *y) {
	if (x) memcpy(mm->x->data, x, ggml_nbytes(mm->x));
	ggml_threadpool_resume(mm->plan.threadpool);
	enum ggml_status st = ggml_graph_compute(mm->gf, &mm->plan);
	ggml_threadpool_pause(mm->plan.threadpool);
	if (st != GGML_STATUS_SUCCESS) return -1;
	if (y) memcpy(y, mm->y->data, ggml_nbytes(mm->y));
	return 0;
}

static void synth_mulmat_free(synth_mulmat *mm) {
	free(mm->plan.work_data);
	ggml_free(mm->ctx);
	free(mm);
}
*/
import "C"

import (
	"fmt"
	"sync"
	"unsafe"

	"synth/weights"
)

// pools are ggml thread pools by thread count, shared by the MulMats (a benchmark keeps
// many alive: one pool each would leave dozens of threads competing for the cores).
var (
	poolMu sync.Mutex
	pools  = map[int]*pool{}
)

type pool struct {
	tp   *C.struct_ggml_threadpool
	refs int
}

func acquirePool(threads int) *C.struct_ggml_threadpool {
	poolMu.Lock()
	defer poolMu.Unlock()
	p := pools[threads]
	if p == nil {
		tp := C.synth_threadpool_new(C.int(threads))
		if tp == nil {
			return nil
		}
		p = &pool{tp: tp}
		pools[threads] = p
	}
	p.refs++
	return p.tp
}

func releasePool(threads int) {
	poolMu.Lock()
	defer poolMu.Unlock()
	if p := pools[threads]; p != nil {
		if p.refs--; p.refs == 0 {
			C.ggml_threadpool_free(p.tp)
			delete(pools, threads)
		}
	}
}

// MulMat is ggml's CPU matrix multiply y [m, n] = x [m, k] W^T on one weight matrix (a
// one-op graph on the CPU backend, built with the linked ggml and the same -march, with
// its own thread pool): the anchor for our quantized GEMMs, on the same weights.
type MulMat struct {
	mm               *C.synth_mulmat
	m, n, k, threads int
}

// NewMulMat copies W's raw rows [n, k] of dt (ggml's layout, as GGUF holds them) into a
// graph for x with m rows, run on threads threads.
func NewMulMat(dt weights.DType, raw []byte, n, k, m, threads int) (*MulMat, error) {
	t, err := ggmlType(dt)
	if err != nil {
		return nil, err
	}
	size, err := dt.ByteSize(int64(n) * int64(k))
	if err != nil || int64(len(raw)) != size || k%dt.BlockSize() != 0 || n < 1 || m < 1 || threads < 1 {
		return nil, fmt.Errorf("ggml: mul_mat of %s [%d, %d] from %d bytes, %d rows of x, %d threads", dt, n, k, len(raw), m, threads)
	}
	cpuInit.Do(func() { C.ggml_cpu_init() })
	tp := acquirePool(threads)
	if tp == nil {
		return nil, fmt.Errorf("ggml: mul_mat: no thread pool of %d threads", threads)
	}
	mm := C.synth_mulmat_new(t, unsafe.Pointer(&raw[0]), C.int64_t(n), C.int64_t(k), C.int64_t(m), tp, C.int(threads))
	if mm == nil {
		releasePool(threads)
		return nil, fmt.Errorf("ggml: mul_mat of %s [%d, %d]: ggml could not allocate the graph", dt, n, k)
	}
	return &MulMat{mm: mm, m: m, n: n, k: k, threads: threads}, nil
}

// Run computes y = x W^T; x holds m*k values (nil: the last x again), y m*n (nil: not
// copied out).
func (g *MulMat) Run(x, y []float32) error {
	if (x != nil && len(x) != g.m*g.k) || (y != nil && len(y) != g.m*g.n) {
		return fmt.Errorf("ggml: mul_mat: x %d and y %d values for [%d, %d] x [%d, %d]^T", len(x), len(y), g.m, g.k, g.n, g.k)
	}
	var xp, yp *C.float
	if x != nil {
		xp = (*C.float)(unsafe.Pointer(&x[0]))
	}
	if y != nil {
		yp = (*C.float)(unsafe.Pointer(&y[0]))
	}
	if C.synth_mulmat_run(g.mm, xp, yp) != 0 {
		return fmt.Errorf("ggml: mul_mat: graph compute failed")
	}
	return nil
}

// Close frees ggml's memory and threads.
func (g *MulMat) Close() {
	if g.mm != nil {
		C.synth_mulmat_free(g.mm)
		g.mm = nil
		releasePool(g.threads)
	}
}

// Anchor makes MulMats for native.BenchKernels (native.MatMulAnchor): ggml's CPU mul_mat
// on the weights the kernels run, in the same run.
type Anchor struct{}

// Name is the anchor's name in the benchmark tables.
func (Anchor) Name() string { return "ggml" }

// New is NewMulMat for the dtype named dt; the result is a native.MatMulRun.
func (Anchor) New(dt string, raw []byte, n, k, m, threads int) (interface {
	Run(x, y []float32) error
	Close()
}, error) {
	d, err := weights.ParseDType(dt)
	if err != nil {
		return nil, fmt.Errorf("ggml: %w", err)
	}
	return NewMulMat(d, raw, n, k, m, threads)
}
