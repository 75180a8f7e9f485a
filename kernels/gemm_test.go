package kernels

import (
	"math"
	"testing"
)

var allDTypes = []DType{F32, F16, BF16, Q8_0, Q4_0}
var allActs = []Act{ActNone, ActGELU, ActGELUTanh, ActQuickGELU, ActReLU}

// gemmShape is m x k inputs onto n outputs.
type gemmShape struct{ m, k, n int }

// gemmShapes: the odd sizes 1, 7, 17, 33 (tails of every tile and vector width), the real
// activation shapes 257x1408 (EVA ViT-g), 32x768 (Q-Former), 248x768 (Long-CLIP text),
// decode-shaped rows onto OPT's K=2560, widths past several panels, exactly one
// micro-tile of rows (12: the avx512 decode path's limit), and more rows than one packed
// block holds (600 > 264).
var gemmShapes = []gemmShape{
	{1, 1, 1}, {7, 17, 33}, {17, 33, 7}, {33, 7, 17}, {1, 33, 17}, {13, 64, 100},
	{257, 1408, 40}, {32, 768, 33}, {248, 768, 24}, {3, 2560, 37}, {16, 2560, 65}, {40, 96, 129},
	{12, 200, 45}, {6, 64, 20}, {600, 96, 70},
}

// newWeights quantizes random w [n, k] to dt and packs it for s.
func newWeights(t testing.TB, s *Set, dt DType, w []float32, n, k int) *Weights {
	t.Helper()
	raw := make([]byte, n*RowBytes(dt, k))
	if err := Quantize(dt, w, raw); err != nil {
		t.Fatal(err)
	}
	ws := &Weights{DType: dt, N: n, K: k, Raw: raw}
	packFor(t, s, ws)
	return ws
}

// packFor adds the panels variant s wants to ws.
func packFor(t testing.TB, s *Set, ws *Weights) {
	t.Helper()
	nr := s.PanelWidth(ws.DType)
	ws.Packed, ws.PanelNR = nil, 0
	if nr == 0 {
		return
	}
	ws.Packed = alignedBytes(PackedBytes(ws.DType, ws.N, ws.K, nr))
	ws.PanelNR = nr
	if err := runShares(2, func(ith int, _ []float32) error { return Pack(ws.DType, ws.Raw, ws.N, ws.K, nr, ws.Packed, ith, 2) }); err != nil {
		t.Fatal(err)
	}
}

// gemmScale is the error scale of each output: sum_k |x w| + |bias| + |res|. A float32
// dot product's rounding error is bounded by a multiple of it, whatever the cancellation.
func gemmScale(x Mat, wdq []float32, bias []float32, res Mat, m, n, k int) []float32 {
	out := make([]float32, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			s := 0.0
			for kk := 0; kk < k; kk++ {
				s += math.Abs(float64(x.Data[i*x.LD+kk]) * float64(wdq[j*k+kk]))
			}
			if bias != nil {
				s += math.Abs(float64(bias[j]))
			}
			if !res.Empty() {
				s += math.Abs(float64(res.Data[i*res.LD+j]))
			}
			out[i*n+j] = float32(s)
		}
	}
	return out
}

