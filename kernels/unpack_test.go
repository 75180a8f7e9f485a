package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// Panels are the only copy of a weight matrix that package native keeps, so everything
// that reads the source reads them instead: Unpack (raw rows for the reference GEMM and
// for repacking) and GatherRows (embedding rows, Dequantize). Both must be exact.

// packShape is W [n, k] in panels of nr rows: n past a panel boundary, odd k, and the
// real OPT embedding width.
type packShape struct{ n, k, nr int }

func packShapes() []packShape {
	return []packShape{
		{1, 1, 2}, {7, 17, 6}, {33, 64, 16}, {17, 33, 32}, {65, 96, 32}, {40, 2560, 32}, {50, 2560, 16}, {3, 7, 4},
	}
}

// randRaw quantizes random values to W [n, k] of dt (k rounded up to whole blocks) and
// returns the raw rows and the new k.
func randRaw(t testing.TB, r *rand.Rand, dt DType, n, k int) ([]byte, int) {
	t.Helper()
	if bs := dt.BlockSize(); k%bs != 0 {
		k += bs - k%bs
	}
	return quantize(t, dt, randSlice(r, n*k, 1), k), k
}

func packed(t testing.TB, dt DType, raw []byte, n, k, nr int) []byte {
	t.Helper()
	out := alignedBytes(PackedBytes(dt, n, k, nr))
	if err := runShares(2, func(ith int, _ []float32) error { return Pack(dt, raw, n, k, nr, out, ith, 2) }); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestUnpackInvertsPack: unpacking the panels gives back the raw rows bit for bit, for
// every dtype, panel width and thread count, and writes nothing past them.
func TestUnpackInvertsPack(t *testing.T) {
	r := newRand(t)
	for _, sh := range packShapes() {
		for _, dt := range allDTypes {
			raw, k := randRaw(t, r, dt, sh.n, sh.k)
			p := packed(t, dt, raw, sh.n, k, sh.nr)
			orig := append([]byte(nil), p...)
			for _, nth := range threadCounts {
				what := name("dt", dt, "n", sh.n, "k", k, "nr", sh.nr, "nth", nth)
				out := make([]byte, len(raw)+16)
				for i := range out {
					out[i] = 0xa5
				}
				if err := runShares(nth, func(ith int, _ []float32) error { return Unpack(dt, p, sh.n, k, sh.nr, out, ith, nth) }); err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				for i := range raw {
					if out[i] != raw[i] {
						t.Fatalf("%s: byte %d (row %d) = %#x, want %#x", what, i, i/RowBytes(dt, k), out[i], raw[i])
					}
				}
				for i := len(raw); i < len(out); i++ {
					if out[i] != 0xa5 {
						t.Fatalf("%s: wrote past the rows at %d", what, i)
					}
				}
				for i := range orig {
					if orig[i] != p[i] {
						t.Fatalf("%s: panels modified", what)
					}
				}
			}
		}
	}
}

// TestGatherRowsParity: every variant gathers rows from raw rows (nr 0) and from panels
// of several widths (their own and others: a Matrix is packed for the host's variant
// and read by every Ctx) exactly as Dequantize gives them: bit for bit, at 1, 3 and 8
// threads, repeated ids and all rows (nil ids) included.
func TestGatherRowsParity(t *testing.T) {
	r := newRand(t)
	for _, sh := range packShapes() {
		for _, dt := range allDTypes {
			raw, k := randRaw(t, r, dt, sh.n, sh.k)
			want := make([]float32, sh.n*k)
			if err := Dequantize(dt, raw, want); err != nil {
				t.Fatal(err)
			}
			ids := make([]int32, 9)
			for i := range ids {
				ids[i] = int32(r.IntN(sh.n))
			}
			ids[len(ids)-1] = ids[0]
			layouts := []*Weights{{DType: dt, N: sh.n, K: k, Raw: raw}}
			for _, nr := range []int{sh.nr, 16, 32} {
				layouts = append(layouts, &Weights{DType: dt, N: sh.n, K: k, Packed: packed(t, dt, raw, sh.n, k, nr), PanelNR: nr})
			}
			for _, ws := range layouts {
				for _, s := range variants(t) {
					for _, nth := range threadCounts {
						for _, sel := range [][]int32{ids, nil} {
							if sel == nil && nth != 3 {
								continue // every row once is enough
							}
							rows := len(sel)
							if sel == nil {
								rows = sh.n
							}
							what := name("isa", setName(s), "dt", dt, "n", sh.n, "k", k, "nr", ws.PanelNR, "rows", rows, "nth", nth)
							out := newGuarded(rows, k, k+3)
							if err := runShares(nth, func(ith int, _ []float32) error { return s.GatherRows(ws, sel, out.mat(), ith, nth) }); err != nil {
								t.Fatalf("%s: %v", what, err)
							}
							out.checkGuards(t, what)
							for i := 0; i < rows; i++ {
								id := i
								if sel != nil {
									id = int(sel[i])
								}
								for kk := 0; kk < k; kk++ {
									if got, w := out.at(i, kk), want[id*k+kk]; math.Float32bits(got) != math.Float32bits(w) {
										t.Fatalf("%s: row %d (W row %d) [%d] = %v, want %v", what, i, id, kk, got, w)
									}
								}
							}
						}
					}
				}
			}
		}
	}
}

// TestGatherRowsRejects: ids outside the matrix and weights without any layout.
func TestGatherRowsRejects(t *testing.T) {
	s := refSet(t)
	ws := &Weights{DType: F32, N: 4, K: 8, Raw: make([]byte, 4*8*4)}
	out := Mat{Data: make([]float32, 16), Rows: 2, Cols: 8, LD: 8}
	cases := map[string]func() error{
		"negative id": func() error { return s.GatherRows(ws, []int32{0, -1}, out, 0, 1) },
		"id past n":   func() error { return s.GatherRows(ws, []int32{4, 0}, out, 0, 1) },
		"ids count":   func() error { return s.GatherRows(ws, []int32{0}, out, 0, 1) },
		"short raw":   func() error { return s.GatherRows(&Weights{DType: F32, N: 4, K: 8, Raw: ws.Raw[:20]}, nil, out, 0, 1) },
		"no layout":   func() error { return s.GatherRows(&Weights{DType: F32, N: 4, K: 8}, nil, out, 0, 1) },
		"short out":   func() error { return s.GatherRows(ws, nil, Mat{Data: out.Data[:10], Rows: 2, Cols: 8, LD: 8}, 0, 1) },
	}
	for what, f := range cases {
		if err := f(); err == nil {
			t.Errorf("%s: accepted", what)
		}
	}
}

// f16Inputs is a row of values that exercise every rounding case of f32 -> f16: ties to
// even, the subnormal range, overflow to inf, infinities and NaN, plus random values.
func f16Inputs(r *rand.Rand, n int) []float32 {
	special := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 65504, 65519.996, 65520, -65520, 1e9,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 5.96e-8, 2.98e-8, 2.9802326e-8, 1.5e-5,
		6.1035156e-5, 6.1e-5, 1 + 1.0/2048, 1 + 3.0/2048, 2049, 2051, -3.0000002e-7}
	out := make([]float32, n)
	for i := range out {
		if i < len(special) && r.IntN(2) == 0 {
			out[i] = special[i]
		} else {
			out[i] = float32(r.NormFloat64() * math.Pow(2, float64(r.IntN(40)-25)))
		}
	}
	return out
}

