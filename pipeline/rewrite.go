package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"synth/dataset"
	"synth/internal/progress"
	"synth/llm"
	"synth/llm/llamacpp"
)

// RewriteParams are the settings of synth rewrite and of synth.yaml's rewrite: section
// (docs/parameters.md maps them to llama.cpp's names and to caption's).
type RewriteParams struct {
	Model       string  `set:"model" path:"1" req:"1" usage:"GGUF model file (e.g. Llama-3.1-8B-Instruct Q4_0)"`
	Examples    string  `set:"examples" path:"1" req:"1" usage:"few-shot style examples, JSONL {keywords, text}"`
	Parallel    int     `set:"parallel" def:"8" usage:"products generated together (KV sequences)"`
	MaxTokens   int     `set:"max-tokens,max-new-tokens" def:"256" usage:"most tokens generated per product"`
	Temperature float64 `set:"temperature" def:"0.6" usage:"sampling temperature; 0 = greedy (Llama 3.1's default 0.6)"`
	TopK        int     `set:"top-k" def:"40" usage:"keep the k most likely tokens; 0 = off (then top-p sorts the whole\n\tvocabulary every token: about 100x slower sampling over Llama 3's 128K tokens)"`
	TopP        float64 `set:"top-p" def:"0.9" usage:"nucleus sampling; 1 = off (Llama 3.1's default 0.9)"`
	MinP        float64 `set:"min-p" def:"0" usage:"drop tokens below p x the best one's probability; 0 = off"`
	RepeatPen   float64 `set:"repeat-penalty,repetition-penalty" def:"1" usage:"penalty for tokens among the last 64 generated; 1 = off"`
	Seed        uint64  `set:"seed" def:"0" usage:"run seed; each product's sampler seed is derived from it and the product id"`
	Ctx         int     `set:"ctx" def:"0" usage:"positions per product: shared prefix + product prompt + generation\n\t(0 = prefix + 1024 + max-tokens, at most the model's training context)"`
	Batch       int     `set:"batch" def:"512" usage:"most tokens per llama_decode (llama.cpp n_batch)"`
	GPULayers   int     `set:"gpu-layers" def:"0" usage:"layers to offload to a GPU (-1 = all). The pinned llama.cpp is built CPU-only and\n\tignores this unless $SYNTH_GGML_BACKENDS names a GPU backend module built by CMakeLists.txt\n\t('synth doctor' shows 'llama.cpp GPU: yes' then; see README)"`
	SystemFile  string  `set:"system-file" path:"1" usage:"file with the system instruction to use instead of the built-in one"`
	DateLines   bool    `set:"date-lines" def:"true" usage:"put the template's 'Cutting Knowledge Date / Today Date' lines in the system\n\tturn as HF transformers renders Llama 3.1 (llama.cpp's formatter leaves them out);\n\tdate-lines=false leaves them out"`
	MinCoverage float64 `set:"min-coverage" def:"0" usage:"retry a product once with another seed when its coverage is below this,\n\tthen keep the better attempt and flag it (low_coverage) if still below; 0 = off"`
	RetryErrors bool    `set:"retry-errors" usage:"redo products whose record in the output has an error"`
	FailFast    bool    `set:"fail-fast" usage:"stop at the first product that fails instead of recording the error"`
}

// Validate checks every value without touching a file.
func (p *RewriteParams) Validate() error {
	switch {
	case p.Model == "":
		return badf("model", "required")
	case p.Examples == "":
		return badf("examples", "required")
	case p.Parallel < 1 || p.Parallel > 256:
		return badf("parallel", "%d: want 1 to 256", p.Parallel)
	case p.MaxTokens < 1:
		return badf("max-tokens", "%d: want at least 1", p.MaxTokens)
	case p.Ctx < 0:
		return badf("ctx", "%d: want 0 (auto) or a positive count", p.Ctx)
	case p.Batch < p.Parallel:
		return badf("batch", "%d is smaller than parallel %d: each slot needs a token per step", p.Batch, p.Parallel)
	case p.Temperature < 0:
		return badf("temperature", "%g: want >= 0", p.Temperature)
	case p.MinCoverage < 0 || p.MinCoverage > 1:
		return badf("min-coverage", "%g: want a fraction in [0, 1]", p.MinCoverage)
	}
	if err := p.sampling().Validate(); err != nil {
		return badf("sampling", "%v", err)
	}
	return nil
}