// TestGEMMParity: every variant against the reference kernel. Tolerance: 1e-5 of the
// error scale sum_k |x w| (+|bias| + |res|): f32 accumulation over K <= 2560 terms in
// any order stays within about sqrt(K) * 2^-24 of that scale for random data, and the
// vectorised activations are within a few ulp of the double-precision ones (their
// slopes are at most 1.13, so they do not amplify the GEMM's error). Quantized weights
// are compared with the reference on the same quantized bytes, which the reference
// dequantizes exactly (TestGEMMQuantizedEqualsDequantized).
func TestGEMMParity(t *testing.T) {
	r := newRand(t)
	ref := refSet(t)
	sets := variants(t)
	ci := 0
	for _, sh := range gemmShapes {
		for _, dt := range allDTypes {
			k := sh.k
			if bs := dt.BlockSize(); k%bs != 0 {
				k += bs - k%bs
			}
			m, n := sh.m, sh.n
			act := allActs[ci%len(allActs)]
			withBias, withRes := ci%2 == 0, ci%3 != 0
			xld, yld := k+ci%2*3, n+(ci%3)*5
			ci++
			x := randMat(r, m, k, xld, 1)
			w := randSlice(r, n*k, 1/float32(math.Sqrt(float64(k))))
			var bias []float32
			if withBias {
				bias = randSlice(r, n, 0.5)
			}
			var res input
			if withRes {
				res = randMat(r, m, n, n+2, 1)
			}
			ws := newWeights(t, ref, dt, w, n, k)
			rawOrig := append([]byte(nil), ws.Raw...)
			want := newGuarded(m, n, n)
			if err := runShares(1, func(ith int, sc []float32) error {
				return ref.GEMM(x.m, ws, bias, act, res.m, want.mat(), ith, 1, sc)
			}); err != nil {
				t.Fatal(err)
			}
			wdq := make([]float32, n*k)
			if err := Dequantize(dt, ws.Raw, wdq); err != nil {
				t.Fatal(err)
			}
			scale := gemmScale(x.m, wdq, bias, res.m, m, n, k)
			for _, s := range sets {
				packFor(t, s, ws)
				for _, nth := range threadCounts {
					what := name("isa", s.ISA(), "dt", dt, "m", m, "k", k, "n", n, "act", act, "bias", withBias, "res", withRes, "nth", nth)
					y := newGuarded(m, n, yld)
					err := runShares(nth, func(ith int, sc []float32) error {
						return s.GEMM(x.m, ws, bias, act, res.m, y.mat(), ith, nth, sc)
					})
					if err != nil {
						t.Fatalf("%s: %v", what, err)
					}
					y.checkGuards(t, what)
					compare(t, what, y.dense(), want.dense(), scale, n, 1e-5)
					x.checkUnmodified(t, what+" x")
					if !res.m.Empty() {
						res.checkUnmodified(t, what+" residual")
					}
					for i := range rawOrig {
						if rawOrig[i] != ws.Raw[i] {
							t.Fatalf("%s: weights modified", what)
						}
					}
				}
			}
		}
	}
}

// TestGEMMInPlaceResidual: y may be the residual itself (x = x + f(x) W^T).
func TestGEMMInPlaceResidual(t *testing.T) {
	r := newRand(t)
	ref := refSet(t)
	for _, sh := range []gemmShape{{7, 33, 17}, {33, 64, 40}, {257, 1408, 40}} {
		m, k, n := sh.m, sh.k, sh.n
		x := randMat(r, m, k, k, 1)
		w := randSlice(r, n*k, 1/float32(math.Sqrt(float64(k))))
		bias := randSlice(r, n, 0.5)
		res := randSlice(r, m*n, 1)
		ws := newWeights(t, ref, F32, w, n, k)
		want := newGuarded(m, n, n)
		resMat := Mat{Data: res, Rows: m, Cols: n, LD: n}
		if err := runShares(1, func(ith int, sc []float32) error {
			return ref.GEMM(x.m, ws, bias, ActNone, resMat, want.mat(), 0, 1, sc)
		}); err != nil {
			t.Fatal(err)
		}
		scale := gemmScale(x.m, w, bias, resMat, m, n, k)
		for _, s := range variants(t) {
			packFor(t, s, ws)
			for _, nth := range threadCounts {
				what := name("isa", s.ISA(), "m", m, "k", k, "n", n, "nth", nth)
				y := newGuarded(m, n, n+1)
				y.fill(res)
				if err := runShares(nth, func(ith int, sc []float32) error {
					return s.GEMM(x.m, ws, bias, ActNone, y.mat(), y.mat(), ith, nth, sc)
				}); err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				y.checkGuards(t, what)
				compare(t, what, y.dense(), want.dense(), scale, n, 1e-5)
			}
		}
	}
}

