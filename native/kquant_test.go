package native

import (
	"math"
	"slices"
	"testing"

	"synth/kernels"
)

// linearRef is linearOracle for what c computes: when c quantizes x for w (QuantizesX),
// the oracle runs on x quantized as kernels.h specifies (per 32 values, d = amax/127 in
// f32, codes rint(x/d) with ties to even).
func linearRef(c *Ctx, mat *Matrix, x, w, b []float32, act Epilogue, res []float32, m, n, k int) []float32 {
	if c.QuantizesX(mat, m) {
		x = quantizeXOracle(x, m, k)
	}
	return linearOracle(x, w, b, act, res, m, n, k)
}

// quantizeXOracle returns x [m, k] with each 32 values replaced by d * rint(x/d).
func quantizeXOracle(x []float32, m, k int) []float32 {
	out := make([]float32, len(x))
	for b := 0; b < m*k/32; b++ {
		xb := x[32*b : 32*b+32]
		amax := float32(0)
		for _, v := range xb {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		if amax < 0x1p-100 {
			continue
		}
		d := amax / 127
		id := 1 / d
		for l, v := range xb {
			out[32*b+l] = float32(float64(d) * math.RoundToEven(float64(v*id)))
		}
	}
	return out
}

// TestKQuantMatrix: K-quant weights made from f32 (QuantizeMatrix) and from their raw
// blocks (NewMatrix) hold the same bytes, dequantize exactly as the kernels' reference
// does, gather the same rows, and run Linear on every variant like the matching oracle.
func TestKQuantMatrix(t *testing.T) {
	r := newRand(t)
	const m, n, k = 9, 37, 512
	w := randFloats(r, n*k, 0.2)
	x := randTensor(r, 1, m, k)
	for _, dt := range []DType{Q4_K, Q5_K, Q6_K} {
		raw := make([]byte, n*dt.RowBytes(k))
		if err := kernels.Quantize(kernels.DType(dt), w, raw); err != nil {
			t.Fatal(err)
		}
		q, err := QuantizeMatrix(w, n, k, dt)
		if err != nil {
			t.Fatal(err)
		}
		mat, err := NewMatrix(dt, slices.Clone(raw), n, k)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(q.rawRows(), raw) || !slices.Equal(mat.rawRows(), raw) {
			t.Fatalf("%s: a matrix does not hold the quantized rows", dt)
		}
		deq := make([]float32, n*k)
		if err := kernels.Dequantize(kernels.DType(dt), raw, deq); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(mat.Dequantize(), deq) {
			t.Fatalf("%s: Dequantize differs from the kernels' reference", dt)
		}
		ids := []int32{3, 0, 36, 3}
		forEachCtx(t, func(t *testing.T, c *Ctx) {
			g := c.Gather(mat, ids)
			for i, id := range ids {
				if !slices.Equal(g.Row(i), deq[int(id)*k:int(id+1)*k]) {
					t.Fatalf("%s: gathered row %d differs", dt, id)
				}
			}
			near(t, dt.String(), c.Linear(x, mat, nil, None, Tensor{}).F32(), linearRef(c, mat, x.F32(), deq, nil, None, nil, m, n, k), 1e-5, 1)
			c.Reset()
		})
	}
	if _, err := NewMatrix(Q4_K, make([]byte, 144), 1, 128); err == nil {
		t.Error("a Q4_K row of 128 values (half a super-block) accepted")
	}
}
