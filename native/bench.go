package native

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"time"

	"synth/kernels"
)

// ErrNoOpenBLAS is returned for the OpenBLAS anchor in builds without the openblas tag.
var ErrNoOpenBLAS = errors.New("native: built without the openblas tag, no OpenBLAS anchor")

// blasAnchor is the reference BLAS that benchmarks compare the GEMM against.
type blasAnchor interface {
	Name() string
	SGEMM(x, w, y []float32, m, n, k int) // y [m, n] = x [m, k] W^T
	BiasQuickGELU(y, b []float32, m, n int)
	BiasResidual(y, b, r []float32, m, n int) // y += b + r
}

// GEMMShape is one Linear of a real model: x [M, K] onto W [N, K] of DType.
type GEMMShape struct {
	Model   string // which layer of which model
	DType   DType
	M, K, N int
}

// BenchGEMMShapes lists the GEMM shapes of the models synth runs, for benchmarks:
// ViT-L/14 (Long-CLIP-L vision, 257 tokens per image), EVA ViT-g (BLIP-2), Q-Former
// (32 queries) in f32, and OPT-2.7B decoding (1..16 sequences) with Q8_0 weights.
// batch multiplies the encoder rows (images per forward pass).
func BenchGEMMShapes(batch int) []GEMMShape {
	if batch < 1 {
		batch = 1
	}
	m := 257 * batch
	return []GEMMShape{
		{"vit-l attn out", F32, m, 1024, 1024},
		{"vit-l qkv", F32, m, 1024, 3072},
		{"vit-l fc1", F32, m, 1024, 4096},
		{"vit-l fc2", F32, m, 4096, 1024},
		{"eva-g qkv", F32, m, 1408, 4224},
		{"eva-g fc1", F32, m, 1408, 6144},
		{"eva-g fc2", F32, m, 6144, 1408},
		{"qformer self", F32, 32, 768, 768},
		{"qformer cross k/v", F32, m, 1408, 768},
		{"qformer fc1", F32, 32, 768, 3072},
		{"opt-2.7b decode qkv", Q8_0, 1, 2560, 7680},
		{"opt-2.7b decode fc1", Q8_0, 1, 2560, 10240},
		{"opt-2.7b decode fc1 x8", Q8_0, 8, 2560, 10240},
		{"opt-2.7b decode out x16", Q8_0, 16, 2560, 2560},
		{"opt-2.7b decode fc1", F16, 1, 2560, 10240},
		{"opt-2.7b decode fc1", Q4_0, 1, 2560, 10240},
		{"opt-2.7b decode fc1", F32, 1, 2560, 10240},
		{"opt-2.7b decode fc1 x8", F16, 8, 2560, 10240},
		{"opt-2.7b decode fc1 x8", Q4_0, 8, 2560, 10240},
		{"opt-2.7b decode fc1", Q4_K, 1, 2560, 10240},
		{"opt-2.7b decode fc1 x8", Q4_K, 8, 2560, 10240},
		{"opt-2.7b decode fc1", Q5_K, 1, 2560, 10240},
		{"opt-2.7b decode fc1 x8", Q5_K, 8, 2560, 10240},
		{"opt-2.7b decode fc1", Q6_K, 1, 2560, 10240},
		{"opt-2.7b decode fc1 x8", Q6_K, 8, 2560, 10240},
		{"eva-g fc1", Q8_0, m, 1408, 6144},
		{"opt-2.7b prefill fc1 x8", Q8_0, 8 * 33, 2560, 10240},
	}
}

// MatMulAnchor is another library's matrix multiply on the same weights, for the
// quantized decode rows of BenchKernels: ggml's CPU backend, wired in by the caller
// (synth bench kernels passes native/ggml's) so that native does not link it.
type MatMulAnchor interface {
	Name() string
	// New readies y [m, n] = x [m, k] W^T for W's raw rows [n, k] of the dtype named dt
	// (ggml's block layouts), on threads threads.
	New(dt string, raw []byte, n, k, m, threads int) (MatMulRun, error)
}

// MatMulRun is one prepared multiply of a MatMulAnchor: Run(x, y) computes it (x nil:
// the previous x; y nil: the result is not copied out). An alias of an unnamed interface,
// so that an implementation need not import native to name it.
type MatMulRun = interface {
	Run(x, y []float32) error
	Close()
}

