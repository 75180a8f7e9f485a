package kernels

import (
	"math"
	"testing"
)

// rowShapes: the odd sizes 1, 7, 17, 33, the real activation shapes, and a vocabulary-
// sized row (OPT's 50272 logits) for softmax and argmax.
var rowShapes = [][2]int{{1, 1}, {7, 17}, {17, 33}, {33, 7}, {3, 1}, {5, 100}, {257, 1408}, {32, 768}, {248, 768}, {2, 50272}}

// rowOp runs one row op of x into y for a variant.
type rowOp func(s *Set, x, y Mat, ith, nth int) error

// checkRowOp runs op for every variant, thread count and layout (strided out of place,
// and in place) against the reference's output; norm gives each element's error scale.
func checkRowOp(t *testing.T, what string, x input, op rowOp, norm func(want []float32) []float32, tol float64) {
	t.Helper()
	rows, cols := x.m.Rows, x.m.Cols
	want := newGuarded(rows, cols, cols)
	if err := op(refSet(t), x.m, want.mat(), 0, 1); err != nil {
		t.Fatalf("%s ref: %v", what, err)
	}
	want.checkGuards(t, what+" ref")
	wd := want.dense()
	scale := norm(wd)
	xd := make([]float32, rows*cols)
	for r := 0; r < rows; r++ {
		copy(xd[r*cols:(r+1)*cols], x.m.Data[r*x.m.LD:])
	}
	for _, s := range variants(t) {
		for _, nth := range threadCounts {
			for _, inPlace := range []bool{false, true} {
				w := what + "/" + name("isa", s.ISA(), "nth", nth, "inplace", inPlace)
				y := newGuarded(rows, cols, cols+3)
				src := x.m
				if inPlace {
					y.fill(xd)
					src = y.mat()
				}
				if err := runShares(nth, func(ith int, _ []float32) error { return op(s, src, y.mat(), ith, nth) }); err != nil {
					t.Fatalf("%s: %v", w, err)
				}
				y.checkGuards(t, w)
				compare(t, w, y.dense(), wd, scale, cols, tol)
				x.checkUnmodified(t, w)
			}
		}
	}
}

func constNorm(v float32) func([]float32) []float32 {
	return func(want []float32) []float32 {
		out := make([]float32, len(want))
		for i := range out {
			out[i] = v
		}
		return out
	}
}

func absNorm(floor float32) func([]float32) []float32 {
	return func(want []float32) []float32 {
		out := make([]float32, len(want))
		for i, v := range want {
			out[i] = float32(math.Abs(float64(v))) + floor
		}
		return out
	}
}

// TestLayerNormParity. Tolerance 1e-5 of (|output| + |beta| + 1): the variants' f32 mean
// and variance over <= 50272 values have relative error below 1e-6, which moves an output
// by that fraction of its normalised magnitude.
func TestLayerNormParity(t *testing.T) {
	r := newRand(t)
	for i, sh := range rowShapes {
		x := randMat(r, sh[0], sh[1], sh[1]+i%3, 2)
		for j := range x.m.Data { // an offset, so the mean matters
			x.m.Data[j] += 3
		}
		x.orig = append([]float32(nil), x.m.Data...)
		var gamma, beta []float32
		if i%2 == 0 {
			gamma, beta = randSlice(r, sh[1], 1), randSlice(r, sh[1], 1)
		}
		eps := float32(1e-5)
		if i%3 == 0 {
			eps = 1e-12
		}
		norm := func(want []float32) []float32 {
			out := make([]float32, len(want))
			for k, v := range want {
				b := float32(0)
				if beta != nil {
					b = beta[k%sh[1]]
				}
				out[k] = float32(math.Abs(float64(v))+math.Abs(float64(b))) + 1
			}
			return out
		}
		checkRowOp(t, name("op", "layernorm", "rows", sh[0], "cols", sh[1], "eps", eps), x, func(s *Set, x, y Mat, ith, nth int) error {
			return s.LayerNorm(x, gamma, beta, eps, y, ith, nth)
		}, norm, 1e-5)
	}
}

