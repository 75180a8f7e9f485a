package kernels

import (
	"bytes"
	"fmt"
	"math"
	"testing"

	"synth/internal/ggmlref"
)

var ggmlType = map[DType]ggmlref.Type{F32: ggmlref.F32, F16: ggmlref.F16, BF16: ggmlref.BF16, Q8_0: ggmlref.Q8_0, Q4_0: ggmlref.Q4_0,
	Q4_K: ggmlref.Q4_K, Q5_K: ggmlref.Q5_K, Q6_K: ggmlref.Q6_K}

// quantize is Quantize for every dtype the tests use: the K-quants through the linked
// ggml (they are ggml's to make), in rows of k values.
func quantize(t testing.TB, dt DType, src []float32, k int) []byte {
	t.Helper()
	if dt.BlockSize() == 256 {
		b, err := ggmlref.Quantize(ggmlType[dt], src, len(src)/k, k)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b := make([]byte, RowBytes(dt, len(src)))
	if err := Quantize(dt, src, b); err != nil {
		t.Fatal(err)
	}
	return b
}

// quantInputs is random data at several scales plus the values that trip conversions:
// zeros, signed zeros, f16 subnormals and their rounding ties, the f16 overflow edge,
// f32 subnormals, infinities, and blocks of one value or one outlier. Its length is a
// whole number of 256-value super-blocks.
func quantInputs(t *testing.T) []float32 {
	r := newRand(t)
	var v []float32
	for _, scale := range []float32{1e-6, 1e-3, 1, 30, 7e4} {
		v = append(v, randSlice(r, 256*5, scale)...)
	}
	// skewed super-blocks: all positive, all negative, one sub-block far larger
	pos := randSlice(r, 256, 1)
	for i := range pos {
		pos[i] = float32(math.Abs(float64(pos[i]))) + 0.5
	}
	neg := randSlice(r, 256, 1)
	for i := range neg {
		neg[i] = -float32(math.Abs(float64(neg[i])))
	}
	skew := randSlice(r, 256, 0.01)
	for i := 64; i < 96; i++ {
		skew[i] *= 1000
	}
	v = append(append(append(v, pos...), neg...), skew...)
	special := []float32{0, float32(math.Copysign(0, -1)), 65504, 65519.99, 65520, -65520, 1e5, 6.1e-5, 6.0e-5,
		5.96e-8, 2.98e-8, 2.9802322e-08, 8.9406967e-08, 1e-40, -1e-41, 3.4e38, 1.0009765625, 1.00048828125, 1.00146484375}
	for len(special)%32 != 0 {
		special = append(special, float32(r.NormFloat64()))
	}
	v = append(v, special...)
	block := make([]float32, 32)
	for i := range block {
		block[i] = 0.25
	}
	v = append(v, block...)
	block = make([]float32, 32)
	block[17] = -3
	v = append(v, block...)
	v = append(v, make([]float32, 32)...)
	// Q4_0 ties: the largest magnitude appears with both signs.
	block = randSlice(r, 32, 1)
	block[3], block[9] = 5, -5
	v = append(v, block...)
	for len(v)%256 != 0 {
		v = append(v, float32(r.NormFloat64()))
	}
	return v
}

// TestQuantizeMatchesGGML: our quantizers are bit-exact with the linked ggml's
// ggml_quantize_chunk, and our dequantizers with its to_float.
func TestQuantizeMatchesGGML(t *testing.T) {
	src := quantInputs(t)
	for _, dt := range allDTypes {
		theirs, err := ggmlref.Quantize(ggmlType[dt], src, len(src)/256, 256)
		if err != nil {
			t.Fatal(err)
		}
		if dt.BlockSize() == 256 { // ggml's to quantize: our dequantizer only
			back := make([]float32, len(src))
			if err := Dequantize(dt, theirs, back); err != nil {
				t.Fatal(err)
			}
			want, err := ggmlref.Dequantize(ggmlType[dt], theirs, len(src))
			if err != nil {
				t.Fatal(err)
			}
			sameBits(t, fmt.Sprintf("%s dequantized against ggml", dt), back, want)
			if err := Quantize(dt, src, make([]byte, len(theirs))); err == nil {
				t.Errorf("%s: Quantize accepted a K-quant", dt)
			}
			continue
		}
		for _, s := range variants(t) { // every variant's quantizer gives ggml's bytes
			got := make([]byte, RowBytes(dt, len(src)))
			if err := s.Quantize(dt, src, got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, theirs) {
				for i := range got {
					if got[i] != theirs[i] {
						bs := RowBytes(dt, dt.BlockSize())
						e := i / bs * dt.BlockSize()
						t.Fatalf("%s %s: byte %d of block %d differs (ours %#x, ggml %#x), values %v", setName(s), dt, i%bs, i/bs, got[i], theirs[i], src[e:e+dt.BlockSize()])
					}
				}
			}
		}
		ours := make([]byte, RowBytes(dt, len(src)))
		if err := refSet(t).Quantize(dt, src, ours); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ours, theirs) {
			for i := range ours {
				if ours[i] != theirs[i] {
					bs := RowBytes(dt, dt.BlockSize())
					e := i / bs * dt.BlockSize()
					t.Fatalf("%s: byte %d differs (ours %#x, ggml %#x), values %v", dt, i, ours[i], theirs[i], src[e:e+dt.BlockSize()])
				}
			}
		}
		back := make([]float32, len(src))
		if err := Dequantize(dt, ours, back); err != nil {
			t.Fatal(err)
		}
		want := src // ggml has no to_float for F32: it is the identity
		if dt != F32 {
			if want, err = ggmlref.Dequantize(ggmlType[dt], ours, len(src)); err != nil {
				t.Fatal(err)
			}
		}
		sameBits(t, fmt.Sprintf("%s dequantized against ggml", dt), back, want)
	}
}

