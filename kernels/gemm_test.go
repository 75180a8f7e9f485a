package kernels

import (
	"fmt"
	"math"
	"testing"
)

var allDTypes = []DType{F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K}
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
	// wide enough that the shared-work split hands out several groups of panels, to
	// decoding rows and (for most types) to the integer path's tall chunk of rows
	{8, 256, 300}, {300, 64, 200},
}

// newWeights quantizes random w [n, k] to dt and packs it for s.
func newWeights(t testing.TB, s *Set, dt DType, w []float32, n, k int) *Weights {
	t.Helper()
	ws := &Weights{DType: dt, N: n, K: k, Raw: quantize(t, dt, w, k)}
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

// TestGEMMParity: every variant against the reference kernel (for the quantized types,
// where the variant quantizes x: against QGEMMRef, whose own distance from the exact
// reference TestQGEMMBound checks). Tolerance: 1e-5 of the
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
			var wantQ *guarded // the quantized-activation reference, where a variant computes it
			if dt.Quantized() {
				wantQ = newGuarded(m, n, n)
				if err := runShares(1, func(ith int, _ []float32) error {
					return QGEMMRef(x.m, ws, bias, act, res.m, wantQ.mat(), ith, 1)
				}); err != nil {
					t.Fatal(err)
				}
			}
			wdq := make([]float32, n*k)
			if err := Dequantize(dt, ws.Raw, wdq); err != nil {
				t.Fatal(err)
			}
			scale := gemmScale(x.m, wdq, bias, res.m, m, n, k)
			for _, s := range sets {
				packFor(t, s, ws)
				ref := want
				if s.QuantizesX(dt, m) {
					ref = wantQ
				}
				for _, nth := range threadCounts {
					what := name("isa", setName(s), "dt", dt, "m", m, "k", k, "n", n, "act", act, "bias", withBias, "res", withRes, "nth", nth)
					y := newGuarded(m, n, yld)
					err := runShares(nth, func(ith int, sc []float32) error {
						return s.GEMM(x.m, ws, bias, act, res.m, y.mat(), ith, nth, sc)
					})
					if err != nil {
						t.Fatalf("%s: %v", what, err)
					}
					y.checkGuards(t, what)
					compare(t, what, y.dense(), ref.dense(), scale, n, 1e-5)
					sharedSame(t, what, s, x.m, ws, bias, act, res.m, y, nth, nil)
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

// xQuantError is, per output of x W^T, the bound kernels.h states for quantizing x:
// sum over 32-value blocks b of d_b/2 * sum_{k in b} |w_jk|, d_b = amax_b/127.
func xQuantError(x Mat, wdq []float32, m, n, k int) []float32 {
	out := make([]float32, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			e := 0.0
			for b := 0; b < k/32; b++ {
				amax, sw := 0.0, 0.0
				for l := b * 32; l < b*32+32; l++ {
					amax = math.Max(amax, math.Abs(float64(x.Data[i*x.LD+l])))
					sw += math.Abs(float64(wdq[j*k+l]))
				}
				e += amax / 127 / 2 * sw
			}
			out[i*n+j] = float32(e)
		}
	}
	return out
}

// TestQGEMMBound: the quantized-activation reference differs from the exact one by at
// most the bound kernels.h states (x's rounding to 8 bits: half a step per value times
// |w|), plus 1e-6 of the f32 error scale for the final rounding of each. Without an
// activation, so that the bound applies to the outputs directly. The bound holds for
// every input; the test also checks that it is not vacuous: the error reaches at least
// a hundredth of it somewhere (otherwise x was not quantized).
func TestQGEMMBound(t *testing.T) {
	r := newRand(t)
	for _, dt := range allDTypes {
		if !dt.Quantized() {
			continue
		}
		m, n, k := 7, 13, 2*dt.BlockSize()
		x := randMat(r, m, k, k+3, 1)
		ws := newWeights(t, refSet(t), dt, randSlice(r, n*k, 0.1), n, k)
		wdq := make([]float32, n*k)
		if err := Dequantize(dt, ws.Raw, wdq); err != nil {
			t.Fatal(err)
		}
		exact, q := newGuarded(m, n, n), newGuarded(m, n, n)
		sc := alignedFloats(ScratchFloats)
		if err := refSet(t).GEMM(x.m, ws, nil, ActNone, Mat{}, exact.mat(), 0, 1, sc); err != nil {
			t.Fatal(err)
		}
		for _, nth := range threadCounts {
			if err := runShares(nth, func(ith int, _ []float32) error { return QGEMMRef(x.m, ws, nil, ActNone, Mat{}, q.mat(), ith, nth) }); err != nil {
				t.Fatal(err)
			}
			q.checkGuards(t, dt.String())
			x.checkUnmodified(t, dt.String())
		}
		bound, scale := xQuantError(x.m, wdq, m, n, k), gemmScale(x.m, wdq, nil, Mat{}, m, n, k)
		worst := 0.0
		for i, e := range exact.dense() {
			d := math.Abs(float64(q.dense()[i] - e))
			if d > float64(bound[i])+1e-6*float64(scale[i]) {
				t.Fatalf("%s: output %d: |%v - %v| = %g exceeds the bound %g", dt, i, q.dense()[i], e, d, bound[i])
			}
			worst = math.Max(worst, d/float64(bound[i]))
		}
		t.Logf("%s: largest error %.3f of the bound", dt, worst)
		if worst < 0.01 {
			t.Errorf("%s: the quantized reference is within %.3g of the bound: x does not look quantized", dt, worst)
		}
	}
}

// TestQGEMMRefOracle checks the quantized-activation reference against its formula in
// Go: x~ = d * rint(x/d) per 32 values (d = amax/127 in f32, ties to even), the sum in
// double over the dequantized weights; NaN and inf in a block make its outputs NaN.
func TestQGEMMRefOracle(t *testing.T) {
	r := newRand(t)
	m, n, k := 3, 5, 256
	x := randMat(r, m, k, k, 1)
	x.m.Data[1*k+40] = float32(math.Inf(1)) // row 1: block 1 not finite
	for l := 64; l < 96; l++ {
		x.m.Data[2*k+l] = 1e-31 // row 2: block 2 below 2^-100, flushed to zero
	}
	for _, dt := range []DType{Q8_0, Q4_K} {
		ws := newWeights(t, refSet(t), dt, randSlice(r, n*k, 0.1), n, k)
		wdq := make([]float32, n*k)
		if err := Dequantize(dt, ws.Raw, wdq); err != nil {
			t.Fatal(err)
		}
		y := newGuarded(m, n, n)
		if err := QGEMMRef(x.m, ws, nil, ActNone, Mat{}, y.mat(), 0, 1); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < m; i++ {
			for j := 0; j < n; j++ {
				acc := 0.0
				for b := 0; b < k/32; b++ {
					xb := x.m.Data[i*k+b*32 : i*k+b*32+32]
					amax := float32(0)
					for _, v := range xb {
						amax = float32(math.Max(float64(amax), math.Abs(float64(v))))
					}
					if math.IsInf(float64(amax), 0) {
						acc = math.NaN()
						continue
					}
					if amax < 0x1p-100 {
						continue
					}
					d := amax / 127
					id := 1 / d
					for l, v := range xb {
						acc += float64(d) * math.RoundToEven(float64(v*id)) * float64(wdq[j*k+b*32+l])
					}
				}
				got, want := y.at(i, j), float32(acc)
				if math.IsNaN(acc) != math.IsNaN(float64(got)) || (!math.IsNaN(acc) && math.Abs(float64(got-want)) > 1e-6*math.Max(1, math.Abs(float64(want)))) {
					t.Fatalf("%s [%d,%d] = %v, want %v", dt, i, j, got, want)
				}
			}
		}
	}
}

// TestGEMMInPlaceResidual: y may be the residual itself (x = x + f(x) W^T).
func TestGEMMInPlaceResidual(t *testing.T) {
	r := newRand(t)
	ref := refSet(t)
	for _, sh := range []gemmShape{{7, 33, 17}, {33, 64, 40}, {257, 1408, 40}, {300, 64, 200}} {
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
				what := name("isa", setName(s), "m", m, "k", k, "n", n, "nth", nth)
				y := newGuarded(m, n, n+1)
				y.fill(res)
				if err := runShares(nth, func(ith int, sc []float32) error {
					return s.GEMM(x.m, ws, bias, ActNone, y.mat(), y.mat(), ith, nth, sc)
				}); err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				y.checkGuards(t, what)
				compare(t, what, y.dense(), want.dense(), scale, n, 1e-5)
				// shared work in place: a unit done twice would add the product twice
				sharedSame(t, what, s, x.m, ws, bias, ActNone, Mat{}, y, nth, res)
			}
		}
	}
}