// TestStoreRowsF16Parity: every variant rounds exactly as the reference quantizer (to
// nearest even; a NaN stays a NaN, its payload free), into the destination rows only.
func TestStoreRowsF16Parity(t *testing.T) {
	r := newRand(t)
	for _, cols := range []int{1, 7, 17, 33, 80, 2560} {
		rows := 5
		x := make([]float32, rows*(cols+3))
		for i := 0; i < rows; i++ {
			copy(x[i*(cols+3):], f16Inputs(r, cols))
		}
		xm := input{m: Mat{Data: x, Rows: rows, Cols: cols, LD: cols + 3}, orig: append([]float32(nil), x...)}
		dst := []int64{6, 0, 3, 1, 4} // rows 2 and 5 of y stay untouched
		want := make([][]byte, rows)
		for i := range want {
			want[i] = make([]byte, 2*cols)
			if err := Quantize(F16, x[i*(cols+3):i*(cols+3)+cols], want[i]); err != nil {
				t.Fatal(err)
			}
		}
		for _, s := range variants(t) {
			for _, nth := range threadCounts {
				what := name("isa", setName(s), "cols", cols, "nth", nth)
				const guard = 0x7dea // a signaling NaN half: no conversion produces one
				y := Mat16{Data: make([]uint16, 7*(cols+1)), Rows: 7, Cols: cols, LD: cols + 1}
				for i := range y.Data {
					y.Data[i] = guard
				}
				if err := runShares(nth, func(ith int, _ []float32) error { return s.StoreRowsF16(xm.m, dst, y, ith, nth) }); err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				written := map[int64]int{}
				for i, d := range dst {
					written[d] = i
				}
				for row := 0; row < y.Rows; row++ {
					for c := 0; c < y.LD; c++ {
						got := y.Data[row*y.LD+c]
						i, ok := written[int64(row)]
						if !ok || c >= cols {
							if got != guard {
								t.Fatalf("%s: wrote %#x at row %d col %d outside the destinations", what, got, row, c)
							}
							continue
						}
						w := uint16(want[i][2*c]) | uint16(want[i][2*c+1])<<8
						isNaN := func(h uint16) bool { return h&0x7c00 == 0x7c00 && h&0x3ff != 0 }
						if got != w && !(isNaN(got) && isNaN(w)) {
							t.Fatalf("%s: row %d col %d: %v -> %#04x, want %#04x", what, i, c, x[i*(cols+3)+c], got, w)
						}
					}
				}
				xm.checkUnmodified(t, what)
			}
		}
	}
}
