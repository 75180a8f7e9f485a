package native

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"synth/kernels"
)

func TestTensorShapesAndViews(t *testing.T) {
	x := NewTensor(2, 3, 4)
	for i := range x.F32() {
		x.F32()[i] = float32(i)
	}
	if x.Numel() != 24 || x.Rank() != 3 || x.Dim(-1) != 4 || x.Dim(0) != 2 || !x.Contiguous() {
		t.Fatalf("shape %v numel %d rank %d", x.Shape(), x.Numel(), x.Rank())
	}
	if r, c := x.Dims2(); r != 6 || c != 4 {
		t.Fatalf("Dims2 = %d, %d", r, c)
	}
	y := x.Reshape(-1, 8)
	if !slices.Equal(y.Shape(), []int{3, 8}) || y.Row(1)[0] != 8 {
		t.Fatalf("Reshape: %v, row 1 %v", y.Shape(), y.Row(1))
	}
	rows := x.Rows(2, 5) // rows of the [6, 4] form
	if !slices.Equal(rows.Shape(), []int{3, 4}) || rows.Row(0)[0] != 8 || rows.Row(2)[3] != 19 {
		t.Fatalf("Rows: %v %v", rows.Shape(), dense(rows))
	}
	cols := x.Cols(1, 2)
	if !slices.Equal(cols.Shape(), []int{6, 2}) || cols.Contiguous() || cols.Stride() != 4 {
		t.Fatalf("Cols: shape %v stride %d", cols.Shape(), cols.Stride())
	}
	if got := dense(cols); !slices.Equal(got[:4], []float32{1, 2, 5, 6}) || got[11] != 22 {
		t.Fatalf("Cols values %v", got)
	}
	sub := cols.Rows(1, 3) // a view of a view keeps the stride
	if got := dense(sub); !slices.Equal(got, []float32{5, 6, 9, 10}) {
		t.Fatalf("Rows of Cols = %v", got)
	}
	c := NewCtx(1)
	defer c.Close()
	if got := c.ToHost(cols); !slices.Equal(got, dense(cols)) {
		t.Fatalf("ToHost of a view = %v", got)
	}
	dst := NewTensor(6, 4)
	c.Copy(dst.Cols(2, 2), cols)
	if dst.Row(1)[2] != 5 || dst.Row(1)[0] != 0 {
		t.Fatalf("Copy into a view: %v", dst.Row(1))
	}
	var none Tensor
	if !none.Empty() || none.Numel() != 0 {
		t.Fatal("the zero Tensor is not empty")
	}
}

func TestTensorMisusePanics(t *testing.T) {
	x := NewTensor(4, 6)
	cases := map[string]func(){
		"FromF32 size":      func() { FromF32(make([]float32, 5), 2, 3) },
		"Reshape size":      func() { x.Reshape(5, 5) },
		"Reshape two -1":    func() { x.Reshape(-1, -1) },
		"Reshape view":      func() { x.Cols(0, 3).Reshape(12) },
		"F32 of view":       func() { x.Cols(1, 2).F32() },
		"Rows out of range": func() { x.Rows(2, 5) },
		"Cols out of range": func() { x.Cols(5, 2) },
		"Dim out of range":  func() { x.Dim(2) },
		"rank 5":            func() { NewTensor(1, 1, 1, 1, 1) },
		"Copy shape":        func() { c := NewCtx(1); defer c.Close(); c.Copy(x, NewTensor(6, 4)) },
		"Copy overlap":      func() { c := NewCtx(1); defer c.Close(); c.Copy(x.Rows(0, 2), x.Rows(1, 3)) },
	}
	for what, f := range cases {
		func() {
			defer func() {
				r := recover()
				if r == nil {
					t.Errorf("%s: no panic", what)
				} else if s, ok := r.(string); !ok || !strings.HasPrefix(s, "native: ") {
					t.Errorf("%s: panic %v does not name the package", what, r)
				}
			}()
			f()
		}()
	}
}

