package native

import (
	"math"
	"slices"
	"sort"
	"testing"
)

// Tolerances here are against float64 oracles: 1e-5 relative with a floor of 1 covers
// f32 GEMM rounding at these small K (<= 64) and every other op's few roundings.

func TestLinear(t *testing.T) {
	r := newRand(t)
	const m, k, n = 9, 64, 33
	w := randFloats(r, n*k, 0.3)
	bias := randFloats(r, n, 0.5)
	mats := map[DType]*Matrix{}
	for _, dt := range []DType{F32, F16, BF16, Q8_0, Q4_0} {
		mat, err := QuantizeMatrix(w, n, k, dt)
		if err != nil {
			t.Fatal(err)
		}
		mats[dt] = mat
	}
	x3 := randTensor(r, 1, 3, 3, k) // [B, T, K] keeps its leading dims
	res := randTensor(r, 1, 3, 3, n)
	forEachCtx(t, func(t *testing.T, c *Ctx) {
		for dt, mat := range mats {
			wd := mat.Dequantize()
			for _, act := range []Epilogue{None, GELU, QuickGELU, ReLU} {
				y := c.Linear(x3, mat, bias, act, res)
				if !slices.Equal(y.Shape(), []int{3, 3, n}) {
					t.Fatalf("shape %v", y.Shape())
				}
				near(t, dt.String()+"/"+act.String(), y.F32(), linearRef(c, mat, x3.F32(), wd, bias, act, res.F32(), m, n, k), 1e-5, 1)
			}
			// x as a column view of a wider matrix, no bias, no residual
			wide := randTensor(r, 1, m, k+7)
			xv := wide.Cols(3, k)
			y := c.Linear(xv, mat, nil, None, Tensor{})
			near(t, dt.String()+" view", y.F32(), linearRef(c, mat, dense(xv), wd, nil, None, nil, m, n, k), 1e-5, 1)
			// in-place residual, with and without an activation (the latter goes through
			// a temporary)
			for _, act := range []Epilogue{None, ReLU} {
				acc := res.Clone().Reshape(m, n)
				want := linearRef(c, mat, x3.F32(), wd, bias, act, acc.F32(), m, n, k)
				c.LinearInto(acc, x3.Reshape(m, k), mat, bias, act, acc)
				near(t, dt.String()+" in place "+act.String(), acc.F32(), want, 1e-5, 1)
			}
			c.Reset()
		}
	})
}

func TestRowOps(t *testing.T) {
	r := newRand(t)
	const rows, cols = 6, 37
	x := randTensor(r, 2, rows, cols)
	gamma, beta := randFloats(r, cols, 1), randFloats(r, cols, 1)
	pos := randTensor(r, 1, 2, cols) // broadcast over rows 0,2,4 and 1,3,5
	forEachCtx(t, func(t *testing.T, c *Ctx) {
		ln := c.LayerNorm(x, gamma, beta, 1e-5)
		sm := c.Softmax(x, 0.7)
		ls := c.LogSoftmax(x)
		add := c.Add(x, pos)
		sc := c.Scale(x, -1.5)
		l2 := c.L2Normalize(x)
		act := c.Activation(x, GELUTanh)
		for i := 0; i < rows; i++ {
			row := x.Row(i)
			mean, vr := 0.0, 0.0
			for _, v := range row {
				mean += float64(v)
			}
			mean /= cols
			for _, v := range row {
				vr += (float64(v) - mean) * (float64(v) - mean)
			}
			vr /= cols
			mx, mx7 := math.Inf(-1), math.Inf(-1)
			for _, v := range row {
				mx = math.Max(mx, float64(v))
				mx7 = math.Max(mx7, 0.7*float64(v))
			}
			sum, sum7, ss := 0.0, 0.0, 0.0
			for _, v := range row {
				sum += math.Exp(float64(v) - mx)
				sum7 += math.Exp(0.7*float64(v) - mx7)
				ss += float64(v) * float64(v)
			}
			for j, v := range row {
				xv := float64(v)
				checks := []struct {
					what      string
					got, want float64
				}{
					{"layernorm", float64(ln.Row(i)[j]), (xv-mean)/math.Sqrt(vr+1e-5)*float64(gamma[j]) + float64(beta[j])},
					{"softmax", float64(sm.Row(i)[j]), math.Exp(0.7*xv-mx7) / sum7},
					{"logsoftmax", float64(ls.Row(i)[j]), xv - mx - math.Log(sum)},
					{"add", float64(add.Row(i)[j]), xv + float64(pos.Row(i % 2)[j])},
					{"scale", float64(sc.Row(i)[j]), -1.5 * xv},
					{"l2", float64(l2.Row(i)[j]), xv / math.Sqrt(ss)},
					{"gelu_tanh", float64(act.Row(i)[j]), 0.5 * xv * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(xv+0.044715*xv*xv*xv)))},
				}
				for _, ch := range checks {
					if math.Abs(ch.got-ch.want) > 1e-5*(math.Abs(ch.want)+1) {
						t.Fatalf("%s [%d,%d] = %v, want %v", ch.what, i, j, ch.got, ch.want)
					}
				}
			}
		}
		// in place
		y := x.Clone()
		c.AddScaledInPlace(y, pos, 2)
		c.AddInPlace(y, x)
		c.ActivationInPlace(y, ReLU)
		c.LayerNormInto(y, y, nil, nil, 1e-6)
		for i := 0; i < rows; i++ {
			v := make([]float64, cols)
			mean := 0.0
			for j := range v {
				v[j] = math.Max(2*float64(x.Row(i)[j])+2*float64(pos.Row(i % 2)[j]), 0)
				mean += v[j]
			}
			mean /= cols
			vr := 0.0
			for j := range v {
				vr += (v[j] - mean) * (v[j] - mean)
			}
			vr /= cols
			for j := range v {
				if want := (v[j] - mean) / math.Sqrt(vr+1e-6); math.Abs(float64(y.Row(i)[j])-want) > 1e-5*(math.Abs(want)+1) {
					t.Fatalf("in-place chain [%d,%d] = %v, want %v", i, j, y.Row(i)[j], want)
				}
			}
		}
		c.Reset()
	})
}

