package eval

import (
	"context"
	"fmt"
	"math"
	"sort"

	"synth/dataset/embcache"
)

// Pair is one record to score: an image file and the text written for it.
type Pair struct {
	Image string // the file
	Text  string
}

// ScoreConfig configures Score.
type ScoreConfig struct {
	// Cache, when not nil, is consulted before the embedder and filled after it (the
	// same cache Run uses: the evaluation's embeddings are not computed twice).
	Cache *embcache.Cache
	// Batch is the number of distinct images (and texts) embedded per call (default 64).
	Batch int
	// Progress, when not nil, is called after each batch with the images and texts done
	// and their total.
	Progress func(done, total int)
}

// Score is the per-record quality score: the cosine of each pair's image and text
// embeddings (L2-normalised), the value Run's "same" column averages. Each distinct
// image file and text is embedded once. A pair whose image or text fails gets NaN and
// its error; the returned error is the embedder's or ctx's.
func Score(ctx context.Context, emb Embedder, pairs []Pair, cfg ScoreConfig) ([]float64, []error, error) {
	if cfg.Batch <= 0 {
		cfg.Batch = 64
	}
	info := emb.Model()
	e := &embedRun{ctx: ctx, cfg: &Config{Cache: cfg.Cache}, emb: emb, info: &info, name: "scores"}
	images, texts := map[string]*job{}, map[string]*job{}
	var order []*job
	for _, p := range pairs {
		if images[p.Image] == nil {
			images[p.Image] = &job{slot: 0, name: p.Image, path: p.Image}
			order = append(order, images[p.Image])
		}
		if texts[p.Text] == nil {
			texts[p.Text] = &job{slot: -1, text: p.Text}
			order = append(order, texts[p.Text])
		}
	}
	for start := 0; start < len(order); start += cfg.Batch {
		if err := ctx.Err(); err != nil {
			return nil, nil, fmt.Errorf("eval: scores: %w", err)
		}
		if err := e.resolve(order[start:min(start+cfg.Batch, len(order))]); err != nil {
			return nil, nil, err
		}
		if cfg.Progress != nil {
			cfg.Progress(min(start+cfg.Batch, len(order)), len(order))
		}
	}
	scores := make([]float64, len(pairs))
	errs := make([]error, len(pairs))
	for i, p := range pairs {
		scores[i] = math.NaN()
		im, tx := images[p.Image], texts[p.Text]
		for _, j := range []*job{im, tx} {
			if j.err == nil {
				if err := e.checkDim(j.vec); err != nil {
					return nil, nil, fmt.Errorf("eval: scores: %s: %w", j.describe(), err)
				}
			}
		}
		switch {
		case im.err != nil:
			errs[i] = im.err
		case tx.err != nil:
			errs[i] = tx.err
		default:
			a, b := append([]float32{}, im.vec...), append([]float32{}, tx.vec...)
			if err := Normalize(a); err != nil {
				errs[i] = fmt.Errorf("image %s: %w", p.Image, err)
				continue
			}
			if err := Normalize(b); err != nil {
				errs[i] = fmt.Errorf("text: %w", err)
				continue
			}
			var dot float64
			for k := range a {
				dot += float64(a[k]) * float64(b[k])
			}
			scores[i] = dot
		}
	}
	return scores, errs, nil
}

// Ranks gives each score its 1-based rank among the scores of its group (e.g. the
// records of one product), 1 for the highest; ties share the better rank. A NaN score
// has rank 0.
func Ranks(scores []float64, groups []string) []int {
	by := map[string][]int{}
	for i, g := range groups {
		if !math.IsNaN(scores[i]) {
			by[g] = append(by[g], i)
		}
	}
	ranks := make([]int, len(scores))
	for _, idx := range by {
		sort.SliceStable(idx, func(a, b int) bool { return scores[idx[a]] > scores[idx[b]] })
		for k, i := range idx {
			if k > 0 && scores[i] == scores[idx[k-1]] {
				ranks[i] = ranks[idx[k-1]]
			} else {
				ranks[i] = k + 1
			}
		}
	}
	return ranks
}