// TestF16ConversionAllValues: f16 -> f32 -> f16 is the identity on every half (NaN
// payloads excepted), and f32 -> f16 matches ggml on a sweep of f32 bit patterns.
func TestF16ConversionAllValues(t *testing.T) {
	halves := make([]byte, 2*65536)
	for h := 0; h < 65536; h++ {
		halves[2*h], halves[2*h+1] = byte(h), byte(h>>8)
	}
	f := make([]float32, 65536)
	if err := Dequantize(F16, halves, f); err != nil {
		t.Fatal(err)
	}
	back := make([]byte, len(halves))
	if err := Quantize(F16, f, back); err != nil {
		t.Fatal(err)
	}
	for h := 0; h < 65536; h++ {
		if h&0x7c00 == 0x7c00 && h&0x3ff != 0 {
			continue // NaN: quieted to 0x7e00
		}
		if got := int(back[2*h]) | int(back[2*h+1])<<8; got != h {
			t.Fatalf("half %#04x -> %v -> %#04x", h, f[h], got)
		}
	}
	var sweep []float32
	for u := uint32(0); u < 1<<32-1<<20; u += 1<<20 + 12345 {
		sweep = append(sweep, math.Float32frombits(u))
	}
	sweep = sweep[:len(sweep)/32*32]
	ours := make([]byte, 2*len(sweep))
	if err := Quantize(F16, sweep, ours); err != nil {
		t.Fatal(err)
	}
	theirs, err := ggmlref.Quantize(ggmlref.F16, sweep, 1, len(sweep))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(sweep); i++ {
		if ours[2*i] != theirs[2*i] || ours[2*i+1] != theirs[2*i+1] {
			t.Fatalf("f32 %#08x (%v): ours %#02x%02x, ggml %#02x%02x", math.Float32bits(sweep[i]), sweep[i], ours[2*i+1], ours[2*i], theirs[2*i+1], theirs[2*i])
		}
	}
}

func TestQuantizeRejectsPartialBlocks(t *testing.T) {
	if err := Quantize(Q8_0, make([]float32, 33), make([]byte, 100)); err == nil {
		t.Error("Q8_0 of 33 values accepted")
	}
	if err := Quantize(Q4_0, make([]float32, 32), make([]byte, 17)); err == nil {
		t.Error("Q4_0 into 17 bytes accepted")
	}
	if err := Dequantize(F16, make([]byte, 3), make([]float32, 2)); err == nil {
		t.Error("F16 from 3 bytes accepted")
	}
}

