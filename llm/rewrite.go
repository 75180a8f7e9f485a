package llm

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"synth/dataset"
	"synth/llm/llamacpp"
)

// GenParams are the generation parameters every record carries.
type GenParams struct {
	Temperature   float32 `json:"temperature"`
	TopK          int     `json:"top_k"`
	TopP          float32 `json:"top_p"`
	MinP          float32 `json:"min_p"`
	RepeatPenalty float32 `json:"repeat_penalty"`
	Seed          uint64  `json:"seed"` // the run's seed
	MaxTokens     int     `json:"max_tokens"`
	Ctx           int     `json:"ctx"` // positions per product
}

// NewGenParams collects the parameters of a run.
func NewGenParams(sp llamacpp.SamplerParams, seed uint64, maxTokens, ctxPerSeq int) GenParams {
	return GenParams{
		Temperature: sp.Temperature, TopK: sp.TopK, TopP: sp.TopP, MinP: sp.MinP, RepeatPenalty: sp.RepeatPenalty,
		Seed: seed, MaxTokens: maxTokens, Ctx: ctxPerSeq,
	}
}

// ContextPerSeq is the number of positions each product may use: requested, or when 0
// the shared prefix + 1024 prompt tokens + maxTokens, at most the model's training
// context. beyond reports a requested context past the training one.
func ContextPerSeq(requested, prefix, maxTokens, nCtxTrain int) (ctx int, beyond bool) {
	if requested == 0 {
		return min(prefix+1024+maxTokens, nCtxTrain), false
	}
	return requested, requested > nCtxTrain
}

// RewriteParams are a rewrite record's parameters.
type RewriteParams struct {
	GenParams
	ItemSeed uint32 `json:"item_seed"` // the sampler's seed for this product and the attempt kept
	Examples int    `json:"examples"`  // few-shot pairs in the prompt
	Lang     string `json:"lang"`
	// ExamplesFrom is the manifest the examples were drawn from (--examples-from), with
	// the number asked for and the ids drawn.
	ExamplesFrom string   `json:"examples_from,omitempty"`
	Shots        int      `json:"shots,omitempty"`
	ExampleIDs   []string `json:"example_ids,omitempty"`
	Glossary     string   `json:"glossary,omitempty"`
}

// RewriteRecord is one line of `synth rewrite`'s output; field names are stable.
type RewriteRecord struct {
	ID           string        `json:"id"`
	Keywords     []string      `json:"keywords"`
	Text         *string       `json:"text,omitempty"` // absent on error records only
	Model        string        `json:"model"`
	Params       RewriteParams `json:"params"`
	PromptTokens int           `json:"prompt_tokens"`
	GenTokens    int           `json:"gen_tokens"`
	MS           int64         `json:"ms"`
	FinishReason string        `json:"finish_reason,omitempty"`
	// Coverage is the fraction of keywords whose content words appear in the text
	// (absent when no keyword has a content word).
	Coverage *float64 `json:"coverage,omitempty"`
	Missing  []string `json:"missing_keywords,omitempty"`
	// GlossaryMatches notes the keywords found only through the glossary, in the other
	// language ("슬림핏 = slim fit").
	GlossaryMatches []string `json:"glossary_matches,omitempty"`
	Attempts        int      `json:"attempts,omitempty"`
	// LowCoverage: still below --min-coverage after the retry.
	LowCoverage bool   `json:"low_coverage,omitempty"`
	Error       string `json:"error,omitempty"`
}

// RewriteConfig is one rewrite run.
type RewriteConfig struct {
	Prompt PromptConfig
	// Glossary, when set, lets keyword coverage match keywords in one language against
	// a text in the other.
	Glossary *Glossary
	Model    string        // recorded as the record's model
	Params   RewriteParams // recorded (ItemSeed is filled per product)
}

// Rewriter turns products into rewrite tasks and their results into RewriteRecords (a
// Recorder for RunJob).
type Rewriter struct {
	cfg RewriteConfig
	p   *Prompter
}

// NewRewriter builds the rewrite prompt's shared prefix.
func NewRewriter(m *llamacpp.Model, cfg RewriteConfig) (*Rewriter, error) {
	p, err := NewPrompter(m, cfg.Prompt)
	if err != nil {
		return nil, err
	}
	cfg.Params.Examples = len(cfg.Prompt.Examples)
	cfg.Params.Lang = p.lang
	return &Rewriter{cfg: cfg, p: p}, nil
}

