package preprocess

import (
	"context"
	"fmt"
	"image"
	"sync"
)

// Transform is a batch transform: Batch (CLIP) or BatchBLIP.
type Transform func(n, nPx, workers int, load func(i int) (image.Image, error)) ([]float32, []error)

// Prepared is one batch of images decoded and transformed: items [Start, Start+len(Errs))
// of the input, Pixels [len(Errs), 3, nPx, nPx] (a failed item's slot is left zero).
type Prepared struct {
	Start  int
	Pixels []float32
	Errs   []error
}

// Prefetch is the image loop shared by the Long-CLIP embedder and the BLIP-2 captioner:
// it decodes and transforms paths in batches of batch on workers goroutines, one batch
// ahead of fn, which runs the model on the previous one. A decoder that panics fails its
// image, not the batch. fn's error, or ctx ending, stops the loop and is returned.
func Prefetch(ctx context.Context, paths []string, batch, nPx, workers int, tf Transform,
	decode func(path string) (image.Image, error), fn func(Prepared) error) error {
	ready := make(chan Prepared, 1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(ready)
		for start := 0; start < len(paths); start += batch {
			n := min(batch, len(paths)-start)
			px, errs := tf(n, nPx, workers, func(i int) (image.Image, error) {
				return SafeDecode(decode, paths[start+i])
			})
			select {
			case ready <- Prepared{Start: start, Pixels: px, Errs: errs}:
			case <-stop:
				return
			}
		}
	}()
	defer wg.Wait()
	defer close(stop)
	for b := range ready {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(b); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// SafeDecode runs a caller's decoder, turning a panic or a nil image into the item's
// error: one bad file must not take down a batch.
func SafeDecode(decode func(string) (image.Image, error), path string) (img image.Image, err error) {
	defer func() {
		if r := recover(); r != nil {
			img, err = nil, fmt.Errorf("decode %s: decoder panicked: %v", path, r)
		}
	}()
	img, err = decode(path)
	if err == nil && img == nil {
		err = fmt.Errorf("decode %s: no image", path)
	}
	return img, err
}

// Compact gathers the pixels of the items that decoded: it returns their indexes within
// the batch and their pixels [len(ok), 3, nPx, nPx] (the batch's own slice when none
// failed).
func (p Prepared) Compact(nPx int) (ok []int, pixels []float32) {
	per := 3 * nPx * nPx
	for i, err := range p.Errs {
		if err == nil {
			ok = append(ok, i)
		}
	}
	if len(ok) == len(p.Errs) {
		return ok, p.Pixels
	}
	pixels = make([]float32, len(ok)*per)
	for j, i := range ok {
		copy(pixels[j*per:(j+1)*per], p.Pixels[i*per:(i+1)*per])
	}
	return ok, pixels
}