func (p *RewriteParams) sampling() llamacpp.SamplerParams {
	return llamacpp.SamplerParams{
		Temperature: float32(p.Temperature), TopK: p.TopK, TopP: float32(p.TopP), MinP: float32(p.MinP),
		RepeatPenalty: float32(p.RepeatPen),
	}
}

// rewriteRecordParams is what every rewrite record says about how it was made.
type rewriteRecordParams struct {
	Temperature   float32 `json:"temperature"`
	TopK          int     `json:"top_k"`
	TopP          float32 `json:"top_p"`
	MinP          float32 `json:"min_p"`
	RepeatPenalty float32 `json:"repeat_penalty"`
	Seed          uint64  `json:"seed"`
	MaxTokens     int     `json:"max_tokens"`
	Ctx           int     `json:"ctx"` // as set: 0 = automatic
	Examples      int     `json:"examples"`
	DateLines     bool    `json:"date_lines"`
	MinCoverage   float64 `json:"min_coverage"`
}

// RewriteRecord is one line of a rewrite output (docs/dataset.md).
type RewriteRecord struct {
	ID           string              `json:"id"`
	Keywords     []string            `json:"keywords"`
	Images       []string            `json:"images"`
	Text         *string             `json:"text,omitempty"` // absent on error records only
	Model        string              `json:"model"`
	Params       rewriteRecordParams `json:"params"`
	ItemSeed     uint32              `json:"item_seed"` // the sampler's seed for the kept attempt
	Ctx          int                 `json:"ctx"`       // positions per product used
	PromptTokens int                 `json:"prompt_tokens"`
	GenTokens    int                 `json:"gen_tokens"`
	MS           int64               `json:"ms"`
	FinishReason string              `json:"finish_reason,omitempty"`
	// Coverage is the fraction of keywords whose content words appear in the text
	// (absent when no keyword has a content word).
	Coverage *float64 `json:"coverage,omitempty"`
	Missing  []string `json:"missing_keywords,omitempty"`
	Attempts int      `json:"attempts,omitempty"`
	// LowCoverage: still below min-coverage after the retry.
	LowCoverage bool       `json:"low_coverage,omitempty"`
	Error       string     `json:"error,omitempty"`
	Provenance  Provenance `json:"provenance"`
}

// Rewrite turns the keyword lists of a manifest's products into sentence descriptions
// with an instruction-tuned LLM (llama.cpp) and few-shot style examples.
type Rewrite struct {
	Params RewriteParams
	In     string // product manifest with keywords
	Out    string
	Shard  dataset.Shard
}

func (s *Rewrite) Name() string { return "rewrite" }

func (s *Rewrite) Outputs() []string { return []string{s.Out} }

func (s *Rewrite) Publication() Publication {
	return Publication{Name: "rewritten", Input: s.In, Output: s.Out, Text: "text"}
}

// Check reads the manifest, the examples and the system file, loads the model's
// vocabulary and chat template (not its weights), builds the shared prompt, and checks
// that the output was not made with other settings.
func (s *Rewrite) Check(env *Env) error {
	p := &s.Params
	if err := p.Validate(); err != nil {
		return err
	}
	if filepath.Clean(s.In) == filepath.Clean(s.Out) {
		return fmt.Errorf("rewrite: the output is the manifest %s", s.In)
	}
	if _, err := dataset.ReadManifest(s.In); err != nil {
		return fmt.Errorf("rewrite: in: %w", err)
	}
	for _, f := range []struct{ key, path string }{{"model", p.Model}, {"examples", p.Examples}, {"system-file", p.SystemFile}} {
		if f.path != "" && !env.Pending(f.path) {
			if err := exists(s.Name(), f.key, f.path, false); err != nil {
				return err
			}
		}
	}
	if env.Pending(p.Examples) || env.Pending(p.SystemFile) {
		return nil
	}
	ex, system, err := s.readPrompt()
	if err != nil {
		return err
	}
	m, err := llamacpp.LoadModel(p.Model, llamacpp.ModelParams{VocabOnly: true})
	if err != nil {
		return fmt.Errorf("rewrite: model: %w", err)
	}
	defer m.Close()
	if _, err := llm.NewPrompter(m, llm.PromptConfig{System: system, Examples: ex, DateLines: p.DateLines}); err != nil {
		return fmt.Errorf("rewrite: %w", err)
	}
	prov, rp, err := s.provenance(env, len(ex))
	if err != nil {
		return err
	}
	_, _, err = staleRecords(s.Name(), s.Out, prov, rp, env.Force)
	return err
}

