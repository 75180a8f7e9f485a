package native

import (
	"fmt"
	"runtime"
	"sync"

	"synth/kernels"
)

// CPUInfo describes the CPU kernels this process uses.
type CPUInfo struct {
	Features []string // ISA features present (cpuid), e.g. AVX2 FMA F16C
	Variant  string   // kernel variant family dispatch picked: ref, avx2, avx512, neon
	Runnable []string // variant families compiled in that this CPU can run, best first
	Compiler string   // C compiler that built the kernels
}

// CPUFeatures reports the host's kernel-relevant features and the variant the cpu Ctxs
// use: the one dispatch picks, or the one SYNTH_KERNELS names (KernelsOverride).
func CPUFeatures() CPUInfo {
	f := kernels.HostFeatures()
	var runnable []string
	for _, isa := range kernels.Runnable() {
		runnable = append(runnable, string(isa))
	}
	return CPUInfo{Features: f.Names(), Variant: string(hostSet.ISA()), Runnable: runnable, Compiler: kernels.CompilerVersion()}
}

// cpuExec is the cpu device's executor: synth's kernels (one variant's set) on a pool
// of worker goroutines. Every op runs when it is called.
type cpuExec struct {
	set  *kernels.Set
	pool *pool

	// reused per op so that running one allocates nothing
	gemm   gemmJob
	rowJob rowJob
	attn   attnJob
	i2c    im2colJob
	gath   gatherJob
	grad   gradBufs

	// work hands out a GEMM's units to whichever worker asks first (kernels.Work): with
	// fixed shares, one worker running slower (a busy sibling, a late wake-up) idles
	// the others at the end of every op. nil runs the fixed shares (BenchmarkWorkSplit's
	// anchor).
	work *kernels.Work
}

func newCPUExec(threads int, s *kernels.Set) *cpuExec {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	return &cpuExec{set: s, pool: newPool(threads), work: new(kernels.Work)}
}

func (x *cpuExec) threads() int    { return x.pool.n }
func (x *cpuExec) variant() string { return string(x.set.ISA()) }
func (x *cpuExec) close()          { x.pool.close() }
func (x *cpuExec) sync()           {}

// run executes j on every worker and panics if a kernel refused its arguments: ops check
// shapes first, so a refusal is a bug.
func (x *cpuExec) run(j job) {
	defer profileOp(x, j)() // profile.go: times j when a Profile is running
	if err := x.pool.run(j); err != nil {
		panic(fmt.Sprintf("native: %v", err))
	}
}

func (x *cpuExec) upload(dst Tensor, src []float32) { copy(dst.F32(), src) }

func (x *cpuExec) download(dst []float32, src Tensor) {
	rows, cols := src.Dims2()
	if src.Contiguous() {
		copy(dst, src.buf.host[src.off:src.off+rows*cols])
		return
	}
	for r := 0; r < rows; r++ {
		copy(dst[r*cols:(r+1)*cols], src.Row(r))
	}
}

type gemmJob struct {
	set     *kernels.Set
	x, y, r kernels.Mat
	w       *kernels.Weights
	bias    []float32
	act     kernels.Act
	work    *kernels.Work // nil: fixed shares; a separate allocation, as cgo passes no pointer into memory holding Go pointers
}

func (j *gemmJob) run(ith, nth int, sc []float32) error {
	return j.set.GEMMShared(j.x, j.w, j.bias, j.act, j.r, j.y, ith, nth, sc, j.work)
}

func (x *cpuExec) linear(dst, in Tensor, w *Matrix, bias Tensor, act Epilogue, res Tensor) {
	x.gemm = gemmJob{set: x.set, x: in.mat(), y: dst.mat(), r: res.mat(), w: w.weightsFor(x.set), bias: bias.vec(), act: kernels.Act(act)}
	if x.work != nil {
		x.work.Reset()
		x.gemm.work = x.work
	}
	x.run(&x.gemm)
	x.gemm = gemmJob{} // drop references to caller memory
}

type rowKind uint8

const (
	rowLayerNorm rowKind = iota
	rowSoftmax
	rowLogSoftmax
	rowAct
	rowAxpby
	rowL2
	rowArgmax
)

// rowJob is every op that maps rows of x (and b) to rows of y.
type rowJob struct {
	set         *kernels.Set
	kind        rowKind
	x, b, y     kernels.Mat
	gamma, bias []float32 // LayerNorm's
	eps         float32
	alpha, beta float32 // softmax's scale (alpha); axpby's factors
	act         kernels.Act
	idx         []int64 // argmax's output
}

