package preprocess

import (
	"fmt"
	"image"
	"math"
	"sync"
)

// CLIP's normalisation constants (OpenAI CLIP, reused by Long-CLIP), as float32 like the
// torch tensors upstream builds from them.
var (
	Mean = [3]float32{0.48145466, 0.4578275, 0.40821073}
	Std  = [3]float32{0.26862954, 0.26130258, 0.27577711}
)

// ResizedSize is torchvision's Resize(n) output size for a w x h image: the short side
// becomes n, the long side int(n * long / short) (truncated).
func ResizedSize(w, h, n int) (rw, rh int) {
	if w <= h {
		return n, int(float64(n*h) / float64(w))
	}
	return int(float64(n*w) / float64(h)), n
}

// CropOffset is torchvision's CenterCrop offset: int(round((size - n) / 2)) with Python's
// round, half to even.
func CropOffset(size, n int) int {
	return int(math.RoundToEven(float64(size-n) / 2))
}

// MaxResizedPixels bounds the image Resize(nPx) makes before the center crop: the short
// side becomes nPx and the long side grows with the aspect ratio, so a 60000x1 PNG of a
// few hundred bytes would resize to 13,440,000x224 (9 GB) at 224. 1<<24 pixels allows an
// aspect ratio of 334 at 224 and 148 at 336, far past any photograph.
const MaxResizedPixels = 1 << 24

// ResizeCropRGB runs Resize(nPx, BICUBIC), CenterCrop(nPx) and convert("RGB") and
// returns the pixels, [nPx, nPx, 3] uint8. An image whose resized size would exceed
// MaxResizedPixels is an error (the caller's per-item error), not an allocation.
func ResizeCropRGB(img image.Image, nPx int) ([]uint8, error) {
	if nPx <= 0 {
		return nil, fmt.Errorf("preprocess: size %d must be positive", nPx)
	}
	p, err := fromImage(img)
	if err != nil {
		return nil, err
	}
	w, h := ResizedSize(p.w, p.h, nPx)
	if int64(w)*int64(h) > MaxResizedPixels {
		return nil, fmt.Errorf("preprocess: a %dx%d image resizes to %dx%d before the %d-pixel center crop, more than %d pixels: aspect ratio too extreme",
			p.w, p.h, w, h, nPx, MaxResizedPixels)
	}
	if w != p.w || h != p.h {
		switch p.mode {
		case "P":
			p = p.nearest(w, h)
		case "RGBA":
			premultiply(p.pix)
			p = p.resample(w, h)
			unpremultiply(p.pix)
		default:
			p = p.resample(w, h)
		}
	}
	p = p.crop(CropOffset(w, nPx), CropOffset(h, nPx), nPx)
	rgb := make([]uint8, nPx*nPx*3)
	p.toRGB(rgb)
	return rgb, nil
}

// Normalize is ToTensor + Normalize: rgb [n, n, 3] uint8 -> dst [3, n, n] float32,
// (v / 255 - mean) / std, each step rounded to float32 as torch does.
func Normalize(rgb []uint8, dst []float32) {
	if len(dst) != len(rgb) || len(rgb)%3 != 0 {
		panic(fmt.Sprintf("preprocess: Normalize of %d samples into %d", len(rgb), len(dst)))
	}
	plane := len(rgb) / 3
	for c := 0; c < 3; c++ {
		m, s := Mean[c], Std[c]
		out := dst[c*plane : (c+1)*plane]
		for i := range out {
			x := float32(rgb[3*i+c]) / 255
			out[i] = (x - m) / s
		}
	}
}

// CLIP is Long-CLIP's _transform(nPx) on one image: [3, nPx, nPx] float32.
func CLIP(img image.Image, nPx int) ([]float32, error) {
	rgb, err := ResizeCropRGB(img, nPx)
	if err != nil {
		return nil, err
	}
	out := make([]float32, len(rgb))
	Normalize(rgb, out)
	return out, nil
}

// Batch loads and preprocesses n images on up to workers goroutines (0: one per item,
// capped at 8). load(i) decodes item i (it runs on the workers, so decoding is parallel
// too). The result is [n, 3, nPx, nPx]; errs[i] is item i's error (its slot stays zero),
// never a panic for bad input.
func Batch(n, nPx, workers int, load func(i int) (image.Image, error)) (out []float32, errs []error) {
	return batch(n, 3*nPx*nPx, workers, load, func(img image.Image, dst []float32) error {
		rgb, err := ResizeCropRGB(img, nPx)
		if err != nil {
			return err
		}
		Normalize(rgb, dst)
		return nil
	})
}

// batch runs load and tf for n items on up to workers goroutines; item i fills
// out[i*per:(i+1)*per].
func batch(n, per, workers int, load func(i int) (image.Image, error), tf func(image.Image, []float32) error) (out []float32, errs []error) {
	if workers <= 0 {
		workers = 8
	}
	workers = max(1, min(workers, n))
	out = make([]float32, n*per)
	errs = make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				img, err := load(i)
				if err != nil {
					errs[i] = err
					continue
				}
				if err := tf(img, out[i*per:(i+1)*per]); err != nil {
					errs[i] = fmt.Errorf("item %d: %w", i, err)
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return out, errs
}