func (s *Rewrite) readPrompt() ([]llm.Example, string, error) {
	ex, err := llm.ReadExamples(s.Params.Examples)
	if err != nil {
		return nil, "", fmt.Errorf("rewrite: examples: %w", err)
	}
	if s.Params.SystemFile == "" {
		return ex, "", nil
	}
	data, err := os.ReadFile(s.Params.SystemFile)
	if err != nil {
		return nil, "", fmt.Errorf("rewrite: system-file: %w", err)
	}
	system := strings.TrimSpace(string(data))
	if system == "" {
		return nil, "", fmt.Errorf("rewrite: system-file %s is empty", s.Params.SystemFile)
	}
	return ex, system, nil
}

func (s *Rewrite) provenance(env *Env, examples int) (Provenance, rewriteRecordParams, error) {
	p := &s.Params
	sp := p.sampling()
	rp := rewriteRecordParams{
		Temperature: sp.Temperature, TopK: sp.TopK, TopP: sp.TopP, MinP: sp.MinP, RepeatPenalty: sp.RepeatPenalty,
		Seed: p.Seed, MaxTokens: p.MaxTokens, Ctx: p.Ctx, Examples: examples, DateLines: p.DateLines, MinCoverage: p.MinCoverage,
	}
	models, err := env.hashes(s.Name(), [2]string{"model", p.Model}, [2]string{"examples", p.Examples}, [2]string{"system", p.SystemFile})
	if err != nil {
		return Provenance{}, rp, err
	}
	return NewProvenance(s.Name(), env.Version, models, rp), rp, nil
}

// rewriteItem is a product in flight, carried through the generator as the Tag.
type rewriteItem struct {
	p       dataset.Product
	suffix  []llamacpp.Token
	attempt int
	first   *llm.Result // the first attempt, kept while the retry runs
}

