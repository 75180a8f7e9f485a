package weights

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"synth/internal/ggmlref"
)

// testData returns rows x cols values with the awkward cases quantizers trip on: blocks
// of zeros, constant blocks, a block whose largest magnitude is negative, subnormal and
// huge magnitudes, exact ties at half steps, and log-normal spreads.
func testData(r *rand.Rand, rows, cols int) []float32 {
	x := make([]float32, rows*cols)
	for i := range x {
		x[i] = float32(r.NormFloat64() * math.Exp(1.5*r.NormFloat64()))
	}
	blk := func(b int) []float32 { return x[32*b : 32*b+32] }
	nb := len(x) / 32
	if nb >= 8 {
		clear(blk(0))
		for i := range blk(1) {
			blk(1)[i] = 0.75
		}
		for i := range blk(2) {
			blk(2)[i] = float32(i) - 16 // exact ties once scaled
		}
		for i := range blk(3) {
			blk(3)[i] = float32(r.NormFloat64()) * 1e-40 // subnormal float32
		}
		for i := range blk(4) {
			blk(4)[i] = float32(r.NormFloat64()) * 1e30
		}
		for i := range blk(5) {
			blk(5)[i] = float32(r.NormFloat64()) * 1e-6
		}
		blk(6)[7] = -100 // largest magnitude negative
	}
	return x
}

var writable = []DType{F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1}

func TestQuantizeBitExactWithGGML(t *testing.T) {
	seed := uint64(20240611)
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 3))
	for _, shape := range [][2]int{{1, 32}, {7, 64}, {33, 256}, {16, 1408}} {
		rows, cols := shape[0], shape[1]
		src := testData(r, rows, cols)
		for _, dt := range writable {
			got, err := Quantize(dt, src)
			if err != nil {
				t.Fatal(err)
			}
			want, err := ggmlref.Quantize(ggmlref.Type(dt.GGMLType()), src, rows, cols)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("%s %dx%d: %d bytes, ggml %d", dt, rows, cols, len(got), len(want))
			}
			for i := range got {
				if got[i] != want[i] {
					bb := dt.BlockBytes()
					t.Fatalf("%s %dx%d: byte %d (block %d, offset %d) = %#x, ggml %#x", dt, rows, cols, i, i/bb, i%bb, got[i], want[i])
				}
			}
		}
	}
}

func TestDequantizeBitExactWithGGML(t *testing.T) {
	seed := uint64(99)
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 4))
	for _, dt := range []DType{F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K} {
		rows, cols := 12, 512
		src := testData(r, rows, cols)
		q, err := ggmlref.Quantize(ggmlref.Type(dt.GGMLType()), src, rows, cols)
		if err != nil {
			t.Fatal(err)
		}
		want, err := ggmlref.Dequantize(ggmlref.Type(dt.GGMLType()), q, len(src))
		if err != nil {
			t.Fatal(err)
		}
		got, err := Dequantize(dt, q, len(src))
		if err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) && !(isNaN(got[i]) && isNaN(want[i])) {
				t.Fatalf("%s: value %d = %v, ggml %v", dt, i, got[i], want[i])
			}
		}
	}
}

func isNaN(f float32) bool { return f != f }

// TestHalfConversionsMatchGGML checks every binary16 value one way and a spread of
// float32 bit patterns (near ties, subnormals, overflow, NaN) the other way.
func TestHalfConversionsMatchGGML(t *testing.T) {
	all := make([]byte, 2<<16)
	for i := range 1 << 16 {
		all[2*i], all[2*i+1] = byte(i), byte(i>>8)
	}
	for _, dt := range []DType{F16, BF16} {
		want, err := ggmlref.Dequantize(ggmlref.Type(dt.GGMLType()), all, 1<<16)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := Dequantize(dt, all, 1<<16)
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) && !(isNaN(got[i]) && isNaN(want[i])) {
				t.Fatalf("%s %#04x -> %v, ggml %v", dt, i, got[i], want[i])
			}
		}
	}
	seed := uint64(5)
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 6))
	src := make([]float32, 0, 1<<16)
	for e := 90; e < 160; e++ { // exponents around binary16's range
		for range 256 {
			m := r.Uint32() & 0x7fffff
			if r.IntN(4) == 0 {
				m = m&^0x1fff | 0x1000 // an exact binary16 tie
			}
			src = append(src, math.Float32frombits(uint32(r.IntN(2))<<31|uint32(e)<<23|m))
		}
	}
	src = append(src, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 65504, 65520, -65519.99, 0, float32(math.Copysign(0, -1)))
	for len(src)%32 != 0 {
		src = append(src, 1)
	}
	for _, dt := range []DType{F16, BF16} {
		want, err := ggmlref.Quantize(ggmlref.Type(dt.GGMLType()), src, 1, len(src))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := Quantize(dt, src)
		for i := 0; i < len(got); i += 2 {
			if got[i] != want[i] || got[i+1] != want[i+1] {
				t.Fatalf("%s: %v (%#08x) -> %02x%02x, ggml %02x%02x", dt, src[i/2], math.Float32bits(src[i/2]), got[i+1], got[i], want[i+1], want[i])
			}
		}
	}
}