// TestGEMMSharedRowChunks: with more rows than the integer path quantizes at once (k =
// 4096: about 180), the shared-work units span two chunks of rows. Q8_0 and Q4_K only:
// the units do not depend on the type, and the reference is slow at this size.
func TestGEMMSharedRowChunks(t *testing.T) {
	r := newRand(t)
	ref := refSet(t)
	m, k, n := 185, 4096, 100
	x := randMat(r, m, k, k, 1)
	w := randSlice(r, n*k, 1/float32(math.Sqrt(float64(k))))
	bias := randSlice(r, n, 0.5)
	for _, dt := range []DType{Q8_0, Q4_K} {
		ws := newWeights(t, ref, dt, w, n, k)
		want := newGuarded(m, n, n)
		if err := runShares(1, func(ith int, _ []float32) error {
			return QGEMMRef(x.m, ws, bias, ActGELU, Mat{}, want.mat(), ith, 1)
		}); err != nil {
			t.Fatal(err)
		}
		wdq := make([]float32, n*k)
		if err := Dequantize(dt, ws.Raw, wdq); err != nil {
			t.Fatal(err)
		}
		scale := gemmScale(x.m, wdq, bias, Mat{}, m, n, k)
		for _, s := range variants(t) {
			if !s.QuantizesX(dt, m) {
				continue
			}
			packFor(t, s, ws)
			for _, nth := range []int{1, 3} {
				what := name("isa", setName(s), "dt", dt, "m", m, "k", k, "n", n, "nth", nth)
				y := newGuarded(m, n, n)
				if err := runShares(nth, func(ith int, sc []float32) error {
					return s.GEMM(x.m, ws, bias, ActGELU, Mat{}, y.mat(), ith, nth, sc)
				}); err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				compare(t, what, y.dense(), want.dense(), scale, n, 1e-5)
				sharedSame(t, what, s, x.m, ws, bias, ActGELU, Mat{}, y, nth, nil)
			}
		}
	}
}

// sharedSame runs the GEMM again with its work handed out from a shared counter, twice
// (the second after a Reset), and requires the bits of the fixed shares' result y: each
// output is computed the same way whoever computes it. With inPlace, the output starts
// as those values and is the residual (res is ignored).
func sharedSame(t *testing.T, what string, s *Set, x Mat, ws *Weights, bias []float32, act Act, res Mat, y *guarded, nth int, inPlace []float32) {
	t.Helper()
	work := new(Work)
	for run := 0; run < 2; run++ {
		work.Reset()
		ys := newGuarded(y.rows, y.cols, y.ld)
		r := res
		if inPlace != nil {
			ys.fill(inPlace)
			r = ys.mat()
		}
		if err := runShares(nth, func(ith int, sc []float32) error {
			return s.GEMMShared(x, ws, bias, act, r, ys.mat(), ith, nth, sc, work)
		}); err != nil {
			t.Fatalf("%s shared: %v", what, err)
		}
		ys.checkGuards(t, what+" shared")
		sameBits(t, what+" shared", ys.dense(), y.dense())
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
	m, k, n := 5, 512, 11
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
		sameBits(t, fmt.Sprintf("%s against the dequantized f32 weights", dt), a.dense(), b.dense())
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