// Prefix is the shared prefix's tokens.
func (rw *Rewriter) Prefix() []llamacpp.Token { return rw.p.Prefix() }

// SetContext records the positions per product, known once the prefix is.
func (rw *Rewriter) SetContext(ctxPerSeq int) { rw.cfg.Params.Ctx = ctxPerSeq }

// Task is a product's rewrite: one generation from its keywords, category and title.
func (rw *Rewriter) Task(p dataset.Product) *Task {
	t := &Task{ID: p.ID, Data: p}
	suffix, err := rw.p.Suffix(Item{Keywords: p.Keywords, Category: p.Category, Title: p.Title})
	if err != nil {
		t.Err = err
		return t
	}
	t.Parts = []Part{{Suffix: suffix}}
	return t
}

// Score is the keyword coverage of the text.
func (rw *Rewriter) Score(t *Task, _ int, text string) (float64, bool) {
	r := CoverageWith(t.Data.(dataset.Product).Keywords, text, rw.cfg.Glossary)
	return r.Frac, r.OK
}

func (rw *Rewriter) record(t *Task, parts []PartResult) RewriteRecord {
	p := t.Data.(dataset.Product)
	rec := RewriteRecord{ID: p.ID, Keywords: p.Keywords, Model: rw.cfg.Model, Params: rw.cfg.Params, Attempts: 1}
	rec.Params.ItemSeed = PartSeed(rw.cfg.Params.Seed, p.ID, "", 0)
	if rec.Keywords == nil {
		rec.Keywords = []string{}
	}
	if len(parts) == 1 && parts[0].Attempts > 0 {
		rec.Attempts = parts[0].Attempts
		rec.PromptTokens = parts[0].PromptTokens
		rec.Params.ItemSeed = parts[0].Req.Seed // the kept attempt's
	}
	return rec
}

// Record is the rewrite record of a generated product, with its coverage.
func (rw *Rewriter) Record(t *Task, parts []PartResult) (any, error) {
	rec := rw.record(t, parts)
	res := parts[0]
	rec.Text = &res.Text
	rec.GenTokens = len(res.Tokens)
	rec.MS = res.Duration.Milliseconds()
	rec.FinishReason = res.Finish
	if cov := CoverageWith(rec.Keywords, res.Text, rw.cfg.Glossary); cov.OK {
		rec.Coverage = &cov.Frac
		rec.Missing = cov.Missing
		rec.GlossaryMatches = cov.Glossary
		rec.LowCoverage = res.Low
	}
	return rec, nil
}

// Failed is the record of a product that could not be rewritten.
func (rw *Rewriter) Failed(t *Task, parts []PartResult, err error) any {
	rec := rw.record(t, parts)
	rec.Error = err.Error()
	return rec
}

// ExamplesFrom draws k few-shot examples from a dataset's own products (the paper's style
// guide is the source descriptions): the products with a text and keywords, ranked by
// SHA-256 of (seed, id), the first k. The draw depends on the seed and the ids only, not
// on the manifest's order; ids lists the products drawn.
func ExamplesFrom(products []dataset.Product, k int, seed uint64) (ex []Example, ids []string, err error) {
	if k < 1 {
		return nil, nil, fmt.Errorf("llm: examples: %d shots, want at least 1", k)
	}
	type cand struct {
		rank [32]byte
		p    dataset.Product
	}
	var cands []cand
	for _, p := range products {
		kw := CleanKeywords(p.Keywords)
		if strings.TrimSpace(p.Text) == "" || len(kw) == 0 {
			continue
		}
		var buf [8]byte
		binary.LittleEndian.PutUint64(buf[:], seed)
		p.Keywords = kw
		cands = append(cands, cand{sha256.Sum256(append(append(buf[:], "synth/llm/examples\x00"...), p.ID...)), p})
	}
	if len(cands) < k {
		return nil, nil, fmt.Errorf("llm: examples: %d products have both a text and keywords, %d shots asked for", len(cands), k)
	}
	slices.SortFunc(cands, func(a, b cand) int { return slices.Compare(a.rank[:], b.rank[:]) })
	for _, c := range cands[:k] {
		ex = append(ex, Example{Keywords: c.p.Keywords, Text: strings.TrimSpace(c.p.Text)})
		ids = append(ids, c.p.ID)
	}
	return ex, ids, nil
}