// TestQuantRoundTripErrorBounds: quantize then dequantize stays within the step each
// format guarantees: half a step for round-to-nearest codes (Q8_0, Q4_1, Q5_1) and one
// step for Q4_0/Q5_0, whose top code is clamped (the extreme opposite to the block's
// largest magnitude lands one step short), plus the binary16 rounding of the scale and
// the minimum (relative 2^-11, times the code's magnitude).
func TestQuantRoundTripErrorBounds(t *testing.T) {
	seed := uint64(31337)
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 8))
	src := make([]float32, 64*256)
	for i := range src {
		src[i] = float32(r.NormFloat64())
	}
	type bound struct {
		steps float64 // how many scale steps of error
		codes float64 // largest |code| (for the f16 rounding of d)
		min   bool
	}
	bounds := map[DType]bound{
		Q8_0: {0.5, 127, false}, Q4_0: {1, 8, false}, Q5_0: {1, 16, false},
		Q4_1: {0.5, 15, true}, Q5_1: {0.5, 31, true},
		F16: {0, 0, false}, BF16: {0, 0, false},
	}
	for dt, b := range bounds {
		q, err := Quantize(dt, src)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Dequantize(dt, q, len(src))
		if err != nil {
			t.Fatal(err)
		}
		for blk := 0; blk < len(src)/32; blk++ {
			x := src[32*blk : 32*blk+32]
			lo, hi := minMax(x)
			_, amax := absMax(x)
			var d float64
			switch dt {
			case Q8_0:
				d = float64(amax) / 127
			case Q4_0:
				d = float64(amax) / 8
			case Q5_0:
				d = float64(amax) / 16
			case Q4_1:
				d = float64(hi-lo) / 15
			case Q5_1:
				d = float64(hi-lo) / 31
			}
			for i, v := range x {
				tol := b.steps*d + b.codes*d*math.Ldexp(1, -11) + 1e-7
				if b.min {
					tol += math.Abs(float64(lo)) * math.Ldexp(1, -11)
				}
				switch dt {
				case F16:
					// half a unit in the last place; below 2^-14 binary16 is subnormal with a
					// fixed step of 2^-24
					tol = max(math.Abs(float64(v))*math.Ldexp(1, -11), math.Ldexp(1, -25))
				case BF16:
					tol = math.Abs(float64(v)) * math.Ldexp(1, -8)
				}
				if e := math.Abs(float64(back[32*blk+i] - v)); e > tol {
					t.Fatalf("%s block %d value %d: %v -> %v, error %g > bound %g", dt, blk, i, v, back[32*blk+i], e, tol)
				}
			}
		}
	}
}

func TestDTypeTableMatchesGGML(t *testing.T) {
	for d := DType(1); d < numDTypes; d++ {
		g := d.GGMLType()
		if g < 0 {
			continue
		}
		if bs, ts := ggmlref.BlockSize(ggmlref.Type(g)), ggmlref.TypeSize(ggmlref.Type(g)); bs != d.BlockSize() || ts != d.BlockBytes() {
			t.Errorf("%s (ggml %d): block %d x %d bytes, ggml says %d x %d", d, g, d.BlockSize(), d.BlockBytes(), bs, ts)
		}
		if back, ok := DTypeFromGGML(g); !ok || back != d {
			t.Errorf("%s: ggml type %d maps back to %s", d, g, back)
		}
	}
	for _, s := range []string{"q8_0", "F32", "bf16", "Q4_K", "bool"} {
		if _, err := ParseDType(s); err != nil {
			t.Errorf("ParseDType(%q): %v", s, err)
		}
	}
	if _, err := ParseDType("q9_9"); err == nil {
		t.Error("ParseDType accepted q9_9")
	}
}

func TestQuantizeRejectsPartialBlocks(t *testing.T) {
	if _, err := Quantize(Q4_0, make([]float32, 33)); err == nil {
		t.Error("Quantize(Q4_0) accepted 33 values")
	}
	if _, err := Dequantize(Q8_0, make([]byte, 33), 32); err == nil {
		t.Error("Dequantize accepted 33 bytes for one Q8_0 block")
	}
	if _, err := Dequantize(IQ4_XS, make([]byte, 136), 256); err == nil {
		t.Error("Dequantize claimed to support IQ4_XS")
	}
	if _, err := Quantize(Q4_K, make([]float32, 256)); err == nil {
		t.Error("Quantize claimed to write Q4_K")
	}
}

func TestQuantizeParallelSameBytes(t *testing.T) {
	seed := uint64(77)
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	src := testData(r, 97, 4096)
	for _, dt := range writable {
		want, _ := Quantize(dt, src)
		for _, th := range []int{1, 3, 8} {
			got, err := QuantizeParallel(dt, src, th)
			if err != nil || !slices.Equal(got, want) {
				t.Fatalf("%s threads=%d: differs from Quantize (%v)", dt, th, err)
			}
		}
	}
	if _, err := QuantizeParallel(Q4_K, make([]float32, 1<<18), 4); err == nil {
		t.Error("QuantizeParallel wrote Q4_K")
	}
}
