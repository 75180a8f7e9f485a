package preprocess

import (
	"fmt"
	"image"
)

// BLIP is transformers' BlipImageProcessor (the image half of Blip2Processor) on one
// image: [3, nPx, nPx] float32. Its steps, in upstream's order:
//
//	convert("RGB")                          before resizing, unlike CLIP's transform
//	resize to nPx x nPx, PIL BICUBIC        both sides, no aspect ratio kept, no crop
//	x = float32(float64(v) * (1/255))       image_transforms.rescale (float64, then cast)
//	x = (x - mean) / std                    image_transforms.normalize, in float32
//
// with OpenAI CLIP's mean and std (OPENAI_CLIP_MEAN/STD, the same constants as Mean and
// Std). convert("RGB") drops alpha without compositing, as image_transforms.convert_to_rgb
// does.
func BLIP(img image.Image, nPx int) ([]float32, error) {
	out := make([]float32, 3*nPx*nPx)
	if err := BLIPInto(img, nPx, out); err != nil {
		return nil, err
	}
	return out, nil
}

// BLIPInto is BLIP writing into dst [3, nPx, nPx].
func BLIPInto(img image.Image, nPx int, dst []float32) error {
	rgb, err := ResizeRGB(img, nPx, nPx)
	if err != nil {
		return err
	}
	if len(dst) != len(rgb) {
		return fmt.Errorf("preprocess: BLIP output of %d values for a %dx%d image", len(dst), nPx, nPx)
	}
	NormalizeHF(rgb, dst)
	return nil
}

// ResizeRGB runs convert("RGB") and then PIL's resize to w x h with the bicubic filter
// (the resize of an image that already has that size is a copy, as in PIL), and returns
// the pixels, [h, w, 3] uint8.
func ResizeRGB(img image.Image, w, h int) ([]uint8, error) {
	if w <= 0 || h <= 0 {
		return nil, fmt.Errorf("preprocess: size %dx%d must be positive", w, h)
	}
	p, err := fromImage(img)
	if err != nil {
		return nil, err
	}
	if p.mode != "RGB" {
		rgb := &pilImage{mode: "RGB", w: p.w, h: p.h, bands: 3, pix: make([]uint8, 3*p.w*p.h)}
		p.toRGB(rgb.pix)
		p = rgb
	}
	if w != p.w || h != p.h {
		p = p.resample(w, h)
	}
	return p.pix[:3*w*h], nil
}

// rescale255 is transformers' rescale factor 1/255 as the float64 Python passes to NumPy.
const rescale255 = 1.0 / 255.0

// NormalizeHF is transformers' rescale + normalize of a uint8 image, rgb [n, 3] ->
// dst [3, n] (channels first): float32(float64(v) * (1/255)), then (x - mean) / std in
// float32. It differs from Normalize (torchvision's ToTensor, v / 255 in float32) in the
// last bit for some v.
func NormalizeHF(rgb []uint8, dst []float32) {
	if len(dst) != len(rgb) || len(rgb)%3 != 0 {
		panic(fmt.Sprintf("preprocess: NormalizeHF of %d samples into %d", len(rgb), len(dst)))
	}
	var lut [3][256]float32
	for c := 0; c < 3; c++ {
		for v := 0; v < 256; v++ {
			x := float32(float64(v) * rescale255)
			lut[c][v] = (x - Mean[c]) / Std[c]
		}
	}
	plane := len(rgb) / 3
	for c := 0; c < 3; c++ {
		out := dst[c*plane : (c+1)*plane]
		for i := range out {
			out[i] = lut[c][rgb[3*i+c]]
		}
	}
}

// BatchBLIP is Batch with the BLIP transform: [n, 3, nPx, nPx], errs[i] for item i.
func BatchBLIP(n, nPx, workers int, load func(i int) (image.Image, error)) (out []float32, errs []error) {
	return batch(n, 3*nPx*nPx, workers, load, func(img image.Image, dst []float32) error {
		return BLIPInto(img, nPx, dst)
	})
}
