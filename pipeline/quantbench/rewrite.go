package quantbench

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"synth/dataset"
	"synth/eval/quant"
	"synth/llm"
	"synth/llm/llamacpp"
)

// rewriteRun is one level's greedy rewrites.
type rewriteRun struct {
	tokens [][]llamacpp.Token
	texts  []string
	vocab  int
}

func runRewrite(ctx context.Context, cfg *Config) (*quant.Model, error) {
	r := cfg.Rewrite
	man, err := dataset.ReadManifest(cfg.Sample)
	if err != nil {
		return nil, err
	}
	var items []dataset.Product
	for _, p := range man.Products {
		if len(llm.CleanKeywords(p.Keywords)) > 0 && len(items) < cfg.N {
			items = append(items, p)
		}
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("quantbench: rewrite: no product of %s has keywords", cfg.Sample)
	}
	refStored, refSize, err := storedTypes(r.Model)
	if err != nil {
		return nil, err
	}
	names := slices.Clone(cfg.Levels)
	var extra []string
	for name := range r.Files {
		if !slices.Contains(names, name) {
			extra = append(extra, name)
		}
	}
	sort.Strings(extra)
	names = append(names, extra...)
	task := cfg.start(quant.RoleRewrite, len(names))
	defer task.End()
	task.Note("reference")
	var store *rowStore
	ref, cost, err := cfg.rewriteLevel(ctx, r.Model, refSize, items, nil, &store, nil)
	if err != nil {
		return nil, err
	}
	defer store.close()
	m := &quant.Model{Role: quant.RoleRewrite, Name: "Llama (llama.cpp)", Path: r.Model, Items: len(items),
		ItemsAre:  fmt.Sprintf("rewrite prompts (built-in instruction and examples; the first %d products with keywords), greedy rewrites of up to %d tokens", len(items), cfg.RewriteTokens),
		Reference: quant.Level{Level: dominant(refStored), Stored: refStored, Cost: cost}}
	task.Add(1)
	for _, name := range names {
		path, ok := r.Files[name]
		if !ok {
			m.Levels = append(m.Levels, skipped(name, "no GGUF file given for this level (--rewrite-levels "+name+"=FILE.gguf); synth does not quantize Llama GGUFs yet: llama.cpp's llama-quantize writes one from an F16 GGUF"))
			task.Add(1)
			continue
		}
		task.Note(name)
		stored, size, err := storedTypes(path)
		if err != nil {
			return nil, err
		}
		var nt quant.NextToken
		run, cost, err := cfg.rewriteLevel(ctx, path, size, items, ref, &store, &nt)
		if err != nil {
			return nil, err
		}
		lv := quant.Level{Level: name, File: path, Stored: stored, Cost: cost, NextToken: &nt}
		refTok, lvTok := make([][]int32, len(items)), make([][]int32, len(items))
		for i := range items {
			refTok[i], lvTok[i] = tokenIDs(ref.tokens[i]), tokenIDs(run.tokens[i])
		}
		lv.Text = agreement(refTok, lvTok, ref.texts, run.texts)
		lv.Coverage = coverage(items, ref.texts, run.texts)
		m.Levels = append(m.Levels, lv)
		task.Add(1)
	}
	return m, nil
}