// BenchOptions configures BenchKernels.
type BenchOptions struct {
	Threads  int           // workers, and OpenBLAS's threads (<= 0: GOMAXPROCS)
	Variants []string      // kernel variants to measure (nil: SYNTH_KERNELS's, else every runnable one but ref)
	MatMul   MatMulAnchor  // the quantized decode rows' anchor (nil: none)
	Batch    int           // images per encoder pass: M = 257*Batch (< 1: 1)
	MinTime  time.Duration // per measurement (<= 0: 300ms); the result is the best call
	Progress func(msg string)
}

// BenchResult is one measurement of BenchKernels.
type BenchResult struct {
	Op      string  `json:"op"`    // peak, copy, read, gemm, mlp_block, decode, attention, layernorm, softmax
	Model   string  `json:"model"` // the model layer the shape comes from
	Shape   string  `json:"shape"`
	DType   string  `json:"dtype,omitempty"`
	Variant string  `json:"variant"` // ref, avx2, avx512, openblas (the probes: the variant whose vectors ran them)
	Threads int     `json:"threads"`
	Seconds float64 `json:"seconds"` // best time of one call
	GFLOPS  float64 `json:"gflops,omitempty"`
	GBps    float64 `json:"gbps,omitempty"` // bytes the op must move (weights, or in + out) per second
	// Anchor names what Ratio compares with, measured in the same run: "openblas" (the
	// same op through OpenBLAS), "copy" (GBps over the STREAM copy bandwidth), "gemm"
	// (GFLOPS over this variant's f32 GEMM at the ViT-L qkv shape).
	Anchor string  `json:"anchor,omitempty"`
	Ratio  float64 `json:"ratio,omitempty"`
	// PeakFraction is GFLOPS over the FMA peak measured for this variant (for openblas:
	// over the best variant's peak, the machine's).
	PeakFraction float64 `json:"peak_fraction,omitempty"`
}

// BenchReport is BenchKernels' result.
type BenchReport struct {
	Threads  int           `json:"threads"`
	Variants []string      `json:"variants"`
	Anchor   string        `json:"anchor"` // OpenBLAS's build and core, or why there is none
	CPU      CPUInfo       `json:"cpu"`
	Results  []BenchResult `json:"results"`
}

// BenchKernels measures every op at the real model shapes for each variant, with the
// machine's FMA peak, its copy bandwidth and (in openblas builds) OpenBLAS in the same
// run, so results compare across machines as ratios.
func BenchKernels(o BenchOptions) (*BenchReport, error) {
	if o.Threads <= 0 {
		o.Threads = runtime.GOMAXPROCS(0)
	}
	if o.Batch < 1 {
		o.Batch = 1
	}
	if o.MinTime <= 0 {
		o.MinTime = 300 * time.Millisecond
	}
	if o.Variants == nil && os.Getenv(kernels.EnvVariant) != "" {
		o.Variants = []string{string(hostSet.ISA())}
	}
	if o.Variants == nil {
		for _, v := range Variants() {
			if v != string(kernels.ISARef) {
				o.Variants = append(o.Variants, v)
			}
		}
	}
	b := &bencher{o: o, rep: &BenchReport{Threads: o.Threads, Variants: o.Variants, CPU: CPUFeatures()}, peak: map[string]float64{}, gemmRate: map[string]float64{}}
	for _, v := range o.Variants {
		c, err := NewCtxVariant(o.Threads, v)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		b.ctxs = append(b.ctxs, c)
	}
	anchor, err := newOpenBLAS(o.Threads)
	if err != nil {
		b.rep.Anchor = err.Error()
	} else {
		b.blas = anchor
		b.rep.Anchor = anchor.Name()
	}
	b.machine()
	b.gemms()
	b.mlpBlock()
	b.attention()
	b.rowOps()
	b.gather()
	return b.rep, nil
}

type bencher struct {
	o        BenchOptions
	rep      *BenchReport
	ctxs     []*Ctx
	blas     blasAnchor
	peak     map[string]float64 // GFLOP/s per variant
	copyBW   float64            // GB/s
	gemmRate map[string]float64 // variant -> GFLOP/s at the ViT-L qkv shape
}

func (b *bencher) progress(format string, args ...any) {
	if b.o.Progress != nil {
		b.o.Progress(fmt.Sprintf(format, args...))
	}
}