// TestGEMMRejectsBadOperands: the Go wrapper refuses what the kernel cannot do safely.
func TestGEMMRejectsBadOperands(t *testing.T) {
	s := refSet(t)
	sc := alignedFloats(ScratchFloats)
	ws := &Weights{DType: F32, N: 4, K: 8, Raw: make([]byte, 4*8*4)}
	x := Mat{Data: make([]float32, 3*8), Rows: 3, Cols: 8, LD: 8}
	y := Mat{Data: make([]float32, 3*4), Rows: 3, Cols: 4, LD: 4}
	cases := map[string]func() error{
		"short x": func() error {
			return s.GEMM(Mat{Data: x.Data[:20], Rows: 3, Cols: 8, LD: 8}, ws, nil, ActNone, Mat{}, y, 0, 1, sc)
		},
		"short y": func() error {
			return s.GEMM(x, ws, nil, ActNone, Mat{}, Mat{Data: y.Data[:11], Rows: 3, Cols: 4, LD: 4}, 0, 1, sc)
		},
		"k mismatch": func() error {
			return s.GEMM(Mat{Data: x.Data, Rows: 3, Cols: 6, LD: 8}, ws, nil, ActNone, Mat{}, y, 0, 1, sc)
		},
		"short weights": func() error {
			return s.GEMM(x, &Weights{DType: F32, N: 4, K: 8, Raw: ws.Raw[:100]}, nil, ActNone, Mat{}, y, 0, 1, sc)
		},
		"q8 odd k": func() error {
			return s.GEMM(x, &Weights{DType: Q8_0, N: 4, K: 8, Raw: ws.Raw}, nil, ActNone, Mat{}, y, 0, 1, sc)
		},
		"short bias": func() error { return s.GEMM(x, ws, []float32{1, 2}, ActNone, Mat{}, y, 0, 1, sc) },
		"bad act":    func() error { return s.GEMM(x, ws, nil, Act(9), Mat{}, y, 0, 1, sc) },
		"y overlaps x": func() error {
			return s.GEMM(x, ws, nil, ActNone, Mat{}, Mat{Data: x.Data, Rows: 3, Cols: 4, LD: 8}, 0, 1, sc)
		},
		"in place act": func() error { return s.GEMM(x, ws, nil, ActReLU, y, y, 0, 1, sc) },
		"bad worker":   func() error { return s.GEMM(x, ws, nil, ActNone, Mat{}, y, 3, 3, sc) },
		"no scratch":   func() error { return s.GEMM(x, ws, nil, ActNone, Mat{}, y, 0, 1, make([]float32, 16)) },
	}
	for what, f := range cases {
		if err := f(); err == nil {
			t.Errorf("%s: accepted", what)
		}
	}
	if err := s.GEMM(x, ws, nil, ActNone, y, y, 0, 1, sc); err != nil {
		t.Errorf("in-place residual without activation rejected: %v", err)
	}
}

// TestGEMMQuantizedEqualsDequantized: the reference GEMM on quantized weights is the f32
// reference on the dequantized weights, bit for bit (dequantization is exact).
func TestGEMMQuantizedEqualsDequantized(t *testing.T) {
	r := newRand(t)
	s := refSet(t)
	m, k, n := 5, 96, 11
	x := randMat(r, m, k, k, 1)
	w := randSlice(r, n*k, 0.2)
	for _, dt := range allDTypes {
		ws := newWeights(t, s, dt, w, n, k)
		wdq := make([]float32, n*k)
		if err := Dequantize(dt, ws.Raw, wdq); err != nil {
			t.Fatal(err)
		}
		wf := newWeights(t, s, F32, wdq, n, k)
		a, b := newGuarded(m, n, n), newGuarded(m, n, n)
		sc := alignedFloats(ScratchFloats)
		if err := s.GEMM(x.m, ws, nil, ActGELU, Mat{}, a.mat(), 0, 1, sc); err != nil {
			t.Fatal(err)
		}
		if err := s.GEMM(x.m, wf, nil, ActGELU, Mat{}, b.mat(), 0, 1, sc); err != nil {
			t.Fatal(err)
		}
		for i, v := range a.dense() {
			if math.Float32bits(v) != math.Float32bits(b.dense()[i]) {
				t.Fatalf("%s: output %d = %v, dequantized f32 gives %v", dt, i, v, b.dense()[i])
			}
		}
	}
}

// TestGEMMRefOracle checks the reference kernel itself against the formula in Go.
func TestGEMMRefOracle(t *testing.T) {
	r := newRand(t)
	s := refSet(t)
	m, k, n := 4, 19, 6
	for _, act := range allActs {
		x := randMat(r, m, k, k+1, 1)
		w := randSlice(r, n*k, 0.5)
		bias := randSlice(r, n, 0.5)
		res := randMat(r, m, n, n, 1)
		ws := newWeights(t, s, F32, w, n, k)
		y := newGuarded(m, n, n)
		if err := s.GEMM(x.m, ws, bias, act, res.m, y.mat(), 0, 1, alignedFloats(ScratchFloats)); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < m; i++ {
			for j := 0; j < n; j++ {
				acc := 0.0
				for kk := 0; kk < k; kk++ {
					acc += float64(x.m.Data[i*x.m.LD+kk]) * float64(w[j*k+kk])
				}
				v := float64(float32(acc) + bias[j])
				want := float32(goAct(act, v)) + res.m.Data[i*n+j]
				if got := y.at(i, j); math.Abs(float64(got-want)) > 1e-6*math.Max(1, math.Abs(float64(want))) {
					t.Fatalf("act %s [%d,%d] = %v, want %v", act, i, j, got, want)
				}
			}
		}
	}
}

// goAct is the activation formulas of kernels.h in Go.
func goAct(a Act, x float64) float64 {
	switch a {
	case ActGELU:
		return 0.5 * x * (1 + math.Erf(x/math.Sqrt2))
	case ActGELUTanh:
		return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
	case ActQuickGELU:
		return x / (1 + math.Exp(-1.702*x))
	case ActReLU:
		return math.Max(x, 0)
	}
	return x
}
