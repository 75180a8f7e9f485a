package preprocess

import (
	"fmt"
	"image"
	"math/rand/v2"
	"testing"
)

// BenchmarkCLIP: one image through the whole transform at the real size (224), from a
// typical product photo size and from a small one (enlarging).
func BenchmarkCLIP(b *testing.B) {
	for _, sz := range [][2]int{{1000, 1333}, {300, 200}} {
		img := image.NewRGBA(image.Rect(0, 0, sz[0], sz[1]))
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range img.Pix {
			img.Pix[i] = uint8(rng.IntN(256))
			if i%4 == 3 {
				img.Pix[i] = 255
			}
		}
		b.Run(fmt.Sprintf("src=%dx%d/n=224", sz[0], sz[1]), func(b *testing.B) {
			b.SetBytes(int64(len(img.Pix)))
			for b.Loop() {
				if _, err := CLIP(img, 224); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
