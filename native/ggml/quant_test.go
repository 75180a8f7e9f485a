package ggml

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"

	"synth/weights"
)

func randValues(r *rand.Rand, n int, scale float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64()) * scale
	}
	return v
}

// TestCodecMatchesPureGo: the ggml codec writes exactly the bytes of the pure-Go
// quantizers (themselves tested against ggml), and decodes exactly like Dequantize,
// for every type both have, at 1 and 3 threads; the K-quants decode like the pure-Go
// decoders too.
func TestCodecMatchesPureGo(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const rows, cols = 37, 512
	src := randValues(r, rows*cols, 1)
	src[5], src[700] = 0, float32(math.Copysign(0, -1))
	for _, threads := range []int{1, 3} {
		c := Codec{Threads: threads}
		for _, d := range []weights.DType{weights.F32, weights.F16, weights.BF16, weights.Q8_0, weights.Q4_0, weights.Q4_1,
			weights.Q5_0, weights.Q5_1, weights.Q4_K, weights.Q5_K, weights.Q6_K} {
			got, err := c.Quantize(d, src, rows, cols)
			if err != nil {
				t.Fatalf("%s: %v", d, err)
			}
			if want, err := weights.Quantize(d, src); err == nil {
				if !bytes.Equal(got, want) {
					t.Fatalf("%s threads %d: ggml's bytes differ from the pure-Go quantizer's", d, threads)
				}
			} else if d != weights.Q4_K && d != weights.Q5_K && d != weights.Q6_K {
				t.Fatalf("%s: %v", d, err)
			}
			back, err := c.ToF32(d, got, len(src))
			if err != nil {
				t.Fatalf("%s: %v", d, err)
			}
			want, err := weights.Dequantize(d, got, len(src))
			if err != nil {
				t.Fatal(err)
			}
			for i := range want {
				if math.Float32bits(back[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%s threads %d: value %d decodes to %v, pure Go %v", d, threads, i, back[i], want[i])
				}
			}
		}
	}
}

func TestCodecRejects(t *testing.T) {
	c := Codec{}
	if _, err := c.Quantize(weights.Q4_K, make([]float32, 2*128), 2, 128); err == nil {
		t.Error("Q4_K rows of 128 values accepted")
	}
	if _, err := c.Quantize(weights.Q8_0, make([]float32, 64), 3, 32); err == nil {
		t.Error("3 rows of 32 from 64 values accepted")
	}
	if _, err := c.Quantize(weights.I32, make([]float32, 32), 1, 32); err == nil {
		t.Error("an integer type accepted")
	}
	if _, err := c.ToF32(weights.F16, make([]byte, 3), 2); err == nil {
		t.Error("2 halfs from 3 bytes accepted")
	}
}