// measure returns the best time of one call of f over at least 3 calls and MinTime,
// after a warm-up call.
func (b *bencher) measure(f func()) float64 {
	f()
	best := math.Inf(1)
	start := time.Now()
	for n := 0; n < 3 || time.Since(start) < b.o.MinTime; n++ {
		t := time.Now()
		f()
		best = min(best, time.Since(t).Seconds())
	}
	return best
}

// measureBLAS is measure for OpenBLAS calls, then a pause: OpenBLAS's idle threads
// spin for a while after a call and would take cores from the next measurement.
func (b *bencher) measureBLAS(f func()) float64 {
	sec := b.measure(f)
	time.Sleep(250 * time.Millisecond)
	return sec
}

func (b *bencher) add(r BenchResult) {
	r.Threads = b.o.Threads
	b.rep.Results = append(b.rep.Results, r)
}

// parallel runs f on Threads goroutines at once (for the machine probes).
func (b *bencher) parallel(f func(ith, nth int)) {
	var wg sync.WaitGroup
	for i := 0; i < b.o.Threads; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			f(i, b.o.Threads)
		}(i)
	}
	wg.Wait()
}

func (b *bencher) machine() {
	for _, v := range b.o.Variants {
		isa := kernels.ISA(v)
		flops := kernels.FMAPeakFlops(isa)
		if flops == 0 {
			continue
		}
		b.progress("FMA peak %s", v)
		const iters = 4_000_000
		sec := b.measure(func() { b.parallel(func(int, int) { _, _ = kernels.FMAPeak(isa, iters) }) })
		b.peak[v] = float64(b.o.Threads) * iters * float64(flops) / sec / 1e9
		b.add(BenchResult{Op: "peak", Model: "FMA throughput", Shape: "registers only", Variant: v, Seconds: sec, GFLOPS: b.peak[v]})
	}
	if len(b.ctxs) == 0 {
		return
	}
	probe := b.ctxs[0].kernelSet() // the best variant measured: the probe's own loop must not be the limit
	if probe.ISA() == kernels.ISARef {
		return
	}
	b.progress("memory bandwidth")
	const n = 64 << 20 // 256 MiB per array: far past any cache
	src, dst := alignedFloats(n), alignedFloats(n)
	for i := range src {
		src[i] = float32(i & 1023)
	}
	sec := b.measure(func() { b.parallel(func(i, t int) { _ = probe.StreamCopy(src, dst, i, t) }) })
	b.copyBW = 2 * 4 * n / sec / 1e9 // STREAM counts bytes read and written
	b.add(BenchResult{Op: "copy", Model: "STREAM copy", Shape: "2 x 256 MiB", Variant: string(probe.ISA()), Seconds: sec, GBps: b.copyBW})
	sec = b.measure(func() { b.parallel(func(i, t int) { _, _ = probe.StreamRead(src, i, t) }) })
	b.add(BenchResult{Op: "read", Model: "read sweep", Shape: "256 MiB", Variant: string(probe.ISA()), Seconds: sec, GBps: 4 * n / sec / 1e9, Anchor: "copy", Ratio: 4 * n / sec / 1e9 / b.copyBW})
}

func (b *bencher) bestPeak() float64 {
	best := 0.0
	for _, p := range b.peak {
		best = max(best, p)
	}
	return best
}

func benchFloats(seed uint64, n int, scale float32) []float32 {
	r := rand.New(rand.NewPCG(seed, 7))
	s := alignedFloats(n)
	for i := range s {
		s[i] = float32(r.NormFloat64()) * scale
	}
	return s
}

