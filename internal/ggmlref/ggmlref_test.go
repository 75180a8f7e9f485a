package ggmlref

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestQ8_0RoundTripWithinHalfStep(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	src := make([]float32, 3*64)
	for i := range src {
		src[i] = float32(r.NormFloat64())
	}
	q, err := Quantize(Q8_0, src, 3, 64)
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != 3*2*34 {
		t.Fatalf("Q8_0 bytes = %d, want %d (34-byte blocks of 32)", len(q), 3*2*34)
	}
	back, err := Dequantize(Q8_0, q, len(src))
	if err != nil {
		t.Fatal(err)
	}
	for b := 0; b < len(src)/32; b++ {
		amax := 0.0
		for _, v := range src[b*32 : b*32+32] {
			amax = math.Max(amax, math.Abs(float64(v)))
		}
		step := amax / 127
		for i := b * 32; i < b*32+32; i++ {
			if d := math.Abs(float64(back[i] - src[i])); d > step*0.5+1e-3*step+1e-7 {
				t.Fatalf("value %d: %v -> %v, error %g > half step %g", i, src[i], back[i], d, step/2)
			}
		}
	}
}

func TestRejectsBadShapes(t *testing.T) {
	if _, err := Quantize(Q4_0, make([]float32, 33), 1, 33); err == nil {
		t.Fatal("Quantize accepted a row that is not a multiple of 32")
	}
	if _, err := Dequantize(Q4_0, make([]byte, 3), 32); err == nil {
		t.Fatal("Dequantize accepted too few bytes")
	}
}
