package native

import (
	"fmt"
	"io"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"synth/kernels"
)

// A Profile times every op a Ctx runs, grouped by the phase the caller names (vision
// encoder, Q-Former, prefill, decode, ...) and by op kind, with the flops and bytes each
// op must do, so that a report can say where a forward pass spends its time and how
// close each part runs to the machine (GEMM rate, copy bandwidth). Off, it costs each op
// one atomic load.
//
//	p := c.StartProfile()
//	p.Phase("vision")   // ops from here on count for "vision"
//	...
//	p.Stop()
//	p.WriteReport(os.Stdout, native.MeasureRates(c))
type Profile struct {
	x executor

	mu      sync.Mutex
	phase   string
	start   time.Time // of the current phase
	order   []string  // phases in first-seen order
	wall    map[string]time.Duration
	ops     map[profKey]*ProfileOp
	stopped bool
}

type profKey struct{ phase, op, dtype string }

// ProfileOp is the total of one kind of op in one phase.
type ProfileOp struct {
	Phase, Op, DType string
	Calls            int
	Seconds          float64
	Flops            float64 // multiply-adds count 2
	Bytes            float64 // weights read (GEMM), keys and values read (attention), in + out (the rest)
}

var (
	profiling atomic.Int32 // number of live Profiles: the hook's fast path
	profiles  sync.Map     // executor (of a Ctx) -> *Profile
)

// StartProfile starts timing c's ops (one Profile per Ctx at a time; a new one replaces
// the old). The phase is "" until Phase names one. Ops are timed on the cpu device,
// where each runs when it is called; on a ggml device only the phases' wall times count.
func (c *Ctx) StartProfile() *Profile {
	p := &Profile{x: c.x, start: time.Now(), wall: map[string]time.Duration{}, ops: map[profKey]*ProfileOp{}}
	if old, loaded := profiles.Swap(c.x, p); !loaded || old == nil {
		profiling.Add(1)
	}
	p.order = append(p.order, "")
	return p
}

// Phase ends the current phase and starts name: ops and wall time count for it until the
// next Phase or Stop. Phases may recur (decode, sampling, decode, ...): they add up.
func (p *Profile) Phase(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if !p.stopped {
		p.wall[p.phase] += now.Sub(p.start)
	}
	p.phase, p.start = name, now
	if _, ok := p.wall[name]; !ok && !contains(p.order, name) {
		p.order = append(p.order, name)
	}
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// Stop ends the profile: later ops of the Ctx are not timed.
func (p *Profile) Stop() {
	p.mu.Lock()
	if !p.stopped {
		p.wall[p.phase] += time.Since(p.start)
		p.stopped = true
	}
	p.mu.Unlock()
	if profiles.CompareAndDelete(p.x, p) {
		profiling.Add(-1)
	}
}

// profileOp is the cpu executor's hook: it returns the function that records j's time
// when it ends, or a no-op when x's Ctx is not being profiled.
func profileOp(x executor, j job) func() {
	if profiling.Load() == 0 {
		return noop
	}
	v, ok := profiles.Load(x)
	if !ok {
		return noop
	}
	p, t0 := v.(*Profile), time.Now()
	return func() { p.add(j, time.Since(t0)) }
}

func noop() {}

func (p *Profile) add(j job, d time.Duration) {
	op, dt, flops, bytes := describeJob(j)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	k := profKey{p.phase, op, dt}
	s := p.ops[k]
	if s == nil {
		s = &ProfileOp{Phase: p.phase, Op: op, DType: dt}
		p.ops[k] = s
	}
	s.Calls++
	s.Seconds += d.Seconds()
	s.Flops += flops
	s.Bytes += bytes
}

// describeJob names an op and counts the work it must do.
func describeJob(j job) (op, dtype string, flops, bytes float64) {
	switch j := j.(type) {
	case *gemmJob:
		m, n, k := float64(j.x.Rows), float64(j.w.N), float64(j.w.K)
		return "gemm", j.w.DType.String(), 2 * m * n * k, n * float64(kernels.RowBytes(j.w.DType, j.w.K))
	case *attnJob:
		es := 4.0
		if j.f16 {
			es = 2
		}
		var pairs, keys float64
		for i := 0; i+kernels.SeqFields <= len(j.seq); i += kernels.SeqFields {
			nq, nk, qpos0 := j.seq[i+1], j.seq[i+3], j.seq[i+4]
			keys += float64(nk)
			for q := int64(0); q < nq; q++ {
				if j.causal {
					pairs += float64(min(nk, qpos0+q+1))
				} else {
					pairs += float64(nk)
				}
			}
		}
		hd := float64(j.h * j.d)
		kv := "F32"
		if j.f16 {
			kv = "F16"
		}
		return "attention", kv, 4 * hd * pairs, 2 * es * hd * keys
	case *rowJob:
		names := [...]string{rowLayerNorm: "layernorm", rowSoftmax: "softmax", rowLogSoftmax: "log-softmax",
			rowAct: "activation", rowAxpby: "add/scale", rowL2: "l2norm", rowArgmax: "argmax"}
		name := "row op"
		if int(j.kind) < len(names) {
			name = names[j.kind]
		}
		return name, "F32", 0, 8 * float64(j.x.Rows*j.x.Cols)
	case *im2colJob:
		return "im2col", "F32", 0, 8 * float64(len(j.out))
	case *gatherJob:
		return "gather", j.w.DType.String(), 0, 4 * float64(j.out.Rows*j.out.Cols)
	}
	return fmt.Sprintf("%T", j), "", 0, 0
}

// Ops returns the totals by phase (in the order the phases began) and op kind.
func (p *Profile) Ops() []ProfileOp {
	p.mu.Lock()
	defer p.mu.Unlock()
	rank := map[string]int{}
	for i, ph := range p.order {
		rank[ph] = i
	}
	out := make([]ProfileOp, 0, len(p.ops))
	for _, s := range p.ops {
		out = append(out, *s)
	}
	sort.Slice(out, func(a, b int) bool {
		if out[a].Phase != out[b].Phase {
			return rank[out[a].Phase] < rank[out[b].Phase]
		}
		return out[a].Seconds > out[b].Seconds
	})
	return out
}

// Wall is the time spent in each phase (ops and host work between them).
func (p *Profile) Wall() map[string]time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	w := make(map[string]time.Duration, len(p.wall))
	for k, v := range p.wall {
		w[k] = v
	}
	return w
}

