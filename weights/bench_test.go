package weights

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"synth/internal/ggmlref"
)

// Codec throughput against the anchor measured in the same run: the linked ggml's own
// reference quantizer and its dequantizer (impl=ggml). Shape: an OPT-2.7B attention
// projection, [2560, 2560]. Bytes are float32 values processed.
func BenchmarkQuantize(b *testing.B) {
	const rows, cols = 2560, 2560
	r := rand.New(rand.NewPCG(1, 1))
	src := make([]float32, rows*cols)
	for i := range src {
		src[i] = float32(r.NormFloat64())
	}
	for _, dt := range []DType{F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1} {
		b.Run(fmt.Sprintf("impl=go/type=%s/rows=%d/cols=%d", dt, rows, cols), func(b *testing.B) {
			b.SetBytes(int64(4 * len(src)))
			for b.Loop() {
				if _, err := Quantize(dt, src); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("impl=ggml/type=%s/rows=%d/cols=%d", dt, rows, cols), func(b *testing.B) {
			b.SetBytes(int64(4 * len(src)))
			for b.Loop() {
				if _, err := ggmlref.Quantize(ggmlref.Type(dt.GGMLType()), src, rows, cols); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDequantize(b *testing.B) {
	const rows, cols = 2560, 2560
	r := rand.New(rand.NewPCG(2, 2))
	src := make([]float32, rows*cols)
	for i := range src {
		src[i] = float32(r.NormFloat64())
	}
	for _, dt := range []DType{F16, Q8_0, Q4_0, Q4_K, Q6_K} {
		q, err := ggmlref.Quantize(ggmlref.Type(dt.GGMLType()), src, rows, cols)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("impl=go/type=%s/rows=%d/cols=%d", dt, rows, cols), func(b *testing.B) {
			b.SetBytes(int64(4 * len(src)))
			for b.Loop() {
				if _, err := Dequantize(dt, q, len(src)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("impl=ggml/type=%s/rows=%d/cols=%d", dt, rows, cols), func(b *testing.B) {
			b.SetBytes(int64(4 * len(src)))
			for b.Loop() {
				if _, err := ggmlref.Dequantize(ggmlref.Type(dt.GGMLType()), q, len(src)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