// Run writes a description for every product of the shard the output does not hold.
func (s *Rewrite) Run(ctx context.Context, env *Env) (Status, error) {
	p := &s.Params
	log := env.log()
	st := Status{Step: s.Name(), Output: s.Out}
	man, err := dataset.ReadManifest(s.In)
	if err != nil {
		return st, fmt.Errorf("rewrite: in: %w", err)
	}
	examples, system, err := s.readPrompt()
	if err != nil {
		return st, err
	}
	prov, rp, err := s.provenance(env, len(examples))
	if err != nil {
		return st, err
	}
	out, err := env.openOutput(s.Name(), s.Out, dataset.KeyFields("id"), prov, rp, p.RetryErrors)
	if err != nil {
		return st, err
	}
	defer out.Close()
	var todo []dataset.Product
	for _, pr := range man.Products {
		if s.Shard.Has(pr.ID) {
			st.Items++
			if !out.Done(pr.ID) {
				todo = append(todo, pr)
			}
		}
	}
	if len(todo) == 0 {
		log.Info("rewrite: complete, nothing to do", "out", s.Out, "products", st.Items, "shard", s.Shard.String(), "fingerprint", prov.Fingerprint)
		st.Records, st.Failed = out.Len(), out.Errors()
		return st, out.Close()
	}

	model, err := llamacpp.LoadModel(p.Model, llamacpp.ModelParams{GPULayers: p.GPULayers})
	if err != nil {
		return st, fmt.Errorf("rewrite: model: %w", err)
	}
	defer model.Close()
	prompter, err := llm.NewPrompter(model, llm.PromptConfig{System: system, Examples: examples, DateLines: p.DateLines})
	if err != nil {
		return st, fmt.Errorf("rewrite: %w", err)
	}
	prefix := prompter.Prefix()
	ctxPerSeq := p.Ctx
	if ctxPerSeq == 0 {
		ctxPerSeq = min(len(prefix)+1024+p.MaxTokens, model.NCtxTrain())
	} else if ctxPerSeq > model.NCtxTrain() {
		log.Warn("rewrite: ctx is beyond the model's training context; quality may drop past it", "ctx", ctxPerSeq, "n_ctx_train", model.NCtxTrain())
	}
	r := &rewriter{
		p: p, out: out, prompter: prompter, modelName: filepath.Base(p.Model), ctxPerSeq: ctxPerSeq,
		rp: rp, prov: prov, finish: map[string]int{}, task: env.Progress.Start("rewrite", "products", len(todo)),
	}
	start := time.Now()
	gen, err := llm.NewGenerator(model, prefix, llm.Options{
		Parallel: p.Parallel, MaxTokens: p.MaxTokens, CtxPerSeq: ctxPerSeq, NBatch: p.Batch,
		Threads: env.Threads, Sampling: p.sampling(),
		OnStep: func(gs llm.Stats) {
			r.task.Note(fmt.Sprintf("%.1f tokens/s", float64(gs.GenTokens)/time.Since(start).Seconds()))
		},
	})
	if err != nil {
		return st, fmt.Errorf("rewrite: %w", err)
	}
	defer gen.Close()
	log.Info("rewrite", "to_do", len(todo), "already_done", st.Items-len(todo), "out", s.Out, "model", model.Desc(),
		"parallel", p.Parallel, "prefix_tokens", len(prefix), "examples", len(examples), "ctx", ctxPerSeq, "fingerprint", prov.Fingerprint)

	runErr := gen.Run(ctx, r.next(prepare(ctx, prompter, todo)), r.emit)
	r.task.End()
	r.summary(log, gen.Stats(), time.Since(start))
	st.Ran = true
	if runErr == nil {
		runErr = r.fatal
	}
	if runErr != nil {
		if errors.Is(runErr, context.Canceled) {
			done, _ := r.task.Counts()
			return st, fmt.Errorf("rewrite: interrupted after %d of %d products; rerun the same command to resume: %w", done, len(todo), runErr)
		}
		return st, fmt.Errorf("rewrite: %w", runErr)
	}
	st.Records, st.Failed = out.Len(), out.Errors()
	return st, out.Close()
}

// prepared is a product with its prompt tokens, or the reason it has none.
type prepared struct {
	item *rewriteItem
	err  error
}

