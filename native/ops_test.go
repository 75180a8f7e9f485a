package native

import (
	"math"
	"slices"
	"sort"
	"testing"
)

// Every op test runs on every test device (forEachCtx): inputs are made on the host,
// moved with on, results brought back with back or ToHost, and compared with float64
// oracles. Tolerances: 1e-5 relative with a floor of 1 covers f32 GEMM rounding at these
// small K (<= 64) and every other op's few roundings; gemmTol states the ggml CPU
// backend's weaker GEMMs on half and quantized weights.

func TestLinear(t *testing.T) {
	r := newRand(t)
	const m, k, n = 9, 64, 33
	w := randFloats(r, n*k, 0.3)
	bias := FromF32(randFloats(r, n, 0.5), n)
	x3 := randTensor(r, 1, 3, 3, k) // [B, T, K] keeps its leading dims
	res := randTensor(r, 1, 3, 3, n)
	wide := randTensor(r, 1, m, k+7)
	forEachCtx(t, func(t *testing.T, c *Ctx) {
		for _, dt := range []DType{F32, F16, BF16, Q8_0, Q4_0} {
			mat, err := c.Device().QuantizeMatrix(w, n, k, dt)
			if err != nil {
				t.Fatal(err)
			}
			wd := mat.Dequantize()
			m0 := c.Mark()
			xd, bd, rd := on(c, x3), on(c, bias), on(c, res)
			for _, act := range []Epilogue{None, GELU, QuickGELU, ReLU} {
				y := c.Linear(xd, mat, bd, act, rd)
				if !slices.Equal(y.Shape(), []int{3, 3, n}) {
					t.Fatalf("shape %v", y.Shape())
				}
				nearGEMM(t, c, dt.String()+"/"+act.String(), c.ToHost(y), linearOracle(x3.F32(), wd, bias.F32(), act, res.F32(), m, n, k), x3.F32(), wd, m, n, k, dt)
			}
			// x as a column view of a wider matrix, no bias, no residual
			xv := on(c, wide).Cols(3, k)
			y := c.Linear(xv, mat, Tensor{}, None, Tensor{})
			xv0 := dense(wide.Cols(3, k))
			nearGEMM(t, c, dt.String()+" view", c.ToHost(y), linearOracle(xv0, wd, nil, None, nil, m, n, k), xv0, wd, m, n, k, dt)
			// in-place residual, with and without an activation (the latter goes through
			// a temporary)
			for _, act := range []Epilogue{None, ReLU} {
				acc := on(c, res).Reshape(m, n)
				want := linearOracle(x3.F32(), wd, bias.F32(), act, res.F32(), m, n, k)
				c.LinearInto(acc, xd.Reshape(m, k), mat, bd, act, acc)
				nearGEMM(t, c, dt.String()+" in place "+act.String(), c.ToHost(acc), want, x3.F32(), wd, m, n, k, dt)
			}
			c.Release(m0)
			mat.Free()
		}
	})
}

func TestRowOps(t *testing.T) {
	r := newRand(t)
	const rows, cols = 6, 37
	x := randTensor(r, 2, rows, cols)
	gamma, beta := randTensor(r, 1, cols), randTensor(r, 1, cols)
	pos := randTensor(r, 1, 2, cols) // broadcast over rows 0,2,4 and 1,3,5
	forEachCtx(t, func(t *testing.T, c *Ctx) {
		m0 := c.Mark()
		defer c.Release(m0)
		xd, pd := on(c, x), on(c, pos)
		ln := back(c, c.LayerNorm(xd, on(c, gamma), on(c, beta), 1e-5))
		sm := back(c, c.Softmax(xd, 0.7))
		ls := back(c, c.LogSoftmax(xd))
		add := back(c, c.Add(xd, pd))
		l2 := back(c, c.L2Normalize(xd))
		act := back(c, c.Activation(xd, GELUTanh))
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
					{"layernorm", float64(ln.Row(i)[j]), (xv-mean)/math.Sqrt(vr+1e-5)*float64(gamma.F32()[j]) + float64(beta.F32()[j])},
					{"softmax", float64(sm.Row(i)[j]), math.Exp(0.7*xv-mx7) / sum7},
					{"logsoftmax", float64(ls.Row(i)[j]), xv - mx - math.Log(sum)},
					{"add", float64(add.Row(i)[j]), xv + float64(pos.Row(i % 2)[j])},
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
		y := on(c, x)
		c.AddScaledInPlace(y, pd, 2)
		c.AddInPlace(y, xd)
		c.ActivationInPlace(y, ReLU)
		c.LayerNormInto(y, y, Tensor{}, Tensor{}, 1e-6)
		yh := back(c, y)
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
				if want := (v[j] - mean) / math.Sqrt(vr+1e-6); math.Abs(float64(yh.Row(i)[j])-want) > 1e-5*(math.Abs(want)+1) {
					t.Fatalf("in-place chain [%d,%d] = %v, want %v", i, j, yh.Row(i)[j], want)
				}
			}
		}
	})
}

