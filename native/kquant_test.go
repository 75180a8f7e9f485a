package native

import (
	"slices"
	"testing"

	"synth/kernels"
)

// TestKQuantMatrix: K-quant weights made from f32 (QuantizeMatrix) and from their raw
// blocks (NewMatrix) hold the same bytes, dequantize exactly as the kernels' reference
// does, gather the same rows, and run Linear on every variant and device within
// nearGEMM's bound (x is quantized to 8 bits for them).
func TestKQuantMatrix(t *testing.T) {
	r := newRand(t)
	const m, n, k = 9, 37, 512
	w := randFloats(r, n*k, 0.2)
	x := randTensor(r, 1, m, k)
	for _, dt := range []DType{Q4_K, Q5_K, Q6_K} {
		raw := make([]byte, n*dt.RowBytes(k))
		if err := quantizeRows(dt, w, k, raw); err != nil {
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
		want := linearOracle(x.F32(), deq, nil, None, nil, m, n, k)
		ids := []int32{3, 0, 36, 3}
		for _, v := range Variants() {
			c, err := NewCtxVariant(3, v)
			if err != nil {
				t.Fatal(err)
			}
			g := c.Gather(mat, ids).F32()
			for i, id := range ids {
				if !slices.Equal(g[i*k:(i+1)*k], deq[int(id)*k:int(id+1)*k]) {
					t.Fatalf("%s %s: gathered row %d differs", dt, v, id)
				}
			}
			nearGEMM(t, c, dt.String()+"/"+v, c.Linear(x, mat, Tensor{}, None, Tensor{}).F32(), want, x.F32(), deq, m, n, k, dt)
			c.Close()
		}
	}
	if _, err := NewMatrix(Q4_K, make([]byte, 144), 1, 128); err == nil {
		t.Error("a Q4_K row of 128 values (half a super-block) accepted")
	}
}