// TestSoftmaxParity. Tolerance: 1e-6 of |y| (1 + |s x_j| + max_k |s x_k|) for softmax and
// 1e-6 of (1 + |s x_j| + max_k |s x_k|) for log-softmax. The shifted score t = s x_j - max
// is formed with two f32 roundings, each within 2^-24 of its operands, and e^t moves by
// that error relatively (log-softmax: absolutely); exp is within a few ulp and the sum's
// relative error is far below 1e-6.
func TestSoftmaxParity(t *testing.T) {
	r := newRand(t)
	for i, sh := range rowShapes {
		x := randMat(r, sh[0], sh[1], sh[1]+i%2, 3)
		scale := float32(0.5 + r.Float64()*1.5)
		for _, lg := range []bool{false, true} {
			norm := func(want []float32) []float32 {
				out := make([]float32, len(want))
				for rr := 0; rr < sh[0]; rr++ {
					row := x.m.Data[rr*x.m.LD : rr*x.m.LD+sh[1]]
					mx := 0.0
					for _, v := range row {
						mx = math.Max(mx, math.Abs(float64(scale*v)))
					}
					for c, v := range row {
						e := 1 + math.Abs(float64(scale*v)) + mx
						if !lg {
							e *= math.Abs(float64(want[rr*sh[1]+c]))
						}
						out[rr*sh[1]+c] = float32(e) + 1e-37
					}
				}
				return out
			}
			checkRowOp(t, name("op", "softmax", "rows", sh[0], "cols", sh[1], "log", lg), x, func(s *Set, x, y Mat, ith, nth int) error {
				return s.Softmax(x, scale, lg, y, ith, nth)
			}, norm, 1e-6)
		}
	}
}

// TestSoftmaxMasked: -inf entries get 0; a row of only -inf becomes uniform.
func TestSoftmaxMasked(t *testing.T) {
	inf := float32(math.Inf(-1))
	x := []float32{1, inf, 1, inf, inf, inf, inf, inf}
	for _, s := range variants(t) {
		y := make([]float32, 8)
		if err := s.Softmax(Mat{Data: x, Rows: 2, Cols: 4, LD: 4}, 1, false, Mat{Data: y, Rows: 2, Cols: 4, LD: 4}, 0, 1); err != nil {
			t.Fatal(err)
		}
		want := []float32{0.5, 0, 0.5, 0, 0.25, 0.25, 0.25, 0.25}
		for i := range want {
			if math.Abs(float64(y[i]-want[i])) > 1e-7 {
				t.Fatalf("%s: masked softmax = %v, want %v", s.ISA(), y, want)
			}
		}
	}
}

// TestActivationParity. Tolerance 1e-6 of |x| + 1e-30: every activation is x times a
// factor in [0, 1.13], which the variants compute to a few f32 ulp (absolute).
func TestActivationParity(t *testing.T) {
	r := newRand(t)
	for i, sh := range rowShapes[:9] {
		x := randMat(r, sh[0], sh[1], sh[1]+i%2, 4)
		for _, act := range allActs {
			xd := x.m
			norm := func(want []float32) []float32 {
				out := make([]float32, len(want))
				for k := range out {
					out[k] = float32(math.Abs(float64(xd.Data[k/sh[1]*xd.LD+k%sh[1]]))) + 1e-30
				}
				return out
			}
			checkRowOp(t, name("op", "act", "rows", sh[0], "cols", sh[1], "act", act), x, func(s *Set, x, y Mat, ith, nth int) error {
				return s.Activation(x, act, y, ith, nth)
			}, norm, 1e-6)
		}
	}
}

// TestActivationRefOracle checks the reference formulas, including extreme inputs.
func TestActivationRefOracle(t *testing.T) {
	xs := []float32{-100, -20, -5.5, -1, -1e-3, 0, 1e-3, 0.5, 1, 3, 20, 100}
	for _, act := range allActs {
		y := make([]float32, len(xs))
		if err := refSet(t).Activation(Mat{Data: xs, Rows: 1, Cols: len(xs), LD: len(xs)}, act, Mat{Data: y, Rows: 1, Cols: len(xs), LD: len(xs)}, 0, 1); err != nil {
			t.Fatal(err)
		}
		for i, x := range xs {
			want := float32(goAct(act, float64(x)))
			if math.Abs(float64(y[i]-want)) > 1e-7*math.Max(1, math.Abs(float64(want))) {
				t.Errorf("%s(%v) = %v, want %v", act, x, y[i], want)
			}
		}
	}
}

// TestAxpbyParity: y = alpha a + beta b with broadcast rows. Tolerance 1e-6 of |alpha a| +
// |beta b|: one product and one sum, each rounded once (an FMA rounds once less).
func TestAxpbyParity(t *testing.T) {
	r := newRand(t)
	for i, sh := range rowShapes[:9] {
		a := randMat(r, sh[0], sh[1], sh[1]+i%2, 1)
		brows := sh[0]
		if i%3 == 1 { // one row broadcast to all
			brows = 1
		}
		b := randMat(r, brows, sh[1], sh[1]+1, 1)
		for _, ab := range [][2]float32{{1, 1}, {0.5, -2}, {3, 0}} {
			alpha, beta := ab[0], ab[1]
			bm := b.m
			if beta == 0 {
				bm = Mat{}
			}
			norm := func([]float32) []float32 {
				out := make([]float32, sh[0]*sh[1])
				for k := range out {
					rr, c := k/sh[1], k%sh[1]
					v := math.Abs(float64(alpha * a.m.Data[rr*a.m.LD+c]))
					if !bm.Empty() {
						v += math.Abs(float64(beta * bm.Data[(rr%brows)*bm.LD+c]))
					}
					out[k] = float32(v) + 1e-30
				}
				return out
			}
			checkRowOp(t, name("op", "axpby", "rows", sh[0], "cols", sh[1], "brows", brows, "alpha", alpha, "beta", beta), a, func(s *Set, x, y Mat, ith, nth int) error {
				return s.Axpby(x, alpha, bm, beta, y, ith, nth)
			}, norm, 1e-6)
			b.checkUnmodified(t, "axpby b")
		}
	}
}

