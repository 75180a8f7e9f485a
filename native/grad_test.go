package native

import (
	"math"
	"testing"
)

// The backward ops against finite differences of float64 oracles of their forward ops:
// with a random weighting w of the forward output, L(x) = sum(w f(x)) and the op given
// dy = w must return dL/dx, which central differences of L in float64 (h = 1e-6) give to
// about 1e-8. The ops compute in f32: 2e-4 relative (floor 1e-3 of the largest
// gradient) covers their roundings at these sizes. Every op runs on every test device.

// fdGrad is the central-difference gradient of L at x (float64, perturbing x itself).
func fdGrad(x []float64, loss func() float64) []float64 {
	const h = 1e-6
	g := make([]float64, len(x))
	for i := range x {
		v := x[i]
		x[i] = v + h
		lp := loss()
		x[i] = v - h
		lm := loss()
		x[i] = v
		g[i] = (lp - lm) / (2 * h)
	}
	return g
}

func f64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

func weighted(w []float32, y []float64) float64 {
	s := 0.0
	for i, v := range y {
		s += float64(w[i]) * v
	}
	return s
}

// nearGrad fails unless got matches the finite differences want within 2e-4 relative,
// with a floor of 1e-3 of the largest |want|.
func nearGrad(t *testing.T, what string, got []float32, want []float64) {
	t.Helper()
	scale := 0.0
	for _, v := range want {
		scale = math.Max(scale, math.Abs(v))
	}
	for i := range want {
		if d := math.Abs(float64(got[i]) - want[i]); !(d <= 2e-4*math.Abs(want[i])+1e-3*scale) {
			t.Fatalf("%s: [%d] = %v, finite differences %v", what, i, got[i], want[i])
		}
	}
}

func TestLinearBackward(t *testing.T) {
	r := newRand(t)
	const m, n, k = 5, 7, 64
	x := randTensor(r, 1, m, k)
	w := randFloats(r, n*k, 0.3)
	dy := randTensor(r, 1, m, n)
	forEachCtx(t, func(t *testing.T, c *Ctx) {
		for _, dt := range []DType{F32, F16, Q8_0} {
			mat, err := c.Device().QuantizeMatrix(w, n, k, dt)
			if err != nil {
				t.Fatal(err)
			}
			wd := f64(mat.Dequantize())
			xs := f64(x.F32())
			want := fdGrad(xs, func() float64 {
				y := make([]float64, m*n)
				for i := 0; i < m; i++ {
					for j := 0; j < n; j++ {
						for kk := 0; kk < k; kk++ {
							y[i*n+j] += xs[i*k+kk] * wd[j*k+kk]
						}
					}
				}
				return weighted(dy.F32(), y)
			})
			mk := c.Mark()
			nearGrad(t, "dx "+dt.String(), c.ToHost(c.LinearBackward(on(c, dy), mat)), want)
			c.Release(mk)
			mat.Free()
		}
	})
}

// TestLinearBackwardQuantized: a quantized W whose N fills Q8_0 blocks runs dx = dy W in
// integers on the cpu (W^T and dy rounded to 8 bits per 32 values), so dx is within
// that rounding of the exact product, on every device.
func TestLinearBackwardQuantized(t *testing.T) {
	r := newRand(t)
	const m, n, k = 6, 96, 64
	w := randFloats(r, n*k, 0.3)
	dy := randTensor(r, 1, m, n)
	forEachCtx(t, func(t *testing.T, c *Ctx) {
		for _, dt := range []DType{Q8_0, Q4_0} {
			got, want := linearBackwardVsExact(t, c, w, dy, n, k, dt)
			var maxD, maxW float64
			for i := range want {
				maxD = max(maxD, math.Abs(float64(got[i])-want[i]))
				maxW = max(maxW, math.Abs(want[i]))
			}
			if maxD > 2e-2*maxW {
				t.Errorf("dx %s: max deviation %.3g of scale %.3g", dt, maxD, maxW)
			}
		}
	})
}