// TestPackLayout decodes packed panels by the layout kernels.h documents and checks
// that they hold exactly the raw rows' values, with zero rows past n.
func TestPackLayout(t *testing.T) {
	r := newRand(t)
	const n = 37
	half := func(b []byte) float32 {
		v := make([]float32, 1)
		if err := Dequantize(F16, b, v); err != nil {
			t.Fatal(err)
		}
		return v[0]
	}
	for _, dt := range allDTypes {
		k := 64
		if dt.BlockSize() > k {
			k = 2 * dt.BlockSize()
		}
		w := randSlice(r, n*k, 1)
		raw := quantize(t, dt, w, k)
		want := make([]float32, n*k)
		if err := Dequantize(dt, raw, want); err != nil {
			t.Fatal(err)
		}
		for _, nr := range []int{16, 32} {
			out := make([]byte, PackedBytes(dt, n, k, nr))
			if err := runShares(3, func(ith int, _ []float32) error { return Pack(dt, raw, n, k, nr, out, ith, 3) }); err != nil {
				t.Fatal(err)
			}
			panel := len(out) / ((n + nr - 1) / nr)
			for row := 0; row < (n+nr-1)/nr*nr; row++ {
				p, j := row/nr, row%nr
				base := out[p*panel:]
				for kk := 0; kk < k; kk++ {
					got := packedValue(t, dt, base, nr, j, kk, half)
					exp := float32(0)
					if row < n {
						exp = want[row*k+kk]
					}
					if math.Float32bits(got) != math.Float32bits(exp) && !(got == 0 && exp == 0) {
						t.Fatalf("%s nr %d: row %d k %d = %v, want %v", dt, nr, row, kk, got, exp)
					}
				}
			}
		}
	}
}

// packedValue decodes value kk of row j of a panel of nr rows as kernels.h describes the
// layout (an independent reading of the documentation, not of the C code).
func packedValue(t *testing.T, dt DType, base []byte, nr, j, kk int, half func([]byte) float32) float32 {
	chunk := func(q []byte, l int) byte { return q[(l/4*nr+j)*4+l%4] } // "[8][nr][4]"
	switch dt {
	case F32:
		return math.Float32frombits(uint32(base[(kk*nr+j)*4]) | uint32(base[(kk*nr+j)*4+1])<<8 | uint32(base[(kk*nr+j)*4+2])<<16 | uint32(base[(kk*nr+j)*4+3])<<24)
	case F16, BF16:
		v := make([]float32, 1)
		if err := Dequantize(dt, base[(kk*nr+j)*2:], v); err != nil {
			t.Fatal(err)
		}
		return v[0]
	case Q8_0:
		blk := base[kk/32*nr*34:]
		return float32(int8(chunk(blk[2*nr:], kk%32))) * half(blk[2*j:])
	case Q4_0:
		blk := base[kk/32*nr*18:]
		b := chunk(blk[2*nr:], kk%16)
		q := int(b & 15)
		if kk%32 >= 16 {
			q = int(b >> 4)
		}
		return float32(q-8) * half(blk[2*j:])
	}
	per := map[DType]int{Q4_K: 148, Q5_K: 180, Q6_K: 210}[dt]
	blk := base[kk/256*nr*per:]
	l := kk % 256
	c, ll := l/32, l%32
	if dt == Q6_K {
		h, cc := c/4, c%4
		b := chunk(blk[(18+(2*h+cc%2)*32)*nr:], ll)
		q := int(b & 15)
		if cc >= 2 {
			q = int(b >> 4)
		}
		q |= int(chunk(blk[(146+32*h)*nr:], ll)>>(2*cc)&3) << 4
		sc := float32(int8(blk[(2+l/16)*nr+j]))
		return half(blk[2*j:]) * sc * float32(q-32)
	}
	b := chunk(blk[(20+c/2*32)*nr:], ll)
	q := int(b & 15)
	if c%2 == 1 {
		q = int(b >> 4)
	}
	if dt == Q5_K {
		q |= int(chunk(blk[148*nr:], ll)>>c&1) << 4
	}
	d1 := half(blk[2*j:]) * float32(blk[(4+c)*nr+j])
	m1 := half(blk[(2*nr+2*j):]) * float32(blk[(12+c)*nr+j])
	return float32(d1*float32(q)) - m1
}

// TestQuantizeNonFinite: blocks holding NaN or inf give every variant the reference's
// bytes (the vector quantizers hand such blocks to it).
func TestQuantizeNonFinite(t *testing.T) {
	r := newRand(t)
	src := randSlice(r, 256, 1)
	src[3], src[40], src[77] = float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))
	src[100] = -float32(math.NaN())
	for _, dt := range []DType{F16, Q8_0} {
		want := make([]byte, RowBytes(dt, len(src)))
		if err := refSet(t).Quantize(dt, src, want); err != nil {
			t.Fatal(err)
		}
		for _, s := range variants(t) {
			got := make([]byte, len(want))
			if err := s.Quantize(dt, src, got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s %s: bytes differ from the reference's", setName(s), dt)
			}
		}
	}
}
