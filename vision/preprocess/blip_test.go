package preprocess

import (
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"testing"
)

func randomRGB(r *rand.Rand, w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(r.IntN(256))
		if i%4 == 3 {
			img.Pix[i] = 255
		}
	}
	return img
}

// For a square RGB image, BLIP's resize (both sides to n) and CLIP's (short side to n,
// then a crop that removes nothing) are the same PIL call.
func TestBLIPSquareMatchesCLIPPixels(t *testing.T) {
	seed := uint64(7)
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	for _, size := range []int{56, 97, 300} {
		img := randomRGB(r, size, size)
		got, err := ResizeRGB(img, 56, 56)
		if err != nil {
			t.Fatal(err)
		}
		want, err := ResizeCropRGB(img, 56)
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("size %d: pixel byte %d: BLIP %d, CLIP %d", size, i, got[i], want[i])
			}
		}
	}
}

// BLIP converts to RGB before resizing: a palette image resizes like its RGB copy
// (CLIP resizes palette indices with nearest neighbour instead).
func TestBLIPConvertsBeforeResize(t *testing.T) {
	pal := color.Palette{color.RGBA{255, 0, 0, 255}, color.RGBA{0, 0, 255, 255}, color.RGBA{10, 200, 30, 255}}
	p := image.NewPaletted(image.Rect(0, 0, 37, 23), pal)
	rgb := image.NewRGBA(p.Rect)
	for y := 0; y < 23; y++ {
		for x := 0; x < 37; x++ {
			i := uint8((x*7 + y*3) % 3)
			p.SetColorIndex(x, y, i)
			rgb.Set(x, y, pal[i])
		}
	}
	a, err := BLIP(p, 16)
	if err != nil {
		t.Fatal(err)
	}
	b, err := BLIP(rgb, 16)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 3*16*16 {
		t.Fatalf("BLIP gave %d values, want %d", len(a), 3*16*16)
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("value %d: palette %v, RGB %v", i, a[i], b[i])
		}
	}
}

func TestNormalizeHF(t *testing.T) {
	rgb := make([]uint8, 3*256)
	for v := 0; v < 256; v++ {
		rgb[3*v], rgb[3*v+1], rgb[3*v+2] = uint8(v), uint8(v), uint8(v)
	}
	got := make([]float32, len(rgb))
	NormalizeHF(rgb, got)
	for c := 0; c < 3; c++ {
		for v := 0; v < 256; v++ {
			want := (float64(v)/255 - float64(Mean[c])) / float64(Std[c])
			if d := math.Abs(float64(got[c*256+v]) - want); d > 1e-6 {
				t.Errorf("channel %d value %d: %v, want %v", c, v, got[c*256+v], want)
			}
		}
	}
	// channel-first layout: the first plane is red
	px := []uint8{255, 0, 0}
	out := make([]float32, 3)
	NormalizeHF(px, out)
	if out[0] <= 0 || out[1] >= 0 || out[2] >= 0 {
		t.Errorf("red pixel normalised to %v", out)
	}
}

func TestBLIPBadInput(t *testing.T) {
	if _, err := BLIP(image.NewRGBA(image.Rect(0, 0, 0, 3)), 8); err == nil {
		t.Error("empty image: no error")
	}
	if _, err := BLIP(image.NewGray(image.Rect(0, 0, 4, 4)), 0); err == nil {
		t.Error("size 0: no error")
	}
	out, errs := BatchBLIP(2, 8, 2, func(i int) (image.Image, error) {
		if i == 1 {
			return nil, nil
		}
		return image.NewGray(image.Rect(0, 0, 5, 9)), nil
	})
	if len(out) != 2*3*8*8 || errs[0] != nil || errs[1] == nil {
		t.Errorf("BatchBLIP: %d values, errors %v", len(out), errs)
	}
}
