package blip2

import (
	"context"
	"errors"
	"fmt"
	"image"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"synth/native"
	"synth/vision/generate"
	"synth/vision/gpt2tok"
	"synth/vision/preprocess"
)

// CaptionerOptions configure a Captioner.
type CaptionerOptions struct {
	// Batch is the number of images per Generate call (default 8): the vision tower and
	// Q-Former see the whole batch and its captions decode together.
	Batch int
	// Workers is the number of goroutines decoding and resizing images (default
	// max(2, the Ctx's threads)); the next batch is prepared while the model runs.
	Workers int
	// Decode reads an image file into the Go type that stands for its PIL mode
	// (dataset/imagefile.Decode does; see package preprocess).
	Decode func(path string) (image.Image, error)
	// Tokenizer decodes the new tokens into the caption text.
	Tokenizer *gpt2tok.Tokenizer
	// Prompt is the token ids every caption continues (empty: BOS alone).
	Prompt []int32
	// Params are the generation parameters; empty EOS ids take the model's.
	Params generate.Params
}

// Image is one image to caption and its sampler seed.
type Image struct {
	Path string
	Seed uint64
}

// Caption is one image's outcome.
type Caption struct {
	Index  int    // into the images given to Stream
	Text   string // the new tokens decoded, special tokens skipped, trimmed
	Tokens int    // new tokens generated
	// Seconds is the batch's generation time divided among its images.
	Seconds float64
	// Err is set when the image could not be read or decoded; nothing else is then.
	Err error
}

// Captioner captions image files in batches with per-image failures: a file that
// cannot be read fails that image, never its batch. It owns the Ctx's generator.
type Captioner struct {
	m   *Model
	gen *Generator
	opt CaptionerOptions
}

// NewCaptioner makes a Captioner for m on c, with a KV cache sized for opt.Batch images,
// opt.Prompt and opt.Params.
func NewCaptioner(m *Model, c *native.Ctx, opt CaptionerOptions) (*Captioner, error) {
	if opt.Batch <= 0 {
		opt.Batch = 8
	}
	if opt.Workers <= 0 {
		opt.Workers = max(2, c.Threads())
	}
	if opt.Decode == nil || opt.Tokenizer == nil {
		return nil, errors.New("blip2: captioner needs CaptionerOptions.Decode and Tokenizer")
	}
	if len(opt.Params.EOS) == 0 {
		opt.Params.EOS = m.Cfg.Text.EOS
	}
	gen, err := m.NewGenerator(c, opt.Batch, max(len(opt.Prompt), 1), opt.Params)
	if err != nil {
		return nil, err
	}
	return &Captioner{m: m, gen: gen, opt: opt}, nil
}

// Stream captions images batch by batch and calls fn once per image, in input order.
// fn's error, a generation error, or ctx ending stops the stream and is returned.
func (cp *Captioner) Stream(ctx context.Context, images []Image, fn func(Caption) error) error {
	if os.Getenv("GOGC") == "" {
		// The KV cache is one large allocation, mostly untouched pages, that still counts
		// toward the collector's heap goal: at the default GOGC the garbage of decoded
		// images could grow by as much as the cache before a collection.
		defer debug.SetGCPercent(debug.SetGCPercent(25)) // restored for in-process callers
	}
	paths := make([]string, len(images))
	for i, im := range images {
		paths[i] = im.Path
	}
	s := cp.m.Cfg.Vision.ImageSize
	return preprocess.Prefetch(ctx, paths, cp.opt.Batch, s, cp.opt.Workers, preprocess.BatchBLIP, cp.opt.Decode, func(b preprocess.Prepared) error {
		ok, px := b.Compact(s)
		caps := make([]Caption, len(b.Errs))
		for i, err := range b.Errs {
			caps[i] = Caption{Index: b.Start + i, Err: err}
		}
		if len(ok) > 0 {
			prompts := make([]Prompt, len(ok))
			for j, i := range ok {
				prompts[j] = Prompt{IDs: cp.opt.Prompt, Seed: images[b.Start+i].Seed}
			}
			t0 := time.Now()
			res, err := cp.gen.Generate(native.FromF32(px, len(ok), 3, s, s), prompts, cp.opt.Params)
			if err != nil {
				return fmt.Errorf("blip2: caption batch at image %d: %w", b.Start, err)
			}
			each := time.Since(t0).Seconds() / float64(len(ok))
			tok := cp.opt.Tokenizer
			for j, i := range ok {
				caps[i].Text = strings.TrimSpace(tok.Decode(res[j].Tokens, gpt2tok.DecodeOptions{SkipSpecial: true, CleanUpSpaces: tok.CleanUpDefault()}))
				caps[i].Tokens = len(res[j].Tokens)
				caps[i].Seconds = each
			}
		}
		for _, c := range caps {
			if err := fn(c); err != nil {
				return err
			}
		}
		// The collector paces itself by the live heap, gigabytes of weights: even at GOGC=25
		// the garbage of dozens of batches (decoded images, results) would pile up before a
		// cycle, past the weights' own size. A cycle per batch costs milliseconds (the
		// weights hold no pointers) against seconds of captioning.
		runtime.GC()
		return nil
	})
}