func (b *bencher) gemms() {
	for _, sh := range BenchGEMMShapes(b.o.Batch) {
		shape := fmt.Sprintf("m=%d k=%d n=%d", sh.M, sh.K, sh.N)
		wf := benchFloats(uint64(sh.N*sh.K), sh.N*sh.K, 0.02)
		w, err := QuantizeMatrix(wf, sh.N, sh.K, sh.DType)
		if err != nil {
			panic(err) // the shapes above are valid
		}
		decode := sh.M <= 16 && sh.K == 2560
		// A decoder streams all its layers' weights, gigabytes, per token: cycle through
		// copies of the matrix larger than any cache so that each call reads memory.
		ws := []*Matrix{w}
		if decode {
			raw := w.rawRows()
			for n := w.n * sh.DType.RowBytes(sh.K); n < decodeBytes; n += w.n * sh.DType.RowBytes(sh.K) {
				c, err := NewMatrix(sh.DType, raw, sh.N, sh.K)
				if err != nil {
					panic(err)
				}
				ws = append(ws, c)
			}
		}
		x := FromF32(benchFloats(1, sh.M*sh.K, 1), sh.M, sh.K)
		y := NewTensor(sh.M, sh.N)
		flops := 2 * float64(sh.M) * float64(sh.N) * float64(sh.K)
		bytes := float64(sh.N * sh.DType.RowBytes(sh.K))
		op := "gemm"
		if decode {
			op = "decode"
		}
		var blasSec, anchorSec float64
		if decode && b.o.MatMul != nil && sh.DType != F32 {
			anchorSec = b.matMulAnchor(op, sh, shape, ws, x, flops, bytes)
		}
		if b.blas != nil && sh.DType == F32 {
			b.progress("%s %s %s openblas", op, sh.Model, shape)
			blasSec = b.measureBLAS(func() { b.blas.SGEMM(x.F32(), wf, y.F32(), sh.M, sh.N, sh.K) })
			r := BenchResult{Op: op, Model: sh.Model, Shape: shape, DType: sh.DType.String(), Variant: "openblas", Seconds: blasSec,
				GFLOPS: flops / blasSec / 1e9, PeakFraction: flops / blasSec / 1e9 / b.bestPeak()}
			if decode {
				r.GBps = bytes / blasSec / 1e9
			}
			b.add(r)
		}
		for _, c := range b.ctxs {
			b.progress("%s %s %s %s %s", op, sh.Model, shape, sh.DType, c.Variant())
			for _, w := range ws {
				w.weightsFor(c.kernelSet()) // pack outside the timing
			}
			next := 0
			sec := b.measure(func() {
				c.LinearInto(y, x, ws[next], Tensor{}, None, Tensor{})
				next = (next + 1) % len(ws)
			})
			r := BenchResult{Op: op, Model: sh.Model, Shape: shape, DType: sh.DType.String(), Variant: c.Variant(), Seconds: sec, GFLOPS: flops / sec / 1e9}
			if p := b.peak[c.Variant()]; p > 0 {
				r.PeakFraction = r.GFLOPS / p
			}
			switch {
			case decode && anchorSec > 0 && sh.M > 1: // batched decoding is compute-bound: ggml's rate is the bar
				r.GBps = bytes / sec / 1e9
				r.Anchor, r.Ratio = b.o.MatMul.Name(), anchorSec/sec
			case decode:
				r.GBps = bytes / sec / 1e9
				r.Anchor, r.Ratio = "copy", r.GBps/b.copyBW
			case blasSec > 0:
				r.Anchor, r.Ratio = "openblas", blasSec/sec
			}
			if sh.Model == "vit-l qkv" {
				b.gemmRate[c.Variant()] = r.GFLOPS
			}
			b.add(r)
		}
		if decode {
			runtime.GC() // release this shape's copies before the next shape makes its own
		}
	}
}

// matMulAnchor measures the MatMulAnchor on the copies of a decode shape's weights (the
// same cycling as ours) and adds its row; it returns the best time of one call, or 0.
func (b *bencher) matMulAnchor(op string, sh GEMMShape, shape string, ws []*Matrix, x Tensor, flops, bytes float64) float64 {
	name := b.o.MatMul.Name()
	b.progress("%s %s %s %s %s", op, sh.Model, shape, sh.DType, name)
	runs := make([]MatMulRun, 0, len(ws))
	defer func() {
		for _, r := range runs {
			r.Close()
		}
	}()
	for _, w := range ws {
		r, err := b.o.MatMul.New(sh.DType.String(), w.rawRows(), sh.N, sh.K, sh.M, b.o.Threads)
		if err != nil {
			b.progress("%s: %v", name, err)
			return 0
		}
		runs = append(runs, r)
	}
	for _, r := range runs {
		if err := r.Run(x.F32(), nil); err != nil {
			b.progress("%s: %v", name, err)
			return 0
		}
	}
	next := 0
	sec := b.measure(func() {
		_ = runs[next].Run(nil, nil)
		next = (next + 1) % len(runs)
	})
	r := BenchResult{Op: op, Model: sh.Model, Shape: shape, DType: sh.DType.String(), Variant: name, Seconds: sec,
		GFLOPS: flops / sec / 1e9, GBps: bytes / sec / 1e9}
	if b.copyBW > 0 {
		r.Anchor, r.Ratio = "copy", r.GBps/b.copyBW
	}
	b.add(r)
	return sec
}