func TestMatrixConstruction(t *testing.T) {
	r := newRand(t)
	w := randFloats(r, 5*64, 1)
	m, err := NewMatrixF32(w, 5, 64)
	if err != nil {
		t.Fatal(err)
	}
	if m.N() != 5 || m.K() != 64 || m.DType() != F32 || !slices.Equal(m.Dequantize(), w) {
		t.Fatalf("F32 matrix: %d x %d %s", m.N(), m.K(), m.DType())
	}
	for _, dt := range []DType{F16, BF16, Q8_0, Q4_0} {
		q, err := QuantizeMatrix(w, 5, 64, dt)
		if err != nil {
			t.Fatal(err)
		}
		raw := q.rawRows()
		again, err := NewMatrix(dt, raw, 5, 64)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(q.Dequantize(), again.Dequantize()) {
			t.Fatalf("%s: NewMatrix of the quantized bytes differs", dt)
		}
		// within the format's rounding of the source
		tol := map[DType]float64{F16: 1e-3, BF16: 8e-3, Q8_0: 0.02, Q4_0: 0.3}[dt]
		near(t, dt.String(), q.Dequantize(), w, tol, 1)
	}
	// one copy: a Matrix that does not read its source is unaffected by changes to it
	src := slices.Clone(w)
	m, err = NewMatrixF32(src, 5, 64)
	if err != nil {
		t.Fatal(err)
	}
	if !m.ReadsSource() {
		clear(src)
		if !slices.Equal(m.Dequantize(), w) {
			t.Fatal("the F32 matrix changed with its source")
		}
	} else if hostSet.PanelWidth(kernels.F32) > 0 {
		t.Fatal("a packed matrix reads its source")
	}
	bad := []struct {
		what string
		err  error
	}{
		{"short f32", func() error { _, err := NewMatrixF32(w[:10], 5, 64); return err }()},
		{"q8 k", func() error { _, err := NewMatrix(Q8_0, make([]byte, 34*5), 5, 33); return err }()},
		{"q4 bytes", func() error { _, err := NewMatrix(Q4_0, make([]byte, 17), 1, 32); return err }()},
		{"i32", func() error { _, err := NewMatrix(I32, make([]byte, 4), 1, 1); return err }()},
		{"quantize k", func() error { _, err := QuantizeMatrix(w[:5*60], 5, 60, Q4_0); return err }()},
	}
	for _, b := range bad {
		if !errors.Is(b.err, ErrShape) {
			t.Errorf("%s: error %v, want ErrShape", b.what, b.err)
		}
	}
}

// TestQuantizeMatrixChunks: quantizing a chunk of rows at a time straight into the
// panels gives the panels of the whole quantized matrix, with chunks ending inside and
// on panel boundaries and a last partial panel.
func TestQuantizeMatrixChunks(t *testing.T) {
	r := newRand(t)
	defer func(c int) { quantChunk = c }(quantChunk)
	const n, k = 101, 96
	w := randFloats(r, n*k, 1)
	for _, dt := range []DType{F32, F16, BF16, Q8_0, Q4_0} {
		raw := make([]byte, n*dt.RowBytes(k))
		if err := kernels.Quantize(kernels.DType(dt), w, raw); err != nil {
			t.Fatal(err)
		}
		want, err := NewMatrix(dt, raw, n, k)
		if err != nil {
			t.Fatal(err)
		}
		for _, chunk := range []int{1, 3 * dt.RowBytes(k) * 16, 1 << 30} {
			quantChunk = chunk
			m, err := QuantizeMatrix(w, n, k, dt)
			if err != nil {
				t.Fatal(err)
			}
			if m.ReadsSource() {
				t.Fatalf("%s: a quantized matrix reads its source", dt)
			}
			if !slices.Equal(m.rawRows(), raw) {
				t.Fatalf("%s chunk %d: rows differ from the quantized matrix", dt, chunk)
			}
			if !slices.Equal(m.host.Packed, want.host.Packed) {
				t.Fatalf("%s chunk %d: panels differ from packing the quantized matrix", dt, chunk)
			}
		}
	}
}

// TestMatrixOtherVariants: every variant's GEMM, the reference's raw rows included, runs
// on layouts rebuilt from the one copy and gives what the host's does (within the GEMM
// tolerance), and Dequantize is the source's exact dequantization.
func TestMatrixOtherVariants(t *testing.T) {
	r := newRand(t)
	const m, n, k = 5, 37, 64
	x := randTensor(r, 1, m, k)
	w := randFloats(r, n*k, 0.2)
	for _, dt := range []DType{F32, F16, BF16, Q8_0, Q4_0} {
		raw := make([]byte, n*dt.RowBytes(k))
		if err := kernels.Quantize(kernels.DType(dt), w, raw); err != nil {
			t.Fatal(err)
		}
		mat, err := NewMatrix(dt, slices.Clone(raw), n, k)
		if err != nil {
			t.Fatal(err)
		}
		deq := make([]float32, n*k)
		if err := kernels.Dequantize(kernels.DType(dt), raw, deq); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(mat.Dequantize(), deq) {
			t.Fatalf("%s: Dequantize differs from the source's", dt)
		}
		want := linearOracle(x.F32(), deq, nil, None, nil, m, n, k)
		for _, v := range Variants() { // the cpu device's layouts: one per variant
			c, err := NewCtxVariant(3, v)
			if err != nil {
				t.Fatal(err)
			}
			nearGEMM(t, c, dt.String()+"/"+v, c.Linear(x, mat, Tensor{}, None, Tensor{}).F32(), want, x.F32(), deq, m, n, k, dt)
			c.Close()
		}
	}
}