// TestLinearBackwardLarge: a W of more rows than the cpu's chunk (its product is a sum
// of per-chunk GEMMs) against the exact product, for the float dtypes.
func TestLinearBackwardLarge(t *testing.T) {
	r := newRand(t)
	const m, n, k = 3, 2100, 48
	w := randFloats(r, n*k, 0.3)
	dy := randTensor(r, 1, m, n)
	forEachCtx(t, func(t *testing.T, c *Ctx) {
		for _, dt := range []DType{F32, F16} {
			got, want := linearBackwardVsExact(t, c, w, dy, n, k, dt)
			nearGrad(t, "dx "+dt.String(), got, want)
		}
	})
}

// linearBackwardVsExact runs dx = dy W on c for w (n x k) stored as dt, and gives the
// exact float64 product over the weights as stored (dequantized) beside it.
func linearBackwardVsExact(t *testing.T, c *Ctx, w []float32, dy Tensor, n, k int, dt DType) ([]float32, []float64) {
	t.Helper()
	mat, err := c.Device().QuantizeMatrix(w, n, k, dt)
	if err != nil {
		t.Fatal(err)
	}
	defer mat.Free()
	wd := mat.Dequantize()
	m, _ := dy.Dims2()
	want := make([]float64, m*k)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			for kk := 0; kk < k; kk++ {
				want[i*k+kk] += float64(dy.Row(i)[j]) * float64(wd[j*k+kk])
			}
		}
	}
	mk := c.Mark()
	defer c.Release(mk)
	return c.ToHost(c.LinearBackward(on(c, dy), mat)), want
}

func TestMatMulTN(t *testing.T) {
	r := newRand(t)
	const m, p, q = 9, 4, 37
	a, b := randTensor(r, 1, m, p+3), randTensor(r, 1, m, q)
	forEachCtx(t, func(t *testing.T, c *Ctx) {
		mk := c.Mark()
		defer c.Release(mk)
		got := c.ToHost(c.MatMulTN(on(c, a).Cols(1, p), on(c, b))) // a column view
		for i := 0; i < p; i++ {
			for j := 0; j < q; j++ {
				s := 0.0
				for kk := 0; kk < m; kk++ {
					s += float64(a.Row(kk)[1+i]) * float64(b.Row(kk)[j])
				}
				if d := math.Abs(float64(got[i*q+j]) - s); d > 1e-5*(math.Abs(s)+1) {
					t.Fatalf("[%d,%d] = %v, want %v", i, j, got[i*q+j], s)
				}
			}
		}
	})
}

func TestLayerNormBackward(t *testing.T) {
	r := newRand(t)
	const rows, cols = 4, 37
	x := randTensor(r, 2, rows, cols)
	gamma := randTensor(r, 1, cols)
	dy := randTensor(r, 1, rows, cols)
	forEachCtx(t, func(t *testing.T, c *Ctx) {
		for _, withGamma := range []bool{true, false} {
			xs := f64(x.F32())
			want := fdGrad(xs, func() float64 {
				y := make([]float64, rows*cols)
				for i := 0; i < rows; i++ {
					row := xs[i*cols : (i+1)*cols]
					mean, vr := 0.0, 0.0
					for _, v := range row {
						mean += v
					}
					mean /= cols
					for _, v := range row {
						vr += (v - mean) * (v - mean)
					}
					sd := math.Sqrt(vr/cols + 1e-5)
					for j, v := range row {
						g := 1.0
						if withGamma {
							g = float64(gamma.F32()[j])
						}
						y[i*cols+j] = (v - mean) / sd * g
					}
				}
				return weighted(dy.F32(), y)
			})
			gt := Tensor{}
			mk := c.Mark()
			if withGamma {
				gt = on(c, gamma)
			}
			nearGrad(t, "layernorm dx", c.ToHost(c.LayerNormBackward(on(c, dy), on(c, x), gt, 1e-5)), want)
			c.Release(mk)
		}
	})
}