// decodeBytes is the weight footprint the decode benchmarks cycle through: past the
// last-level cache of any machine we run on.
const decodeBytes = 512 << 20

// mlpBlock: a ViT-L MLP block, o = x + fc2(QuickGELU(fc1(x) + b1)) + b2, with our fused
// epilogues against OpenBLAS GEMMs with the bias, activation and residual as loops.
func (b *bencher) mlpBlock() {
	m, d, hid := 257*b.o.Batch, 1024, 4096
	shape := fmt.Sprintf("m=%d %d-%d-%d", m, d, hid, d)
	w1f, w2f := benchFloats(11, hid*d, 0.02), benchFloats(12, d*hid, 0.02)
	b1, b2 := FromF32(benchFloats(13, hid, 0.1), hid), FromF32(benchFloats(14, d, 0.1), d)
	w1, _ := NewMatrixF32(w1f, hid, d)
	w2, _ := NewMatrixF32(w2f, d, hid)
	x := FromF32(benchFloats(15, m*d, 1), m, d)
	h, o := NewTensor(m, hid), NewTensor(m, d)
	flops := 2 * 2 * float64(m) * float64(d) * float64(hid)
	var blasSec float64
	if b.blas != nil {
		b.progress("mlp block openblas")
		blasSec = b.measureBLAS(func() {
			b.blas.SGEMM(x.F32(), w1f, h.F32(), m, hid, d)
			b.blas.BiasQuickGELU(h.F32(), b1.F32(), m, hid)
			b.blas.SGEMM(h.F32(), w2f, o.F32(), m, d, hid)
			b.blas.BiasResidual(o.F32(), b2.F32(), x.F32(), m, d)
		})
		b.add(BenchResult{Op: "mlp_block", Model: "vit-l mlp + residual", Shape: shape, DType: "F32", Variant: "openblas + loops",
			Seconds: blasSec, GFLOPS: flops / blasSec / 1e9, PeakFraction: flops / blasSec / 1e9 / b.bestPeak()})
	}
	for _, c := range b.ctxs {
		b.progress("mlp block %s", c.Variant())
		w1.weightsFor(c.kernelSet())
		w2.weightsFor(c.kernelSet())
		sec := b.measure(func() {
			c.LinearInto(h, x, w1, b1, QuickGELU, Tensor{})
			c.LinearInto(o, h, w2, b2, None, x)
		})
		r := BenchResult{Op: "mlp_block", Model: "vit-l mlp + residual", Shape: shape, DType: "F32", Variant: c.Variant() + " fused",
			Seconds: sec, GFLOPS: flops / sec / 1e9}
		if p := b.peak[c.Variant()]; p > 0 {
			r.PeakFraction = r.GFLOPS / p
		}
		if blasSec > 0 {
			r.Anchor, r.Ratio = "openblas", blasSec/sec
		}
		b.add(r)
	}
}

// attnCase is one attention benchmark: batch sequences, heads x dim, tq queries onto tk keys
// (with cache: through a KVCache of kv's element type).
type attnCase struct {
	model         string
	batch, h, d   int
	tq, tk        int
	causal, cache bool
	kv            DType
}