// Rates are the machine's reference rates for a profile: the Ctx's f32 GEMM at the
// ViT-L qkv shape (GFLOP/s) and the STREAM copy bandwidth (GB/s) of its threads.
type Rates struct {
	Variant  string
	Threads  int
	GEMM     float64
	CopyGBps float64
}

// MeasureRates measures Rates with c's kernels and workers (about a second): the
// anchors a profile's GFLOP/s and GB/s are compared with.
func MeasureRates(c *Ctx) Rates {
	const m, n, k = 257, 3072, 1024
	w, err := NewMatrixF32(benchFloats(1, n*k, 0.02), n, k)
	if err != nil {
		panic(err) // valid shape
	}
	x, y := FromF32(benchFloats(2, m*k, 1), m, k), NewTensor(m, n)
	best := math.Inf(1)
	for i := 0; i < 5; i++ {
		t := time.Now()
		c.LinearInto(y, x, w, Tensor{}, None, Tensor{})
		best = min(best, time.Since(t).Seconds())
	}
	r := Rates{Variant: c.Variant(), Threads: c.Threads(), GEMM: 2 * m * n * k / best / 1e9}
	set := c.kernelSet()
	if set == nil || set.ISA() == kernels.ISARef {
		return r
	}
	const words = 32 << 20 // 128 MiB per array: past the caches
	src, dst := alignedFloats(words), alignedFloats(words)
	best = math.Inf(1)
	for i := 0; i < 4; i++ {
		t := time.Now()
		var wg sync.WaitGroup
		for ith := 0; ith < c.Threads(); ith++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = set.StreamCopy(src, dst, ith, c.Threads())
			}()
		}
		wg.Wait()
		best = min(best, time.Since(t).Seconds())
	}
	r.CopyGBps = 8 * words / best / 1e9
	return r
}

// WriteReport prints the profile: per phase its wall time and share, then each op kind
// with its time, share of the phase, GFLOP/s against r.GEMM (GEMMs, attention) or GB/s
// against r.CopyGBps (the memory-bound rest, and decoding GEMMs whose weights stream
// from memory), and the phase's host work (wall time outside the ops).
func (p *Profile) WriteReport(w io.Writer, r Rates) {
	wall := p.Wall()
	var total time.Duration
	for _, d := range wall {
		total += d
	}
	fmt.Fprintf(w, "profile: variant %s, %d threads; anchors: f32 GEMM %.1f GFLOP/s (vit-l qkv), copy %.1f GB/s\n",
		r.Variant, r.Threads, r.GEMM, r.CopyGBps)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\top\tdtype\tcalls\tms\t% phase\t% total\tGFLOP/s\tvs gemm\tGB/s\tvs copy\t")
	ops := p.Ops()
	p.mu.Lock()
	order := append([]string(nil), p.order...)
	p.mu.Unlock()
	for _, ph := range order {
		pw := wall[ph].Seconds()
		if pw == 0 || (ph == "" && !hasPhase(ops, ph)) {
			continue // the moment between StartProfile and the first Phase
		}
		name := ph
		if name == "" {
			name = "(unnamed)"
		}
		var inOps float64
		for _, o := range ops {
			if o.Phase != ph {
				continue
			}
			inOps += o.Seconds
			gf, gb := o.Flops/o.Seconds/1e9, o.Bytes/o.Seconds/1e9
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.1f\t%.1f\t%.1f\t%s\t%s\t%s\t%s\t\n", name, o.Op, o.DType, o.Calls, o.Seconds*1e3,
				100*o.Seconds/pw, 100*o.Seconds/total.Seconds(), num(gf), ratio(gf, r.GEMM), num(gb), ratio(gb, r.CopyGBps))
		}
		host := max(0, pw-inOps)
		fmt.Fprintf(tw, "%s\t%s\t\t\t%.1f\t%.1f\t%.1f\t\t\t\t\t\n", name, "host work", host*1e3, 100*host/pw, 100*host/total.Seconds())
		fmt.Fprintf(tw, "%s\t%s\t\t\t%.1f\t100.0\t%.1f\t\t\t\t\t\n", name, "= phase", pw*1e3, 100*pw/total.Seconds())
	}
	tw.Flush()
}

func hasPhase(ops []ProfileOp, ph string) bool {
	for _, o := range ops {
		if o.Phase == ph {
			return true
		}
	}
	return false
}

func num(v float64) string {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return "-"
	}
	return fmt.Sprintf("%.1f", v)
}

func ratio(v, anchor float64) string {
	if v == 0 || anchor == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return "-"
	}
	return fmt.Sprintf("%.2f", v/anchor)
}