// TestL2NormalizeParity. Tolerance 1e-6 absolute on unit-norm rows: the f32 sum of squares
// of <= 50272 values has relative error below 1e-6.
func TestL2NormalizeParity(t *testing.T) {
	r := newRand(t)
	for i, sh := range rowShapes {
		x := randMat(r, sh[0], sh[1], sh[1]+i%2, 2)
		checkRowOp(t, name("op", "l2norm", "rows", sh[0], "cols", sh[1]), x, func(s *Set, x, y Mat, ith, nth int) error {
			return s.L2Normalize(x, y, ith, nth)
		}, constNorm(1), 1e-6)
	}
}

// TestArgmaxParity: exact, including ties (first wins) and NaN (first NaN wins).
func TestArgmaxParity(t *testing.T) {
	r := newRand(t)
	for i, sh := range rowShapes {
		x := randMat(r, sh[0], sh[1], sh[1]+i%2, 1)
		if sh[1] > 3 { // a tie in row 0, a NaN in the last row
			c := r.IntN(sh[1]-1) + 1
			x.m.Data[c] = 100
			x.m.Data[sh[1]-1] = 100
			last := (sh[0] - 1) * x.m.LD
			x.m.Data[last+sh[1]/2] = float32(math.NaN())
			x.m.Data[last+sh[1]-1] = float32(math.NaN())
			x.orig = append([]float32(nil), x.m.Data...)
		}
		want := make([]int64, sh[0])
		for rr := 0; rr < sh[0]; rr++ {
			best := 0
			row := x.m.Data[rr*x.m.LD : rr*x.m.LD+sh[1]]
			for c, v := range row {
				if math.IsNaN(float64(v)) {
					best = c
					break
				}
				if v > row[best] {
					best = c
				}
			}
			want[rr] = int64(best)
		}
		for _, s := range variants(t) {
			for _, nth := range threadCounts {
				got := make([]int64, sh[0]+1)
				got[sh[0]] = -7
				if err := runShares(nth, func(ith int, _ []float32) error { return s.Argmax(x.m, got[:sh[0]], ith, nth) }); err != nil {
					t.Fatal(err)
				}
				for rr := range want {
					if got[rr] != want[rr] {
						t.Fatalf("%s: row %d argmax %d, want %d", name("isa", s.ISA(), "rows", sh[0], "cols", sh[1], "nth", nth), rr, got[rr], want[rr])
					}
				}
				if got[sh[0]] != -7 {
					t.Fatal("argmax wrote past its output")
				}
				x.checkUnmodified(t, "argmax")
			}
		}
	}
}

// TestIm2colParity: exact copies, checked against the formula of kernels.h.
func TestIm2colParity(t *testing.T) {
	r := newRand(t)
	for _, c := range [][5]int{{1, 3, 14, 14, 14}, {2, 3, 28, 30, 14}, {1, 1, 7, 7, 1}, {3, 2, 17, 9, 4}, {1, 3, 224, 224, 14}} {
		b, ch, h, w, p := c[0], c[1], c[2], c[3], c[4]
		img := randSlice(r, b*ch*h*w, 1)
		orig := append([]float32(nil), img...)
		gh, gw := h/p, w/p
		rows, cols := b*gh*gw, ch*p*p
		for _, s := range variants(t) {
			for _, nth := range threadCounts {
				out := newGuarded(rows, cols, cols)
				m := out.mat()
				if err := runShares(nth, func(ith int, _ []float32) error { return s.Im2col(img, b, ch, h, w, p, m.Data, ith, nth) }); err != nil {
					t.Fatal(err)
				}
				out.checkGuards(t, "im2col")
				for row := 0; row < rows; row++ {
					bi, gy, gx := row/(gh*gw), row/gw%gh, row%gw
					for col := 0; col < cols; col++ {
						ci, ky, kx := col/(p*p), col/p%p, col%p
						if want := img[((bi*ch+ci)*h+gy*p+ky)*w+gx*p+kx]; out.at(row, col) != want {
							t.Fatalf("%s [%d,%d] = %v, want %v", name("isa", s.ISA(), "nth", nth), row, col, out.at(row, col), want)
						}
					}
				}
				for i := range orig {
					if orig[i] != img[i] {
						t.Fatal("im2col modified its input")
					}
				}
			}
		}
	}
}