func (b *bencher) attention() {
	cases := []attnCase{
		{"vit-l self", b.o.Batch, 16, 64, 257, 257, false, false, F32},
		{"eva-g self", b.o.Batch, 16, 88, 257, 257, false, false, F32},
		{"long-clip text causal", b.o.Batch, 12, 64, 248, 248, true, false, F32},
		{"qformer cross", b.o.Batch, 12, 64, 32, 257, false, false, F32},
		{"opt-2.7b decode, cache 512", 8, 32, 80, 1, 512, true, true, F32},
		{"opt-2.7b decode, f16 cache 512", 8, 32, 80, 1, 512, true, true, F16},
	}
	for _, ac := range cases {
		w := ac.h * ac.d
		q := FromF32(benchFloats(21, ac.batch*ac.tq*w, 1), ac.batch*ac.tq, w)
		k := FromF32(benchFloats(22, ac.batch*ac.tk*w, 1), ac.batch*ac.tk, w)
		v := FromF32(benchFloats(23, ac.batch*ac.tk*w, 1), ac.batch*ac.tk, w)
		p := AttnParams{Heads: ac.h, HeadDim: ac.d, Scale: float32(1 / math.Sqrt(float64(ac.d))), Causal: ac.causal}
		pairs := 0
		for i := 0; i < ac.tq; i++ {
			if ac.causal {
				pairs += min(ac.tk, ac.tk-ac.tq+i+1)
			} else {
				pairs += ac.tk
			}
		}
		flops := 4 * float64(ac.batch) * float64(ac.h) * float64(ac.d) * float64(pairs)
		shape := fmt.Sprintf("b=%d h=%d d=%d tq=%d tk=%d", ac.batch, ac.h, ac.d, ac.tq, ac.tk)
		var kv *KVCache
		slots, qLens := make([]int, ac.batch), make([]int, ac.batch)
		if ac.cache {
			kv = NewKVCache(1, ac.batch, ac.tk, w, ac.kv)
			for s := range slots {
				slots[s], qLens[s] = s, ac.tq
			}
			c := NewCtx(1)
			c.AppendKV(kv, 0, slots, nil, k, v)
			c.Close()
		}
		for _, c := range b.ctxs {
			b.progress("attention %s %s", ac.model, c.Variant())
			sec := b.measure(func() {
				m := c.Mark()
				if ac.cache {
					c.AttentionCached(q, kv, 0, slots, qLens, p, nil)
				} else {
					c.Attention(q, k, v, ac.batch, p)
				}
				c.Release(m)
			})
			r := BenchResult{Op: "attention", Model: ac.model, Shape: shape, DType: "F32", Variant: c.Variant(), Seconds: sec, GFLOPS: flops / sec / 1e9}
			if ac.cache { // decoding reads the whole cache: bandwidth matters
				es := 4
				if ac.kv == F16 {
					es, r.DType = 2, "F16"
				}
				r.GBps = 2 * float64(es*ac.batch*ac.tk*w) / sec / 1e9
			}
			if g := b.gemmRate[c.Variant()]; g > 0 {
				r.Anchor, r.Ratio = "gemm", r.GFLOPS/g
			}
			if p := b.peak[c.Variant()]; p > 0 {
				r.PeakFraction = r.GFLOPS / p
			}
			b.add(r)
		}
	}
}

func (b *bencher) rowOps() {
	m := 257 * b.o.Batch
	x := FromF32(benchFloats(31, m*1408, 1), m, 1408)
	g, be := FromF32(benchFloats(32, 1408, 1), 1408), FromF32(benchFloats(33, 1408, 1), 1408)
	logits := FromF32(benchFloats(34, 8*50272, 3), 8, 50272)
	for _, c := range b.ctxs {
		b.progress("row ops %s", c.Variant())
		sec := b.measure(func() { m := c.Mark(); c.LayerNorm(x, g, be, 1e-6); c.Release(m) })
		b.add(BenchResult{Op: "layernorm", Model: "eva-g", Shape: fmt.Sprintf("%dx1408", m), DType: "F32", Variant: c.Variant(), Seconds: sec,
			GBps: 2 * 4 * float64(m*1408) / sec / 1e9})
		sec = b.measure(func() { m := c.Mark(); c.LogSoftmax(logits); c.Release(m) })
		b.add(BenchResult{Op: "softmax", Model: "opt logits (log)", Shape: "8x50272", DType: "F32", Variant: c.Variant(), Seconds: sec,
			GBps: 2 * 4 * 8 * 50272 / sec / 1e9})
	}
}

// gather: a decoding step's token embeddings, 8 rows of OPT-2.7B's Q8_0 table, read from
// its panels (the Matrix's one copy). Fresh random ids per call over a 137 MB table, so
// the rows come from memory as in decoding; GB/s counts the f32 rows written.
func (b *bencher) gather() {
	const vocab, width, rows = 50272, 2560, 8
	w, err := QuantizeMatrix(benchFloats(41, vocab*width, 0.02), vocab, width, Q8_0)
	if err != nil {
		panic(err) // the shape is valid
	}
	r := rand.New(rand.NewPCG(42, 7))
	ids := make([]int32, rows)
	for _, c := range b.ctxs {
		b.progress("gather %s", c.Variant())
		sec := b.measure(func() {
			for i := range ids {
				ids[i] = int32(r.IntN(vocab))
			}
			m := c.Mark()
			c.Gather(w, ids)
			c.Release(m)
		})
		b.add(BenchResult{Op: "gather", Model: "opt-2.7b embed_tokens", Shape: fmt.Sprintf("%d rows of %dx%d", rows, vocab, width), DType: "Q8_0",
			Variant: c.Variant(), Seconds: sec, GBps: 4 * rows * width / sec / 1e9})
	}
}