// rewriteLevel loads the GGUF at path, rewrites every item greedily, then teacher-forces
// the reference's rewrites: into a new *store for the reference (ref nil), against its
// rows into nt for a level.
func (cfg *Config) rewriteLevel(ctx context.Context, path string, size int64, items []dataset.Product,
	ref *rewriteRun, store **rowStore, nt *quant.NextToken) (*rewriteRun, *quant.Cost, error) {
	mt := startMeter(cfg.Device, size)
	gpuLayers := 0
	if cfg.Device.GPU() {
		gpuLayers = -1
	}
	model, err := llamacpp.LoadModel(path, llamacpp.ModelParams{GPULayers: gpuLayers})
	if err != nil {
		return nil, nil, err
	}
	defer model.Close()
	if ref != nil && model.NVocab() != ref.vocab {
		return nil, nil, fmt.Errorf("quantbench: rewrite: %s has a vocabulary of %d tokens, the reference %d: not the same model", path, model.NVocab(), ref.vocab)
	}
	p, err := llm.NewPrompter(model, llm.PromptConfig{Examples: llm.DefaultExamples("en")})
	if err != nil {
		return nil, nil, err
	}
	prefix := p.Prefix()
	suffixes := make([][]llamacpp.Token, len(items))
	for i, it := range items {
		if suffixes[i], err = p.Suffix(llm.Item{Keywords: it.Keywords, Category: it.Category, Title: it.Title}); err != nil {
			return nil, nil, fmt.Errorf("quantbench: rewrite: product %s: %w", it.ID, err)
		}
	}
	// The positions a product needs and no more: llama.cpp attends over every cell of the
	// KV cache, so a context sized for any prompt slows a small model's steps severalfold.
	longest := 0
	for _, s := range suffixes {
		longest = max(longest, len(s))
	}
	ctxPerSeq := min(len(prefix)+longest+cfg.RewriteTokens+1, model.NCtxTrain())
	mt.loaded()

	// Parallel sequences, as rewrite runs them: a text can then differ slightly with the
	// batch shapes it was decoded in (docs/sharding.md), which the levels share until
	// their outputs part.
	start := time.Now()
	gen, err := llm.NewGenerator(model, prefix, llm.Options{Parallel: min(cfg.RewriteParallel, len(items)), MaxTokens: cfg.RewriteTokens, CtxPerSeq: ctxPerSeq, Threads: cfg.Threads})
	if err != nil {
		return nil, nil, err
	}
	run := &rewriteRun{tokens: make([][]llamacpp.Token, len(items)), texts: make([]string, len(items)), vocab: model.NVocab()}
	next := 0
	generated := 0
	err = gen.Run(ctx, func() (llm.Request, bool) {
		if next == len(items) {
			return llm.Request{}, false
		}
		next++
		return llm.Request{ID: items[next-1].ID, Suffix: suffixes[next-1], Tag: next - 1}, true
	}, func(res llm.Result) error {
		if res.Err != nil {
			return fmt.Errorf("quantbench: rewrite: product %s: %w", res.Req.ID, res.Err)
		}
		i := res.Req.Tag.(int)
		run.tokens[i], run.texts[i] = res.Tokens, res.Text
		generated += len(res.Tokens)
		return nil
	})
	gen.Close()
	if err != nil {
		return nil, nil, err
	}
	cost := mt.done(float64(generated), "tokens/s", time.Since(start))

	forced := run.tokens
	if ref == nil {
		if *store, err = newRowStore(filepath.Join(cfg.work(), "rewrite.logits"), model.NVocab()); err != nil {
			return nil, nil, err
		}
	} else {
		forced = ref.tokens
		if err := (*store).rewind(); err != nil {
			return nil, nil, err
		}
	}
	sc, err := llm.NewScorer(model, prefix, ctxPerSeq, cfg.Threads)
	if err != nil {
		return nil, nil, err
	}
	defer sc.Close()
	var want []float32
	for i := range items {
		err := sc.Score(suffixes[i], forced[i], func(_ int, logits []float32) error {
			if ref == nil {
				return (*store).put(logits)
			}
			var err error
			if want, err = (*store).next(want); err != nil {
				return err
			}
			nt.Add(want, logits)
			return nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("quantbench: rewrite: product %s: %w", items[i].ID, err)
		}
	}
	return run, cost, nil
}

// coverage is the mean keyword coverage (llm.Coverage) of the reference's rewrites and
// of the level's, over the products where it is defined.
func coverage(items []dataset.Product, ref, lv []string) *quant.Coverage {
	c := &quant.Coverage{}
	for i, it := range items {
		r, _, ok1 := llm.Coverage(it.Keywords, ref[i])
		l, _, ok2 := llm.Coverage(it.Keywords, lv[i])
		if ok1 && ok2 {
			c.Products++
			c.Reference += r
			c.Level += l
		}
	}
	if c.Products > 0 {
		c.Reference /= float64(c.Products)
		c.Level /= float64(c.Products)
	}
	c.Delta = c.Level - c.Reference
	return c
}

func tokenIDs(t []llamacpp.Token) []int32 {
	out := make([]int32, len(t))
	for i, v := range t {
		out[i] = int32(v)
	}
	return out
}