func (j *rowJob) run(ith, nth int, _ []float32) error {
	switch j.kind {
	case rowLayerNorm:
		return j.set.LayerNorm(j.x, j.gamma, j.bias, j.eps, j.y, ith, nth)
	case rowSoftmax, rowLogSoftmax:
		return j.set.Softmax(j.x, j.alpha, j.kind == rowLogSoftmax, j.y, ith, nth)
	case rowAct:
		return j.set.Activation(j.x, j.act, j.y, ith, nth)
	case rowAxpby:
		return j.set.Axpby(j.x, j.alpha, j.b, j.beta, j.y, ith, nth)
	case rowL2:
		return j.set.L2Normalize(j.x, j.y, ith, nth)
	default:
		return j.set.Argmax(j.x, j.idx, ith, nth)
	}
}

func (x *cpuExec) runRows(j rowJob) {
	j.set = x.set
	x.rowJob = j
	x.run(&x.rowJob)
	x.rowJob = rowJob{}
}

func (x *cpuExec) layerNorm(dst, in, gamma, beta Tensor, eps float32) {
	x.runRows(rowJob{kind: rowLayerNorm, x: in.mat(), y: dst.mat(), gamma: gamma.vec(), bias: beta.vec(), eps: eps})
}

func (x *cpuExec) softmax(dst, in Tensor, scale float32, log bool) {
	k := rowSoftmax
	if log {
		k = rowLogSoftmax
	}
	x.runRows(rowJob{kind: k, x: in.mat(), y: dst.mat(), alpha: scale})
}

func (x *cpuExec) activation(dst, in Tensor, act Epilogue) {
	x.runRows(rowJob{kind: rowAct, x: in.mat(), y: dst.mat(), act: kernels.Act(act)})
}

func (x *cpuExec) axpby(dst, a Tensor, alpha float32, b Tensor, beta float32) {
	x.runRows(rowJob{kind: rowAxpby, x: a.mat(), b: b.mat(), y: dst.mat(), alpha: alpha, beta: beta})
}

func (x *cpuExec) l2Normalize(dst, in Tensor) {
	x.runRows(rowJob{kind: rowL2, x: in.mat(), y: dst.mat()})
}

func (x *cpuExec) argmax(in Tensor, out []int64) {
	x.runRows(rowJob{kind: rowArgmax, x: in.mat(), idx: out})
}

func (x *cpuExec) topK(in Tensor, k int, idx [][]int32, vals [][]float32) {
	rows, _ := in.Dims2()
	for r := 0; r < rows; r++ {
		idx[r], vals[r] = topKRow(in.Row(r), k, idx[r][:0], vals[r][:0])
	}
}

type im2colJob struct {
	set                *kernels.Set
	img, out           []float32
	b, ch, h, w, patch int
}

func (j *im2colJob) run(ith, nth int, _ []float32) error {
	return j.set.Im2col(j.img, j.b, j.ch, j.h, j.w, j.patch, j.out, ith, nth)
}

func (x *cpuExec) im2col(dst, img Tensor, patch int) {
	x.i2c = im2colJob{set: x.set, img: img.F32(), out: dst.F32(), b: img.Dim(0), ch: img.Dim(1), h: img.Dim(2), w: img.Dim(3), patch: patch}
	x.run(&x.i2c)
	x.i2c = im2colJob{}
}

type gatherJob struct {
	set *kernels.Set
	w   *kernels.Weights
	ids []int32
	out kernels.Mat
}

func (j *gatherJob) run(ith, nth int, _ []float32) error {
	return j.set.GatherRows(j.w, j.ids, j.out, ith, nth)
}

func (x *cpuExec) gather(dst Tensor, w *Matrix, ids []int32) {
	x.gath = gatherJob{set: x.set, w: w.host, ids: ids, out: dst.mat()}
	x.run(&x.gath)
	x.gath = gatherJob{}
}

func (x *cpuExec) gatherRows(dst, table Tensor, ids []int32) {
	for i, id := range ids {
		copy(dst.Row(i), table.Row(int(id)))
	}
}

func (x *cpuExec) copy(dst, src Tensor) {
	rows, cols := dst.Dims2()
	if dst.Contiguous() && src.Contiguous() {
		copy(dst.buf.host[dst.off:dst.off+rows*cols], src.buf.host[src.off:src.off+rows*cols])
		return
	}
	for r := 0; r < rows; r++ {
		copy(dst.Row(r), src.Row(r))
	}
}

func (x *cpuExec) zero(t Tensor) {
	rows, _ := t.Dims2()
	for r := 0; r < rows; r++ {
		clear(t.Row(r))
	}
}

func (x *cpuExec) fillAt(t Tensor, at []int32, v float32) {
	d := t.F32()
	for _, i := range at {
		d[i] = v
	}
}

func (x *cpuExec) penalizeAt(t Tensor, at []int32, p float32) {
	d := t.F32()
	for _, i := range at {
		d[i] = penalize(d[i], p)
	}
}

// penalize is transformers' RepetitionPenaltyLogitsProcessor on one score.
func penalize(s, p float32) float32 {
	if s < 0 {
		return s * p
	}
	return s / p
}

type attnJob struct {
	set        *kernels.Set
	q, k, v, o kernels.Mat
	k16, v16   kernels.Mat16 // f16 keys and values (an f16 cache) instead of k and v
	f16        bool
	seq        []int64
	mask       []byte
	h, d       int
	scale      float32
	causal     bool
}

