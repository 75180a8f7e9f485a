package ggml_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"synth/native"
	"synth/native/ggml"
	"synth/weights"
)

var _ native.MatMulAnchor = ggml.Anchor{}

var randValues = ggml.RandValues

// TestMulMat: ggml's mul_mat on Q8_0 and F16 weights gives x W^T within ggml's own
// rounding (it quantizes x to 8 bits for Q8_0 weights: the tolerance is that of
// kernels.QGEMMRef's bound, a half step of x per value, which 2% of sum |x w| covers).
func TestMulMat(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	const m, n, k = 3, 40, 256
	x, wf := randValues(r, m*k, 1), randValues(r, n*k, 0.1)
	for _, dt := range []weights.DType{weights.Q8_0, weights.F16, weights.Q4_K} {
		raw, err := ggml.Codec{}.Quantize(dt, wf, n, k)
		if err != nil {
			t.Fatal(err)
		}
		w, err := weights.Dequantize(dt, raw, n*k)
		if err != nil {
			t.Fatal(err)
		}
		mm, err := ggml.NewMulMat(dt, raw, n, k, m, 2)
		if err != nil {
			t.Fatal(err)
		}
		y := make([]float32, m*n)
		if err := mm.Run(x, y); err != nil {
			t.Fatal(err)
		}
		mm.Close()
		for i := range m {
			for j := range n {
				s, a := 0.0, 0.0
				for kk := range k {
					s += float64(x[i*k+kk]) * float64(w[j*k+kk])
					a += math.Abs(float64(x[i*k+kk]) * float64(w[j*k+kk]))
				}
				if d := math.Abs(float64(y[i*n+j]) - s); d > 0.02*a {
					t.Fatalf("%s [%d,%d] = %v, want %v (scale %v)", dt, i, j, y[i*n+j], s, a)
				}
			}
		}
	}
	if _, err := ggml.NewMulMat(weights.Q8_0, make([]byte, 10), 2, 64, 1, 1); err == nil {
		t.Error("short weights accepted")
	}
}

// BenchmarkDecodeVsGGML: a decoding step's Linear at OPT-2.7B's fc1 shape on the same
// Q8_0 / Q4_0 weights, ours (isa=avx2, avx512) against ggml's CPU mul_mat (isa=ggml) in
// the same run, m = 1 and 8 sequences. Cache-hot (one matrix); synth bench kernels cycles
// copies past the caches.
func BenchmarkDecodeVsGGML(b *testing.B) {
	const n, k = 10240, 2560
	r := rand.New(rand.NewPCG(1, 1))
	wf := randValues(r, n*k, 0.02)
	threads := runtime.GOMAXPROCS(0)
	for _, dt := range []weights.DType{weights.Q8_0, weights.Q4_0, weights.Q4_K} {
		raw, err := ggml.Codec{}.Quantize(dt, wf, n, k)
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range []int{1, 8} {
			x := randValues(r, m*k, 1)
			report := func(b *testing.B) {
				sec := b.Elapsed().Seconds() / float64(b.N)
				b.ReportMetric(2*float64(m*n*k)/sec/1e9, "GFLOP/s")
			}
			b.Run(fmt.Sprintf("isa=ggml/dt=%s/m=%d/k=%d/n=%d", dt, m, k, n), func(b *testing.B) {
				mm, err := ggml.NewMulMat(dt, raw, n, k, m, threads)
				if err != nil {
					b.Fatal(err)
				}
				defer mm.Close()
				mm.Run(x, nil)
				for b.Loop() {
					mm.Run(nil, nil)
				}
				report(b)
			})
			for _, v := range native.Variants() {
				if v == "ref" {
					continue
				}
				b.Run(fmt.Sprintf("isa=%s/dt=%s/m=%d/k=%d/n=%d", v, dt, m, k, n), func(b *testing.B) {
					c, err := native.NewCtxVariant(threads, v)
					if err != nil {
						b.Fatal(err)
					}
					defer c.Close()
					w, err := native.NewMatrix(nativeDType(dt), raw, n, k)
					if err != nil {
						b.Fatal(err)
					}
					xt, y := native.FromF32(x, m, k), native.NewTensor(m, n)
					c.LinearInto(y, xt, w, native.Tensor{}, native.None, native.Tensor{})
					for b.Loop() {
						c.LinearInto(y, xt, w, native.Tensor{}, native.None, native.Tensor{})
					}
					report(b)
				})
			}
		}
	}
}

func nativeDType(d weights.DType) native.DType {
	switch d {
	case weights.Q4_0:
		return native.Q4_0
	case weights.Q4_K:
		return native.Q4_K
	}
	return native.Q8_0
}