func TestArgmaxTopK(t *testing.T) {
	r := newRand(t)
	x := randTensor(r, 1, 4, 1000)
	x.Row(2)[17] = 50
	x.Row(2)[400] = 50
	x.Row(1)[5] = float32(math.NaN())
	x.Row(3)[8], x.Row(3)[9] = 60, 60
	forEachCtx(t, func(t *testing.T, c *Ctx) {
		m0 := c.Mark()
		defer c.Release(m0)
		xd := on(c, x)
		am := c.Argmax(xd)
		// ggml's argmax kernels break ties by their own order (the CPU device takes the
		// last maximum, CUDA whichever thread wins) and never pick a NaN; synth's kernels
		// follow torch.argmax (first maximum, NaN largest). Both are checked where they
		// agree, each where it is defined.
		cpu := c.Device() == CPU
		for _, i := range []int{0, 2, 3} {
			if !cpu && i != 0 {
				if tied := x.Row(i)[am[i]]; tied != 50 && tied != 60 {
					t.Fatalf("row %d: argmax %d (%v) is not a tied maximum", i, am[i], tied)
				}
				continue
			}
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
		if cpu && am[1] != 5 {
			t.Fatalf("NaN: argmax %d, want the NaN's column 5", am[1])
		}
		if cpu && am[2] != 17 {
			t.Fatalf("tie: argmax %d, want the first (17)", am[2])
		}
		for _, k := range []int{1, 5, 37, 2000} {
			idx, vals := c.TopK(xd, k)
			for i := 0; i < 4; i++ {
				row := x.Row(i)
				order := make([]int, 0, len(row))
				for j, v := range row {
					if v == v {
						order = append(order, j)
					}
				}
				sort.SliceStable(order, func(a, b int) bool { return row[order[a]] > row[order[b]] })
				want := order[:min(k, len(order))]
				if len(idx[i]) != len(want) {
					t.Fatalf("TopK(%d) row %d: %d values, want %d", k, i, len(idx[i]), len(want))
				}
				for j, col := range idx[i] {
					if int(col) != want[j] || vals[i][j] != row[col] {
						t.Fatalf("TopK(%d) row %d [%d] = %d (%v), want %d (%v)", k, i, j, col, vals[i][j], want[j], row[want[j]])
					}
				}
			}
		}
		if idx, _ := c.TopK(xd.Rows(3, 4), 2); !slices.Equal(idx[0], []int32{8, 9}) {
			t.Fatalf("TopK ties = %v, want [8 9]", idx[0])
		}
	})
}

// TestLogitEdits: FillAt and PenalizeAt change exactly the listed elements.
func TestLogitEdits(t *testing.T) {
	r := newRand(t)
	x := randTensor(r, 2, 3, 50)
	at := []int32{0, 7, 50, 99, 149}
	forEachCtx(t, func(t *testing.T, c *Ctx) {
		m0 := c.Mark()
		defer c.Release(m0)
		for _, fill := range []bool{true, false} {
			xd := on(c, x)
			want := slices.Clone(x.F32())
			if fill {
				c.FillAt(xd, at, float32(math.Inf(-1)))
			} else {
				c.PenalizeAt(xd, at, 1.3)
			}
			for _, i := range at {
				if fill {
					want[i] = float32(math.Inf(-1))
				} else if want[i] < 0 {
					want[i] *= 1.3
				} else {
					want[i] /= 1.3
				}
			}
			got := c.ToHost(xd)
			for i := range want {
				if got[i] != want[i] && math.Abs(float64(got[i]-want[i])) > 1e-6*math.Abs(float64(want[i])) {
					t.Fatalf("fill %v: [%d] = %v, want %v", fill, i, got[i], want[i])
				}
			}
		}
	})
}

// TestPatchEmbed checks im2col + GEMM against a direct convolution.
func TestPatchEmbed(t *testing.T) {
	r := newRand(t)
	const b, ch, h, wd, p, width = 2, 3, 28, 42, 14, 10
	img := randTensor(r, 1, b, ch, h, wd)
	w := randFloats(r, width*ch*p*p, 0.05)
	bias := randTensor(r, 1, width)
	forEachCtx(t, func(t *testing.T, c *Ctx) {
		mat, err := c.Device().NewMatrixF32(w, width, ch*p*p)
		if err != nil {
			t.Fatal(err)
		}
		defer mat.Free()
		m0 := c.Mark()
		defer c.Release(m0)
		od := c.PatchEmbed(on(c, img), mat, on(c, bias), p)
		gh, gw := h/p, wd/p
		if !slices.Equal(od.Shape(), []int{b * gh * gw, width}) {
			t.Fatalf("shape %v", od.Shape())
		}
		out := back(c, od)
		for bi := 0; bi < b; bi++ {
			for gy := 0; gy < gh; gy++ {
				for gx := 0; gx < gw; gx++ {
					for o := 0; o < width; o++ {
						s := float64(bias.F32()[o])
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
	})
}

// TestGather: rows read from a Matrix by every device are the rows of its exact
// dequantization, for every dtype, repeated ids included, at odd sizes; GatherRows,
// Copy and Repeat move f32 rows exactly.
func TestGather(t *testing.T) {
	r := newRand(t)
	const rows, k = 45, 96
	table := randFloats(r, rows*k, 1)
	ids := []int32{3, 0, 44, 3, 31, 32, 17}
	forEachCtx(t, func(t *testing.T, c *Ctx) {
		for _, dt := range []DType{F32, F16, BF16, Q8_0, Q4_0} {
			m, err := c.Device().QuantizeMatrix(table, rows, k, dt)
			if err != nil {
				t.Fatal(err)
			}
			deq := m.Dequantize()
			m0 := c.Mark()
			got := back(c, c.Gather(m, ids))
			for i, id := range ids {
				if !slices.Equal(got.Row(i), deq[int(id)*k:int(id+1)*k]) {
					t.Fatalf("%s: row %d (id %d) differs", dt, i, id)
				}
			}
			if e := c.Gather(m, nil); e.Numel() != 0 {
				t.Fatalf("%s: no ids gave %v", dt, e.Shape())
			}
			c.Release(m0)
			m.Free()
		}
		m0 := c.Mark()
		defer c.Release(m0)
		tt := FromF32(table, rows, k)
		td := on(c, tt)
		got := back(c, c.GatherRows(td, ids))
		for i, id := range ids {
			if !slices.Equal(got.Row(i), tt.Row(int(id))) {
				t.Fatalf("GatherRows row %d differs", i)
			}
		}
		// Copy between views: columns 5.. of rows 2..9 into rows 0..7 of another view
		dst := on(c, NewTensor(8, k+3))
		c.Copy(dst.Cols(3, k-5), td.Rows(2, 10).Cols(5, k-5))
		dh := back(c, dst)
		for i := 0; i < 8; i++ {
			if !slices.Equal(dh.Row(i)[3:k-2], tt.Row(2 + i)[5:]) || dh.Row(i)[0] != 0 {
				t.Fatalf("Copy row %d differs", i)
			}
		}
		rep := back(c, c.Repeat(td.Rows(4, 7), 3))
		for i := 0; i < 9; i++ {
			if !slices.Equal(rep.Row(i), tt.Row(4+i%3)) {
				t.Fatalf("Repeat row %d differs", i)
			}
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Fatal("GatherRows of id 45 in a table of 45 rows did not panic")
				}
			}()
			c.GatherRows(td, []int32{45})
		}()
	})
}

// TestOpsRefuseOtherDevices: an op never moves data between devices implicitly.
func TestOpsRefuseOtherDevices(t *testing.T) {
	for _, dev := range testDevices(t) {
		if dev == CPU {
			continue
		}
		c, err := NewCtxOn(dev, 1)
		if err != nil {
			t.Fatal(err)
		}
		func() {
			defer c.Close()
			defer func() {
				if recover() == nil {
					t.Fatalf("%s: an op on a host tensor did not panic", dev)
				}
			}()
			c.L2Normalize(NewTensor(2, 3))
		}()
	}
}