func (j *attnJob) run(ith, nth int, sc []float32) error {
	if j.f16 {
		return j.set.AttentionF16(j.q, j.k16, j.v16, j.o, j.seq, j.mask, j.h, j.d, j.scale, j.causal, ith, nth, sc)
	}
	return j.set.Attention(j.q, j.k, j.v, j.o, j.seq, j.mask, j.h, j.d, j.scale, j.causal, ith, nth, sc)
}

func (x *cpuExec) attention(o, q Tensor, k, v kvOperand, seq []int64, mask []byte, p AttnParams) {
	x.attn = attnJob{set: x.set, q: q.mat(), o: o.mat(), seq: seq, mask: mask, h: p.Heads, d: p.HeadDim, scale: p.Scale, causal: p.Causal}
	switch kv := k.cache; {
	case kv == nil:
		x.attn.k, x.attn.v = k.t.mat(), v.t.mat()
	case kv.dt == F16:
		x.attn.f16 = true
		x.attn.k16, x.attn.v16 = kv.mat16(kv.k16[k.layer]), kv.mat16(kv.v16[v.layer])
	default:
		x.attn.k, x.attn.v = kv.mat32(kv.k[k.layer]), kv.mat32(kv.v[v.layer])
	}
	x.run(&x.attn)
	x.attn = attnJob{}
}

func (x *cpuExec) kvStore(kv *KVCache, layer int, k, v Tensor, dst []int64) {
	for _, src := range []struct {
		t    Tensor
		f32  []float32
		half []uint16
	}{{k, kv.layerF32(kv.k, layer), kv.layerF16(kv.k16, layer)}, {v, kv.layerF32(kv.v, layer), kv.layerF16(kv.v16, layer)}} {
		if kv.dt == F16 {
			// one conversion call for all rows, on the caller's goroutine
			if err := x.set.StoreRowsF16(src.t.mat(), dst, kv.mat16(src.half), 0, 1); err != nil {
				panic(fmt.Sprintf("native: KV cache store: %v", err)) // rows were checked by the caller
			}
			continue
		}
		for i, r := range dst {
			copy(src.f32[int(r)*kv.width:][:kv.width], src.t.Row(i))
		}
	}
}

func (x *cpuExec) kvCopy(kv *KVCache, dst, src, n int) {
	w := kv.width
	for l := 0; l < kv.layers; l++ {
		if kv.dt == F16 {
			copy(kv.k16[l][dst*w:][:n*w], kv.k16[l][src*w:][:n*w])
			copy(kv.v16[l][dst*w:][:n*w], kv.v16[l][src*w:][:n*w])
		} else {
			copy(kv.k[l][dst*w:][:n*w], kv.k[l][src*w:][:n*w])
			copy(kv.v[l][dst*w:][:n*w], kv.v[l][src*w:][:n*w])
		}
	}
}

// job is one op's kernel call; run does share ith of nth.
type job interface {
	run(ith, nth int, scratch []float32) error
}

// pool is a set of persistent worker goroutines. Worker 0 is the caller's goroutine;
// workers 1..n-1 wait on their own channel. Each owns a scratch buffer.
type pool struct {
	n       int
	start   []chan job
	wg      sync.WaitGroup
	errs    []error
	scratch [][]float32
}

func newPool(n int) *pool {
	p := &pool{n: n, start: make([]chan job, n), errs: make([]error, n), scratch: make([][]float32, n)}
	for i := range p.scratch {
		p.scratch[i] = alignedFloats(kernels.ScratchFloats)
	}
	for i := 1; i < n; i++ {
		p.start[i] = make(chan job, 1)
		go p.worker(i)
	}
	return p
}

func (p *pool) worker(i int) {
	for j := range p.start[i] {
		p.errs[i] = j.run(i, p.n, p.scratch[i])
		p.wg.Done()
	}
}

func (p *pool) run(j job) error {
	p.wg.Add(p.n - 1)
	for i := 1; i < p.n; i++ {
		p.start[i] <- j
	}
	p.errs[0] = j.run(0, p.n, p.scratch[0])
	p.wg.Wait()
	for _, err := range p.errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (p *pool) close() {
	for i := 1; i < p.n; i++ {
		close(p.start[i])
	}
}

// kernelSet is the kernel variant a cpu Ctx runs (benchmarks pack weights for it
// outside their timing); nil on other devices.
func (c *Ctx) kernelSet() *kernels.Set {
	if x, ok := c.x.(*cpuExec); ok {
		return x.set
	}
	return nil
}

// KernelsOverride reports a SYNTH_KERNELS value that names no variant this binary and
// CPU run (dispatch's pick is used instead): callers turn it into a usage error rather
// than measure the wrong kernels.
func KernelsOverride() error {
	_, err := kernels.HostChoice()
	return err
}
