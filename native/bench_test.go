package native

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
)

// Benchmarks at the real model shapes, per kernel variant (isa=ref is the baseline).
// Compare runs with benchstat; `synth bench kernels` prints the same ops as a table with
// the OpenBLAS anchor (build tag openblas) measured in the same run.

func benchVariants(b *testing.B, withRef bool) []string {
	var out []string
	for _, v := range Variants() {
		if v != "ref" || withRef {
			out = append(out, v)
		}
	}
	return out
}

func benchMatrix(b *testing.B, dt DType, n, k int) *Matrix {
	r := rand.New(rand.NewPCG(uint64(n), uint64(k)))
	w := randFloats(r, n*k, 0.02)
	m, err := QuantizeMatrix(w, n, k, dt)
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// BenchmarkLinear: GEMM at the encoder shapes (ViT-L/14 257 tokens, EVA ViT-g,
// Q-Former) and the quantized decode shapes (OPT-2.7B). GFLOP/s = 2*m*n*k / time. The
// decode shapes run on one matrix, cache-hot where it fits: `synth bench kernels` cycles
// through copies past the caches for the memory-bound rate. In a
// build with -tags openblas, isa=openblas runs the f32 shapes through cblas_sgemm: the
// anchor, in the same run.
func BenchmarkLinear(b *testing.B) {
	blas, _ := newOpenBLAS(runtime.GOMAXPROCS(0))
	for _, sh := range BenchGEMMShapes(1) {
		name := fmt.Sprintf("dt=%s/m=%d/k=%d/n=%d", sh.DType, sh.M, sh.K, sh.N)
		x := randTensor(rand.New(rand.NewPCG(1, 2)), 1, sh.M, sh.K)
		y := NewTensor(sh.M, sh.N)
		report := func(b *testing.B) {
			sec := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(2*float64(sh.M)*float64(sh.N)*float64(sh.K)/sec/1e9, "GFLOP/s")
			b.ReportMetric(float64(sh.DType.RowBytes(sh.K)*sh.N)/sec/1e9, "weightGB/s")
		}
		if blas != nil && sh.DType == F32 {
			b.Run("isa=openblas/"+name, func(b *testing.B) {
				w := benchMatrix(b, F32, sh.N, sh.K).Dequantize()
				for b.Loop() {
					blas.SGEMM(x.F32(), w, y.F32(), sh.M, sh.N, sh.K)
				}
				report(b)
			})
			time.Sleep(250 * time.Millisecond) // OpenBLAS's idle threads spin a while
		}
		for _, v := range benchVariants(b, sh.M*sh.N*sh.K < 300_000_000) {
			b.Run("isa="+v+"/"+name, func(b *testing.B) {
				c, err := NewCtxVariant(runtime.GOMAXPROCS(0), v)
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				w := benchMatrix(b, sh.DType, sh.N, sh.K)
				c.LinearInto(y, x, w, Tensor{}, None, Tensor{})
				for b.Loop() {
					c.LinearInto(y, x, w, Tensor{}, None, Tensor{})
				}
				report(b)
			})
		}
	}
}

// BenchmarkWorkSplit: the GEMM's shared-work split (kernels.Work) against the fixed
// shares it replaced, at the shapes of a caption's Q8_0 GEMMs: OPT-2.7B decoding (8
// sequences), its prefill (8 x 33 rows) and EVA ViT-g (8 images). The two alternate every
// 10 calls within one run, so drift on a shared machine hits both alike; weights cycle
// through 8 copies, as a model's layers do. It reports both rates and shared/fixed.
func BenchmarkWorkSplit(b *testing.B) {
	shapes := []GEMMShape{
		{"opt-2.7b decode fc1 x8", Q8_0, 8, 2560, 10240},
		{"opt-2.7b decode out x8", Q8_0, 8, 2560, 2560},
		{"opt-2.7b decode fc2 x8", Q8_0, 8, 10240, 2560},
		{"opt-2.7b prefill fc1 x8", Q8_0, 8 * 33, 2560, 10240},
		{"eva-g fc1 x8", Q8_0, 8 * 257, 1408, 6144},
	}
	for _, v := range benchVariants(b, false) {
		for _, sh := range shapes {
			b.Run(fmt.Sprintf("isa=%s/dt=%s/m=%d/k=%d/n=%d", v, sh.DType, sh.M, sh.K, sh.N), func(b *testing.B) {
				c, err := NewCtxVariant(runtime.GOMAXPROCS(0), v)
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				x := randTensor(rand.New(rand.NewPCG(1, 2)), 1, sh.M, sh.K)
				y := NewTensor(sh.M, sh.N)
				ws := make([]*Matrix, 8)
				for i := range ws {
					ws[i] = benchMatrix(b, sh.DType, sh.N, sh.K)
					c.LinearInto(y, x, ws[i], Tensor{}, None, Tensor{}) // packs it
				}
				exec := c.x.(*cpuExec)
				work := exec.work
				var sec [2]float64 // fixed, shared
				var calls [2]int
				b.ResetTimer()
				for i := 0; b.Loop(); i++ {
					mode := i / 10 % 2
					exec.work = nil // fixed shares
					if mode == 1 {
						exec.work = work
					}
					t := time.Now()
					c.LinearInto(y, x, ws[i%len(ws)], Tensor{}, None, Tensor{})
					sec[mode] += time.Since(t).Seconds()
					calls[mode]++
				}
				exec.work = work
				if calls[0] == 0 || calls[1] == 0 {
					return // too few calls to compare (b.N < 11)
				}
				flops := 2 * float64(sh.M) * float64(sh.N) * float64(sh.K)
				fixed, shared := flops*float64(calls[0])/sec[0]/1e9, flops*float64(calls[1])/sec[1]/1e9
				b.ReportMetric(fixed, "fixed-GFLOP/s")
				b.ReportMetric(shared, "shared-GFLOP/s")
				b.ReportMetric(shared/fixed, "shared/fixed")
			})
		}
	}
}

// BenchmarkMLPBlock: a ViT-L MLP block with its residual, o = x + fc2(QuickGELU(fc1 x +
// b1)) + b2, fused epilogues against (isa=openblas, with -tags openblas) two sgemm calls
// and plain loops for the bias, activation and residual.
func BenchmarkMLPBlock(b *testing.B) {
	const m, d, hid = 257, 1024, 4096
	r := rand.New(rand.NewPCG(7, 8))
	w1f, w2f := randFloats(r, hid*d, 0.02), randFloats(r, d*hid, 0.02)
	b1, b2 := FromF32(randFloats(r, hid, 0.1), hid), FromF32(randFloats(r, d, 0.1), d)
	x := randTensor(r, 1, m, d)
	h, o := NewTensor(m, hid), NewTensor(m, d)
	report := func(b *testing.B) {
		b.ReportMetric(4*float64(m*d*hid)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	}
	if blas, err := newOpenBLAS(runtime.GOMAXPROCS(0)); err == nil {
		b.Run("isa=openblas+loops", func(b *testing.B) {
			for b.Loop() {
				blas.SGEMM(x.F32(), w1f, h.F32(), m, hid, d)
				blas.BiasQuickGELU(h.F32(), b1.F32(), m, hid)
				blas.SGEMM(h.F32(), w2f, o.F32(), m, d, hid)
				blas.BiasResidual(o.F32(), b2.F32(), x.F32(), m, d)
			}
			report(b)
		})
		time.Sleep(250 * time.Millisecond) // OpenBLAS's idle threads spin a while
	}
	w1, _ := NewMatrixF32(w1f, hid, d)
	w2, _ := NewMatrixF32(w2f, d, hid)
	for _, v := range benchVariants(b, false) {
		b.Run("isa="+v+"/fused", func(b *testing.B) {
			c, err := NewCtxVariant(runtime.GOMAXPROCS(0), v)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			for b.Loop() {
				c.LinearInto(h, x, w1, b1, QuickGELU, Tensor{})
				c.LinearInto(o, h, w2, b2, None, x)
			}
			report(b)
		})
	}
}

// BenchmarkAttention: encoder self-attention (ViT-L, EVA), causal text, Q-Former cross
// attention. GFLOP/s counts 4*d flops per (query, key, head) pair.
func BenchmarkAttention(b *testing.B) {
	cases := []struct {
		name         string
		h, d, tq, tk int
		causal       bool
	}{
		{"vit-l", 16, 64, 257, 257, false},
		{"eva-g", 16, 88, 257, 257, false},
		{"text-causal", 12, 64, 248, 248, true},
		{"qformer-cross", 12, 64, 32, 257, false},
	}
	for _, ac := range cases {
		for _, v := range benchVariants(b, false) {
			b.Run(fmt.Sprintf("isa=%s/model=%s/h=%d/d=%d/tq=%d/tk=%d", v, ac.name, ac.h, ac.d, ac.tq, ac.tk), func(b *testing.B) {
				c, err := NewCtxVariant(runtime.GOMAXPROCS(0), v)
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				r := rand.New(rand.NewPCG(5, 6))
				w := ac.h * ac.d
				q, k, vv := randTensor(r, 1, ac.tq, w), randTensor(r, 1, ac.tk, w), randTensor(r, 1, ac.tk, w)
				p := AttnParams{Heads: ac.h, HeadDim: ac.d, Scale: 0.125, Causal: ac.causal}
				for b.Loop() {
					c.Attention(q, k, vv, 1, p)
					c.Release(Mark{})
				}
				pairs := float64(ac.tq * ac.tk)
				if ac.causal {
					pairs = float64(ac.tq*(ac.tq+1)) / 2
				}
				b.ReportMetric(4*float64(ac.h*ac.d)*pairs*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// BenchmarkAttentionCached: OPT-2.7B decoding attention (8 sequences, 32 heads of 80,
// one query each) over an F32 and an F16 cache of len positions per sequence. Each call
// attends at the next of the cache's layers, as a decoding step does, so the keys and
// values come from memory (the layers together are past the caches) rather than from a
// cache-hot slab. GB/s counts the cache bytes read.
func BenchmarkAttentionCached(b *testing.B) {
	const slots, h, d = 8, 32, 80
	for _, sh := range []struct{ layers, len int }{{32, 93}, {4, 512}} {
		for _, dt := range []DType{F32, F16} {
			for _, v := range benchVariants(b, false) {
				b.Run(fmt.Sprintf("isa=%s/kv=%s/slots=%d/h=%d/d=%d/len=%d", v, dt, slots, h, d, sh.len), func(b *testing.B) {
					c, err := NewCtxVariant(runtime.GOMAXPROCS(0), v)
					if err != nil {
						b.Fatal(err)
					}
					defer c.Close()
					r := rand.New(rand.NewPCG(7, 8))
					w := h * d
					kv := NewKVCache(sh.layers, slots, sh.len, w, dt)
					ids, ones := make([]int, slots), make([]int, slots)
					for i := range ids {
						ids[i], ones[i] = i, 1
					}
					k, vv := randTensor(r, 1, slots*sh.len, w), randTensor(r, 1, slots*sh.len, w)
					for l := 0; l < sh.layers; l++ {
						c.AppendKV(kv, l, ids, nil, k, vv)
					}
					q := randTensor(r, 1, slots, w)
					p := AttnParams{Heads: h, HeadDim: d, Scale: 1 / float32(math.Sqrt(d)), Causal: true}
					c.AttentionCached(q, kv, 0, ids, ones, p, nil) // grow the arena
					c.Release(Mark{})
					layer := 0
					for b.Loop() {
						c.AttentionCached(q, kv, layer, ids, ones, p, nil)
						c.Release(Mark{})
						layer = (layer + 1) % sh.layers
					}
					es := 4
					if dt == F16 {
						es = 2
					}
					b.ReportMetric(float64(2*es*slots*sh.len*w)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
				})
			}
		}
	}
}

// BenchmarkGather: a decoding step's token embeddings, 8 rows of OPT-2.7B's 50272 x 2560
// table (Q8_0 and F16), read from the panels: random ids per call, so the rows come from
// memory. isa=ref is the baseline.
func BenchmarkGather(b *testing.B) {
	const vocab, width, rows = 50272, 2560, 8
	for _, dt := range []DType{Q8_0, F16} {
		w := benchMatrix(b, dt, vocab, width)
		for _, v := range benchVariants(b, true) {
			b.Run(fmt.Sprintf("isa=%s/dt=%s/rows=%d/n=%d/k=%d", v, dt, rows, vocab, width), func(b *testing.B) {
				c, err := NewCtxVariant(runtime.GOMAXPROCS(0), v)
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				r := rand.New(rand.NewPCG(9, 10))
				ids := make([]int32, rows)
				c.Gather(w, ids) // grow the arena
				c.Release(Mark{})
				for b.Loop() {
					for i := range ids {
						ids[i] = int32(r.IntN(vocab))
					}
					c.Gather(w, ids)
					c.Release(Mark{})
				}
			})
		}
	}
}

// BenchmarkOpOverhead: the fixed cost of one op on the pool (dispatch to every worker and
// wait), on a 1x16 tensor, at 1 and GOMAXPROCS workers.
func BenchmarkOpOverhead(b *testing.B) {
	for _, n := range []int{1, runtime.GOMAXPROCS(0)} {
		b.Run(fmt.Sprintf("threads=%d", n), func(b *testing.B) {
			c := NewCtx(n)
			defer c.Close()
			x := NewTensor(1, 16)
			for b.Loop() {
				c.AddInPlace(x, x)
			}
		})
	}
}