// prepare tokenizes the products' prompts ahead of the generator, in manifest order, so
// that a free slot does not wait for the tokenizer.
func prepare(ctx context.Context, p *llm.Prompter, todo []dataset.Product) <-chan prepared {
	ch := make(chan prepared, 64)
	go func() {
		defer close(ch)
		for _, prod := range todo {
			suffix, err := p.Suffix(llm.Item{Keywords: prod.Keywords, Category: prod.Category, Title: prod.Title})
			select {
			case ch <- prepared{item: &rewriteItem{p: prod, suffix: suffix}, err: err}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}

type rewriter struct {
	p         *RewriteParams
	out       *dataset.Output
	prompter  *llm.Prompter
	modelName string
	ctxPerSeq int
	rp        rewriteRecordParams
	prov      Provenance
	task      *progress.Task

	retries []*rewriteItem // items to run again with another seed, before new ones
	fatal   error          // what stopped next() from feeding the generator

	done, failed, retried, flagged int
	firstErr                       string
	finish                         map[string]int
	covSum                         float64
	covN                           int
}

func (r *rewriter) request(it *rewriteItem) llm.Request {
	return llm.Request{ID: it.p.ID, Suffix: it.suffix, Seed: llm.ItemSeed(r.p.Seed, it.p.ID, it.attempt), Tag: it}
}

// next feeds the generator: retries first, then prepared products; a product whose
// prompt could not be built is recorded as failed here.
func (r *rewriter) next(items <-chan prepared) func() (llm.Request, bool) {
	return func() (llm.Request, bool) {
		if n := len(r.retries); n > 0 {
			it := r.retries[0]
			r.retries = r.retries[1:]
			return r.request(it), true
		}
		for pr := range items {
			if pr.err == nil {
				return r.request(pr.item), true
			}
			if err := r.write(pr.item, nil, pr.err); err != nil {
				r.fatal = err
				return llm.Request{}, false
			}
		}
		return llm.Request{}, false
	}
}

func (r *rewriter) emit(res llm.Result) error {
	it := res.Req.Tag.(*rewriteItem)
	if res.Err != nil {
		return r.write(it, &res, res.Err)
	}
	cov, _, ok := llm.Coverage(it.p.Keywords, res.Text)
	if r.p.MinCoverage > 0 && ok && cov < r.p.MinCoverage && it.attempt == 0 {
		r.retried++
		first := res
		r.retries = append(r.retries, &rewriteItem{p: it.p, suffix: it.suffix, attempt: 1, first: &first})
		return nil
	}
	if it.first != nil {
		// Keep the better attempt; a tie keeps the first, which ran with the plain seed.
		prev, _, _ := llm.Coverage(it.p.Keywords, it.first.Text)
		if prev >= cov {
			res = *it.first
			res.Req.Tag = it
		}
	}
	return r.write(it, &res, nil)
}

// write records one product: its result (res may be nil when the prompt failed) or err.
func (r *rewriter) write(it *rewriteItem, res *llm.Result, err error) error {
	rec := RewriteRecord{
		ID: it.p.ID, Keywords: it.p.Keywords, Images: it.p.Images, Model: r.modelName, Attempts: it.attempt + 1,
		Params: r.rp, ItemSeed: llm.ItemSeed(r.p.Seed, it.p.ID, it.attempt), Ctx: r.ctxPerSeq, Provenance: r.prov,
	}
	if rec.Keywords == nil {
		rec.Keywords = []string{}
	}
	if rec.Images == nil {
		rec.Images = []string{}
	}
	if res != nil {
		rec.PromptTokens = res.PromptTokens
		rec.ItemSeed = res.Req.Seed // the kept attempt's
	}
	r.done++
	if err != nil {
		r.failed++
		rec.Error = err.Error()
		if r.firstErr == "" {
			r.firstErr = fmt.Sprintf("product %s: %s", it.p.ID, rec.Error)
		}
		r.task.Fail(1)
	} else {
		rec.Text = &res.Text
		rec.GenTokens = len(res.Tokens)
		rec.MS = res.Duration.Milliseconds()
		rec.FinishReason = res.Finish
		r.finish[res.Finish]++
		if cov, missing, ok := llm.Coverage(it.p.Keywords, res.Text); ok {
			rec.Coverage = &cov
			rec.Missing = missing
			r.covSum += cov
			r.covN++
			if r.p.MinCoverage > 0 && cov < r.p.MinCoverage {
				rec.LowCoverage = true
				r.flagged++
			}
		}
		r.task.Add(1)
	}
	if werr := r.out.Write(it.p.ID, rec); werr != nil {
		return werr
	}
	if err != nil && r.p.FailFast {
		return fmt.Errorf("product %s: %w (fail-fast)", it.p.ID, err)
	}
	return nil
}

// summary logs what the run did: rates, finish reasons, coverage, where time went.
func (r *rewriter) summary(log *slog.Logger, st llm.Stats, el time.Duration) {
	var reasons []string
	for k, v := range r.finish {
		reasons = append(reasons, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(reasons)
	attrs := []any{"products", r.done, "failed", r.failed, "took", el.Round(time.Millisecond),
		"products_per_s", fmt.Sprintf("%.2f", float64(r.done)/el.Seconds()),
		"tokens_per_s", fmt.Sprintf("%.1f", float64(st.GenTokens)/el.Seconds()),
		"finish", strings.Join(reasons, ", "),
		"prefix_tokens_avoided", st.PrefixAvoided,
		"decode_share", fmt.Sprintf("%.0f%%", 100*st.DecodeTime.Seconds()/el.Seconds()),
		"sample_share", fmt.Sprintf("%.0f%%", 100*st.SampleTime.Seconds()/el.Seconds()),
	}
	if r.covN > 0 {
		attrs = append(attrs, "coverage_mean", fmt.Sprintf("%.3f", r.covSum/float64(r.covN)))
		if r.p.MinCoverage > 0 {
			attrs = append(attrs, "retried", r.retried, "low_coverage", r.flagged)
		}
	}
	if r.failed > 0 {
		attrs = append(attrs, "first_failure", r.firstErr)
	}
	log.Info("rewrite summary", attrs...)
}

func (s *Rewrite) models() []string { return nonEmpty(s.Params.Model) }
