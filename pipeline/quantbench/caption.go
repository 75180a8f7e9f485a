package quantbench

import (
	"context"
	"fmt"
	"image"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"synth/dataset"
	"synth/dataset/imagefile"
	"synth/eval/quant"
	"synth/native"
	"synth/vision/blip2"
	"synth/vision/gpt2tok"
	"synth/vision/preprocess"
	"synth/weights"
)

// captionSample is what every level of BLIP-2 captions: one image per product.
type captionSample struct {
	ids    []string  // product ids
	pixels []float32 // [n, 3, S, S]
	size   int       // S
}

// captionRun is one level's greedy captions.
type captionRun struct {
	tokens [][]int32
	texts  []string
}

func runCaption(ctx context.Context, cfg *Config) (*quant.Model, error) {
	c := cfg.Caption
	tokDir := c.Tokenizer
	if tokDir == "" {
		tokDir = besideModel(c.Model)
	}
	tok, err := gpt2tok.Load(tokDir)
	if err != nil {
		return nil, fmt.Errorf("quantbench: caption model's tokenizer (give --caption-tokenizer DIR): %w", err)
	}
	src, err := weights.Open(c.Model)
	if err != nil {
		return nil, err
	}
	levels := visionLevels(cfg.Levels, src, "blip-2")
	js := src.Config()
	src.Close()
	cf, err := blip2.Parse(js)
	if err != nil || js == nil {
		return nil, fmt.Errorf("quantbench: caption model %s: no BLIP-2 config.json: %v", c.Model, err)
	}
	sample, notes, err := cfg.captionSample(cf.Vision.ImageSize)
	if err != nil {
		return nil, err
	}
	refStored, size, err := storedTypes(c.Model)
	if err != nil {
		return nil, err
	}
	store, err := newRowStore(filepath.Join(cfg.work(), "caption.logits"), cf.Text.Vocab)
	if err != nil {
		return nil, err
	}
	defer store.close()

	task := cfg.start(quant.RoleCaption, len(levels))
	defer task.End()
	task.Note("reference")
	ref, cost, err := cfg.captionLevel(ctx, c.Model, native.F32, size, sample, tok, nil, store, nil)
	if err != nil {
		return nil, err
	}
	m := &quant.Model{Role: quant.RoleCaption, Name: "BLIP-2 (OPT)", Path: c.Model, Items: len(sample.ids),
		ItemsAre:  fmt.Sprintf("images (the first of each of the first %d products with one), greedy captions of up to %d tokens", len(sample.ids), cfg.CaptionTokens),
		Reference: quant.Level{Level: dominant(refStored), Stored: refStored, Cost: cost}, Notes: notes}
	task.Add(1)
	m.Levels, err = cfg.eachLevel(task, quant.RoleCaption, c.Model, "blip-2", nil, levels, func(l visionLevel, path string, size int64) (quant.Level, error) {
		var nt quant.NextToken
		run, cost, err := cfg.captionLevel(ctx, path, l.runs, size, sample, tok, ref, store, &nt)
		if err != nil {
			return quant.Level{}, err
		}
		return quant.Level{Cost: cost, NextToken: &nt, Text: agreement(ref.tokens, run.tokens, ref.texts, run.texts)}, nil
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// captionSample decodes the first image of each of the first n products that have one.
func (cfg *Config) captionSample(size int) (*captionSample, []string, error) {
	man, err := dataset.ReadManifest(cfg.Sample)
	if err != nil {
		return nil, nil, err
	}
	var ids, paths []string
	for _, p := range man.Products {
		if len(p.Images) > 0 && len(ids) < cfg.N {
			ids = append(ids, p.ID)
			paths = append(paths, man.ImagePath(p.Images[0]))
		}
	}
	px, errs := preprocess.BatchBLIP(len(paths), size, max(2, cfg.Threads), func(i int) (image.Image, error) {
		return imagefile.Decode(paths[i], imagefile.Limits{})
	})
	s := &captionSample{size: size}
	per := 3 * size * size
	var notes []string
	for i, err := range errs {
		if err != nil {
			notes = append(notes, fmt.Sprintf("product %s left out: image %s: %v", ids[i], paths[i], err))
			continue
		}
		s.ids = append(s.ids, ids[i])
		s.pixels = append(s.pixels, px[i*per:(i+1)*per]...)
	}
	if len(s.ids) == 0 {
		return nil, nil, fmt.Errorf("quantbench: caption: no product of %s has an image that decodes", cfg.Sample)
	}
	return s, notes, nil
}

// captionLevel loads the model at path with Linear weights as dt, captions the sample
// greedily, then teacher-forces the reference's captions: into store for the reference
// (ref nil), against store's rows into nt for a level.
func (cfg *Config) captionLevel(ctx context.Context, path string, dt native.DType, size int64, s *captionSample,
	tok *gpt2tok.Tokenizer, ref *captionRun, store *rowStore, nt *quant.NextToken) (*captionRun, *quant.Cost, error) {
	mt := startMeter(cfg.Device, size)
	src, err := weights.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer src.Close()
	m, err := blip2.Load(src, blip2.Options{DType: dt, KVCache: native.F16, Device: cfg.Device})
	if err != nil {
		return nil, nil, err
	}
	c, err := native.NewCtxOn(cfg.Device, cfg.Threads)
	if err != nil {
		return nil, nil, err
	}
	defer c.Close()
	p := m.Params(cfg.CaptionTokens)
	g, err := m.NewGenerator(c, cfg.Batch, 1, p)
	if err != nil {
		return nil, nil, err
	}
	defer g.Close()
	mt.loaded()

	per := 3 * s.size * s.size
	batch := func(i, j int) native.Tensor { return native.FromF32(s.pixels[i*per:j*per], j-i, 3, s.size, s.size) }
	run := &captionRun{}
	start := time.Now()
	generated := 0
	for i := 0; i < len(s.ids); i += cfg.Batch {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		j := min(i+cfg.Batch, len(s.ids))
		res, err := g.Generate(batch(i, j), make([]blip2.Prompt, j-i), p)
		if err != nil {
			return nil, nil, err
		}
		for _, r := range res {
			run.tokens = append(run.tokens, r.Tokens)
			run.texts = append(run.texts, strings.TrimSpace(tok.Decode(r.Tokens, gpt2tok.DecodeOptions{SkipSpecial: true, CleanUpSpaces: tok.CleanUpDefault()})))
			generated += len(r.Tokens)
		}
	}
	cost := mt.done(float64(generated), "tokens/s", time.Since(start))

	forced := run.tokens // the reference forces its own captions, writing the rows
	if ref != nil {
		forced = ref.tokens // a level forces the reference's, reading its rows back
		if err := store.rewind(); err != nil {
			return nil, nil, err
		}
	}
	var want []float32
	v := m.Cfg.Text.Vocab
	for i := 0; i < len(s.ids); i += cfg.Batch {
		j := min(i+cfg.Batch, len(s.ids))
		rows, err := m.TeacherForce(c, batch(i, j), nil, forced[i:j])
		if err != nil {
			return nil, nil, err
		}
		for _, r := range rows {
			if ref == nil {
				if err := store.put(r); err != nil {
					return nil, nil, err
				}
				continue
			}
			for k := 0; k < len(r); k += v {
				if want, err = store.next(want); err != nil {
					return nil, nil, err
				}
				nt.Add(want, r[k:k+v])
			}
		}
	}
	return run, cost, nil
}

// agreement compares a level's outputs with the reference's, item by item.
func agreement(refTokens, lvTokens [][]int32, refTexts, lvTexts []string) *quant.TextAgreement {
	a := &quant.TextAgreement{Items: len(refTokens)}
	same := 0
	for i := range refTokens {
		if slices.Equal(refTokens[i], lvTokens[i]) {
			same++
		}
	}
	if a.Items > 0 {
		a.ExactMatch = float64(same) / float64(a.Items)
	}
	a.ChrF = quant.ChrFScore(lvTexts, refTexts)
	return a
}