func TestArgmaxTopK(t *testing.T) {
	r := newRand(t)
	x := randTensor(r, 1, 4, 1000)
	x.Row(2)[17] = 50
	x.Row(2)[400] = 50
	forEachCtx(t, func(t *testing.T, c *Ctx) {
		am := c.Argmax(x)
		for i := 0; i < 4; i++ {
			best := 0
			for j, v := range x.Row(i) {
				if v > x.Row(i)[best] {
					best = j
				}
			}
			if am[i] != best {
				t.Fatalf("row %d: argmax %d, want %d", i, am[i], best)
			}
		}
		if am[2] != 17 {
			t.Fatalf("tie: argmax %d, want the first (17)", am[2])
		}
	})
	c := NewCtx(1)
	defer c.Close()
	row := x.Row(1)
	row[5] = float32(math.NaN())
	for _, k := range []int{1, 5, 37, 2000} {
		idx, vals := c.TopK(row, k)
		order := make([]int, 0, len(row))
		for i, v := range row {
			if v == v {
				order = append(order, i)
			}
		}
		sort.SliceStable(order, func(a, b int) bool { return row[order[a]] > row[order[b]] })
		want := order[:min(k, len(order))]
		if !slices.Equal(idx, want) {
			t.Fatalf("TopK(%d) = %v, want %v", k, idx[:min(len(idx), 8)], want[:min(len(want), 8)])
		}
		for i, j := range idx {
			if vals[i] != row[j] {
				t.Fatalf("TopK(%d) value %d = %v, want %v", k, i, vals[i], row[j])
			}
		}
	}
	row2 := []float32{1, 3, 3, 2}
	if idx, _ := c.TopK(row2, 2); !slices.Equal(idx, []int{1, 2}) {
		t.Fatalf("TopK ties = %v, want [1 2]", idx)
	}
}

// TestPatchEmbed checks im2col + GEMM against a direct convolution.
func TestPatchEmbed(t *testing.T) {
	r := newRand(t)
	const b, ch, h, wd, p, width = 2, 3, 28, 42, 14, 10
	img := randTensor(r, 1, b, ch, h, wd)
	w := randFloats(r, width*ch*p*p, 0.05)
	bias := randFloats(r, width, 1)
	mat, err := NewMatrixF32(w, width, ch*p*p)
	if err != nil {
		t.Fatal(err)
	}
	forEachCtx(t, func(t *testing.T, c *Ctx) {
		out := c.PatchEmbed(img, mat, bias, p)
		gh, gw := h/p, wd/p
		if !slices.Equal(out.Shape(), []int{b * gh * gw, width}) {
			t.Fatalf("shape %v", out.Shape())
		}
		for bi := 0; bi < b; bi++ {
			for gy := 0; gy < gh; gy++ {
				for gx := 0; gx < gw; gx++ {
					for o := 0; o < width; o++ {
						s := float64(bias[o])
						for ci := 0; ci < ch; ci++ {
							for ky := 0; ky < p; ky++ {
								for kx := 0; kx < p; kx++ {
									s += float64(w[((o*ch+ci)*p+ky)*p+kx]) * float64(img.F32()[((bi*ch+ci)*h+gy*p+ky)*wd+gx*p+kx])
								}
							}
						}
						if got := out.Row((bi*gh+gy)*gw + gx)[o]; math.Abs(float64(got)-s) > 1e-5*(math.Abs(s)+1) {
							t.Fatalf("patch (%d,%d,%d) out %d = %v, want %v", bi, gy, gx, o, got, s)
						}
					}
				}
			}
		}
		c.Reset()
	})
}

// TestGather: rows read from the Matrix's panels by every variant are the rows of its
// exact dequantization, for every dtype, repeated ids included, at odd sizes.
func TestGather(t *testing.T) {
	r := newRand(t)
	const rows, k = 45, 96
	table := randFloats(r, rows*k, 1)
	ids := []int32{3, 0, 44, 3, 31, 32, 17}
	for _, dt := range []DType{F32, F16, BF16, Q8_0, Q4_0} {
		m, err := QuantizeMatrix(table, rows, k, dt)
		if err != nil {
			t.Fatal(err)
		}
		deq := m.Dequantize()
		forEachCtx(t, func(t *testing.T, c *Ctx) {
			got := c.Gather(m, ids)
			for i, id := range ids {
				if !slices.Equal(got.Row(i), deq[int(id)*k:int(id+1)*k]) {
					t.Fatalf("%s: row %d (id %d) differs", dt, i, id)
				}
			}
			if e := c.Gather(m, nil); e.Numel() != 0 {
				t.Fatalf("%s: no ids gave %v", dt, e.Shape())
			}
			c.Reset()
		})
	}
	c := NewCtx(2)
	defer c.Close()
	tt := FromF32(table, rows, k)
	got := c.GatherRows(tt, ids)
	if !slices.Equal(got.Row(2), tt.Row(44)) {
		t.Fatal("GatherRows row 2 differs")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("Gather of id 45 in a table of 45 rows did not panic")
		}
	}()
	c.GatherRows(tt, []int32{45})
}