func TestActivationBackward(t *testing.T) {
	r := newRand(t)
	const rows, cols = 3, 33
	x := randTensor(r, 2, rows, cols)
	dy := randTensor(r, 1, rows, cols)
	act := map[Epilogue]func(float64) float64{
		ReLU:      func(v float64) float64 { return math.Max(v, 0) },
		GELU:      func(v float64) float64 { return 0.5 * v * (1 + math.Erf(v/math.Sqrt2)) },
		GELUTanh:  func(v float64) float64 { return 0.5 * v * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(v+0.044715*v*v*v))) },
		QuickGELU: func(v float64) float64 { return v / (1 + math.Exp(-1.702*v)) },
	}
	forEachCtx(t, func(t *testing.T, c *Ctx) {
		for e, f := range act {
			xs := f64(x.F32())
			want := fdGrad(xs, func() float64 {
				y := make([]float64, len(xs))
				for i, v := range xs {
					y[i] = f(v)
				}
				return weighted(dy.F32(), y)
			})
			mk := c.Mark()
			nearGrad(t, e.String(), c.ToHost(c.ActivationBackward(on(c, dy), on(c, x), e)), want)
			c.Release(mk)
		}
	})
}

// TestAttentionBackward: every gradient of causal attention with padding over two
// sequences, q, k and v column views of one packed projection, and of cross-attention
// onto another key length.
func TestAttentionBackward(t *testing.T) {
	r := newRand(t)
	const b, tq, h, d = 2, 6, 2, 8
	w := h * d
	for _, tc := range []struct {
		name   string
		tk     int
		causal bool
		pad    bool
	}{{"causal-padded", tq, true, true}, {"cross", 4, false, false}} {
		t.Run(tc.name, func(t *testing.T) {
			q := randTensor(r, 1, b*tq, w)
			k, v := randTensor(r, 1, b*tc.tk, w), randTensor(r, 1, b*tc.tk, w)
			dout := randTensor(r, 1, b*tq, w)
			var mask []bool
			if tc.pad {
				mask = make([]bool, b*tc.tk)
				for i := range mask {
					mask[i] = !(i >= tc.tk && i < tc.tk+2) // sequence 1: 2 padded keys
				}
			}
			p := AttnParams{Heads: h, HeadDim: d, Scale: float32(1 / math.Sqrt(d)), Causal: tc.causal, KeyMask: mask}
			qs, ks, vs := f64(q.F32()), f64(k.F32()), f64(v.F32())
			loss := func() float64 {
				y := make([]float64, b*tq*w)
				for s := 0; s < b; s++ {
					for hd := 0; hd < h; hd++ {
						var valid []bool
						if mask != nil {
							valid = mask[s*tc.tk : (s+1)*tc.tk]
						}
						o := attnOracle64(qs, ks, vs, w, s*tq, tq, s*tc.tk, tc.tk, hd*d, d, float64(p.Scale), tc.causal, valid)
						for i := range o {
							copy(y[(s*tq+i)*w+hd*d:], o[i])
						}
					}
				}
				return weighted(dout.F32(), y)
			}
			wq, wk, wv := fdGrad(qs, loss), fdGrad(ks, loss), fdGrad(vs, loss)
			forEachCtx(t, func(t *testing.T, c *Ctx) {
				mk := c.Mark()
				defer c.Release(mk)
				dq, dk, dv := c.AttentionBackward(on(c, q), on(c, k), on(c, v), on(c, dout), b, p)
				nearGrad(t, "dq", c.ToHost(dq), wq)
				nearGrad(t, "dk", c.ToHost(dk), wk)
				nearGrad(t, "dv", c.ToHost(dv), wv)
			})
		})
	}
}

