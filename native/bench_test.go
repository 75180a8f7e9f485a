package native

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
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

// BenchmarkLinear: f32 GEMM at the encoder shapes (ViT-L/14 257 tokens, EVA ViT-g,
// Q-Former) and quantized decode shapes (OPT-2.7B). GFLOP/s = 2*m*n*k / time.
func BenchmarkLinear(b *testing.B) {
	for _, sh := range BenchGEMMShapes(1) {
		for _, v := range benchVariants(b, sh.M*sh.N*sh.K < 300_000_000) {
			b.Run(fmt.Sprintf("isa=%s/dt=%s/m=%d/k=%d/n=%d", v, sh.DType, sh.M, sh.K, sh.N), func(b *testing.B) {
				c, err := NewCtxVariant(runtime.GOMAXPROCS(0), v)
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				w := benchMatrix(b, sh.DType, sh.N, sh.K)
				x := randTensor(rand.New(rand.NewPCG(1, 2)), 1, sh.M, sh.K)
				y := NewTensor(sh.M, sh.N)
				c.LinearInto(y, x, w, nil, None, Tensor{})
				for b.Loop() {
					c.LinearInto(y, x, w, nil, None, Tensor{})
				}
				sec := b.Elapsed().Seconds() / float64(b.N)
				b.ReportMetric(2*float64(sh.M)*float64(sh.N)*float64(sh.K)/sec/1e9, "GFLOP/s")
				b.ReportMetric(float64(sh.DType.RowBytes(sh.K)*sh.N)/sec/1e9, "weightGB/s")
			})
		}
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
					c.Reset()
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