// attnOracle64 is attnOracle in float64 over flat row-major arrays of width w: the
// head columns [col, col+d) of q rows [q0, q0+nq) onto k, v rows [k0, k0+nk).
func attnOracle64(q, k, v []float64, w, q0, nq, k0, nk, col, d int, scale float64, causal bool, valid []bool) [][]float64 {
	out := make([][]float64, nq)
	for i := 0; i < nq; i++ {
		sc := make([]float64, nk)
		ok := make([]bool, nk)
		any := false
		mx := math.Inf(-1)
		for j := 0; j < nk; j++ {
			ok[j] = !(causal && j > i) && (valid == nil || valid[j])
			for e := 0; e < d; e++ {
				sc[j] += q[(q0+i)*w+col+e] * k[(k0+j)*w+col+e]
			}
			sc[j] *= scale
			if ok[j] {
				any, mx = true, math.Max(mx, sc[j])
			}
		}
		pr, sum := make([]float64, nk), 0.0
		for j := range pr {
			if !any {
				pr[j] = 1
			} else if ok[j] {
				pr[j] = math.Exp(sc[j] - mx)
			}
			sum += pr[j]
		}
		out[i] = make([]float64, d)
		for e := range out[i] {
			for j := 0; j < nk; j++ {
				out[i][e] += pr[j] / sum * v[(k0+j)*w+col+e]
			}
		}
	}
	return out
}

func TestCrossEntropy(t *testing.T) {
	r := newRand(t)
	const rows, cols = 5, 40
	logits := randTensor(r, 3, rows, cols)
	targets := []int32{3, IgnoreIndex, 39, 0, 17}
	xs := f64(logits.F32())
	loss := func() float64 {
		s, n := 0.0, 0
		for i, tg := range targets {
			if tg == IgnoreIndex {
				continue
			}
			row := xs[i*cols : (i+1)*cols]
			mx := math.Inf(-1)
			for _, v := range row {
				mx = math.Max(mx, v)
			}
			sum := 0.0
			for _, v := range row {
				sum += math.Exp(v - mx)
			}
			s += mx + math.Log(sum) - row[tg]
			n++
		}
		return s / float64(n)
	}
	want := loss()
	wantGrad := fdGrad(xs, loss)
	forEachCtx(t, func(t *testing.T, c *Ctx) {
		mk := c.Mark()
		defer c.Release(mk)
		got, dl := c.CrossEntropy(on(c, logits), targets)
		if math.Abs(got-want) > 1e-5*want {
			t.Fatalf("loss %v, want %v", got, want)
		}
		nearGrad(t, "dlogits", c.ToHost(dl), wantGrad)
		if l, _ := c.CrossEntropy(on(c, logits), []int32{IgnoreIndex, IgnoreIndex, IgnoreIndex, IgnoreIndex, IgnoreIndex}); l != 0 {
			t.Fatalf("no labelled row: loss %v", l)
		}
	})
}

// TestDropout: the same elements drop on every device for a seed, about p of them, the
// rest scaled by 1/(1-p); another seed drops others.
func TestDropout(t *testing.T) {
	const rows, cols, p = 40, 50, 0.3
	x := NewTensor(rows, cols)
	for i := range x.F32() {
		x.F32()[i] = 1
	}
	var first []float32
	forEachCtx(t, func(t *testing.T, c *Ctx) {
		mk := c.Mark()
		defer c.Release(mk)
		y := on(c, x)
		c.DropoutInPlace(y, p, 42)
		got := c.ToHost(y)
		zeros := 0
		for i, v := range got {
			switch {
			case v == 0:
				zeros++
			case math.Abs(float64(v)-1/(1-p)) > 1e-6:
				t.Fatalf("[%d] = %v, want 0 or %v", i, v, 1/(1-p))
			}
			if (v != 0) != DropoutKeep(42, i, p) {
				t.Fatalf("[%d] disagrees with DropoutKeep", i)
			}
		}
		if frac := float64(zeros) / (rows * cols); math.Abs(frac-p) > 0.05 {
			t.Fatalf("%.3f dropped, want about %v", frac, p)
		}
		if first == nil {
			first = got
		}
		for i := range got {
			if got[i] != first[i] {
				t.Fatalf("[%d]: %v on this device, %v on the first", i, got[i], first[i])
			}
		}
	})
	same := 0
	for i := 0; i < rows*cols; i++ {
		if DropoutKeep(42, i, p) == DropoutKeep(43, i, p) {
			same++
		}
	}
	if same == rows*cols {
		t.Fatal("seeds 42 and 43 drop the same elements")
	}
}
