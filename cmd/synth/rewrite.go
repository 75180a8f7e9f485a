package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"synth/dataset"
	"synth/llm"
	"synth/llm/llamacpp"
	"synth/native"
)

// rewriteRecord is one line of `synth rewrite`'s output; field names are stable.
type rewriteRecord struct {
	ID           string        `json:"id"`
	Keywords     []string      `json:"keywords"`
	Text         *string       `json:"text,omitempty"` // absent on error records only
	Model        string        `json:"model"`
	Params       rewriteParams `json:"params"`
	PromptTokens int           `json:"prompt_tokens"`
	GenTokens    int           `json:"gen_tokens"`
	MS           int64         `json:"ms"`
	FinishReason string        `json:"finish_reason,omitempty"`
	// Coverage is the fraction of keywords whose content words appear in the text
	// (absent when no keyword has a content word).
	Coverage *float64 `json:"coverage,omitempty"`
	Missing  []string `json:"missing_keywords,omitempty"`
	Attempts int      `json:"attempts,omitempty"`
	// LowCoverage: still below --min-coverage after the retry.
	LowCoverage bool   `json:"low_coverage,omitempty"`
	Error       string `json:"error,omitempty"`
}

type rewriteParams struct {
	Temperature   float32 `json:"temperature"`
	TopK          int     `json:"top_k"`
	TopP          float32 `json:"top_p"`
	MinP          float32 `json:"min_p"`
	RepeatPenalty float32 `json:"repeat_penalty"`
	Seed          uint64  `json:"seed"`      // --seed
	ItemSeed      uint32  `json:"item_seed"` // the sampler's seed for this product and attempt
	MaxTokens     int     `json:"max_tokens"`
	Ctx           int     `json:"ctx"`
	Examples      int     `json:"examples"`
}

func rewriteCommand() *cli.Command {
	return &cli.Command{
		Name:      "rewrite",
		Usage:     "turn product keyword lists into long sentence descriptions with Llama 3.1 (llama.cpp)",
		UsageText: "synth rewrite --model FILE.gguf --examples STYLE.jsonl --in MANIFEST.jsonl --out OUT.jsonl [options]",
		Description: "Step 2 of the paper: an instruction-tuned Llama (any GGUF quant) writes a description\n" +
			"of each product of the manifest from its keywords (and category/title when present),\n" +
			"in the style of the few-shot examples. The prompt is a system instruction + the\n" +
			"examples as user/assistant turns + the product's turn, formatted with the chat\n" +
			"template in the GGUF. System turn and examples are decoded once and shared by all\n" +
			"--parallel slots; the slots decode together, one llama_decode per step, and a slot\n" +
			"that finishes takes the next product at once.\n\n" +
			"STYLE.jsonl: one {\"keywords\": [\"blue jeans\", \"cotton\"] or \"blue jeans, cotton\",\n" +
			"\"text\": \"...\"} a line.\n\n" +
			"Output: one JSON record per product {id, keywords, text, model, params, prompt_tokens,\n" +
			"gen_tokens, ms, finish_reason (stop|length|context), coverage, ...} or {..., error}.\n" +
			"coverage is the fraction of keywords whose words appear in the text (a lexical check).\n" +
			"The run is resumable: rerun the same command after a kill and done products are\n" +
			"skipped (--retry-errors redoes failed ones). Progress goes to stderr.\n\n" +
			"Reproducibility: each product's sampler seed comes from --seed and its id, not its\n" +
			"slot. The same command gives the same texts, but --parallel 1 and --parallel 3 do\n" +
			"not: llama.cpp decodes the slots' tokens as one batch, and the batch's shape changes\n" +
			"the order of its floating-point sums, so logits differ in the last bits and a\n" +
			"sampled token, and the text after it, can differ (docs/sharding.md).",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Usage: "GGUF model file (e.g. Llama-3.1-8B-Instruct Q4_0)", Required: true},
			&cli.StringFlag{Name: "examples", Usage: "few-shot style examples, JSONL {keywords, text}", Required: true},
			&cli.StringFlag{Name: "in", Usage: "product manifest (JSONL with id and keywords)", Required: true},
			&cli.StringFlag{Name: "out", Usage: "output JSONL (appended to; resumable)", Required: true},
			&cli.IntFlag{Name: "parallel", Value: 8, Usage: "products generated together (KV sequences)"},
			&cli.IntFlag{Name: "max-tokens", Value: 256, Usage: "most tokens generated per product"},
			&cli.Float64Flag{Name: "temperature", Value: 0.6, Usage: "sampling temperature; 0 = greedy (Llama 3.1's default 0.6)"},
			&cli.IntFlag{Name: "top-k", Value: 40, Usage: "keep the k most likely tokens; 0 = off (then top-p sorts the whole\n\tvocabulary every token: about 100x slower sampling over Llama 3's 128K tokens)"},
			&cli.Float64Flag{Name: "top-p", Value: 0.9, Usage: "nucleus sampling; 1 = off (Llama 3.1's default 0.9)"},
			&cli.Float64Flag{Name: "min-p", Value: 0, Usage: "drop tokens below p x the best one's probability; 0 = off"},
			&cli.Float64Flag{Name: "repeat-penalty", Value: 1, Usage: "penalty for tokens among the last 64 generated; 1 = off"},
			&cli.Uint64Flag{Name: "seed", Value: 0, Usage: "run seed; each product's sampler seed is derived from it and the product id"},
			&cli.IntFlag{Name: "ctx", Value: 0, Usage: "positions per product: shared prefix + product prompt + generation\n\t(0 = prefix + 1024 + --max-tokens, at most the model's training context)"},
			&cli.IntFlag{Name: "batch", Value: 512, Usage: "most tokens per llama_decode (llama.cpp n_batch)"},
			&cli.IntFlag{Name: "gpu-layers", Value: 0, Usage: "layers to offload to a GPU (-1 = all). The pinned llama.cpp is built CPU-only and\n\tignores this unless $SYNTH_GGML_BACKENDS names a GPU backend module built by CMakeLists.txt\n\t('synth doctor' shows 'llama.cpp GPU: yes' then; see README)"},
			&cli.StringFlag{Name: "system-file", Usage: "file with the system instruction to use instead of the built-in one"},
			&cli.BoolFlag{Name: "date-lines", Value: true, Usage: "put the template's 'Cutting Knowledge Date / Today Date' lines in the system\n\tturn as HF transformers renders Llama 3.1 (llama.cpp's formatter leaves them out);\n\t--date-lines=false leaves them out"},
			&cli.Float64Flag{Name: "min-coverage", Value: 0, Usage: "retry a product once with another seed when its coverage is below this,\n\tthen keep the better attempt and flag it (low_coverage) if still below; 0 = off"},
			&cli.StringFlag{Name: "shard", Usage: "only the products of shard i/n (hash of the id), e.g. 0/4"},
			&cli.BoolFlag{Name: "retry-errors", Usage: "redo products whose record in --out has an error"},
			&cli.BoolFlag{Name: "fail-fast", Usage: "stop at the first product that fails instead of recording the error"},
			&cli.BoolFlag{Name: "quiet", Usage: "no progress lines (the final summary is still printed)"},
		},
		Action: rewriteAction,
	}
}

type rewriteConfig struct {
	modelPath, examplesPath, in, out, systemFile string
	parallel, maxTokens, ctx, batch, gpuLayers   int
	sampling                                     llamacpp.SamplerParams
	seed                                         uint64
	minCoverage                                  float64
	shard                                        dataset.Shard
	dateLines, retryErrors, failFast, quiet      bool
	threads                                      int
}

func parseRewriteFlags(c *cli.Context) (rewriteConfig, error) {
	if c.Args().Present() {
		return rewriteConfig{}, usageErrorf("rewrite takes no arguments, got %q", c.Args().Slice())
	}
	cfg := rewriteConfig{
		modelPath: c.String("model"), examplesPath: c.String("examples"), in: c.String("in"), out: c.String("out"),
		systemFile: c.String("system-file"),
		parallel:   c.Int("parallel"), maxTokens: c.Int("max-tokens"), ctx: c.Int("ctx"), batch: c.Int("batch"),
		gpuLayers: c.Int("gpu-layers"),
		sampling: llamacpp.SamplerParams{
			Temperature:   float32(c.Float64("temperature")),
			TopK:          c.Int("top-k"),
			TopP:          float32(c.Float64("top-p")),
			MinP:          float32(c.Float64("min-p")),
			RepeatPenalty: float32(c.Float64("repeat-penalty")),
		},
		seed: c.Uint64("seed"), minCoverage: c.Float64("min-coverage"),
		dateLines: c.Bool("date-lines"), retryErrors: c.Bool("retry-errors"), failFast: c.Bool("fail-fast"),
		quiet: c.Bool("quiet"), threads: threads(c),
	}
	for _, b := range []struct {
		name   string
		lo, hi int
	}{{"parallel", 1, 256}, {"max-tokens", 1, maxLLMCtx}, {"ctx", 0, maxLLMCtx}, {"batch", 1, maxLLMCtx}} {
		if _, err := intInRange(c, b.name, b.lo, b.hi); err != nil {
			return cfg, err
		}
	}
	switch {
	case cfg.ctx*cfg.parallel > maxLLMTokens:
		return cfg, usageErrorf("--ctx %d x --parallel %d = %d positions in one context: want at most %d", cfg.ctx, cfg.parallel, cfg.ctx*cfg.parallel, maxLLMTokens)
	case !(c.Float64("repeat-penalty") > 0):
		// llama.cpp divides logits by it: 0 made them infinite (1 is off)
		return cfg, usageErrorf("--repeat-penalty %g: want a positive number (1: off)", c.Float64("repeat-penalty"))
	case cfg.batch < cfg.parallel:
		return cfg, usageErrorf("--batch %d is smaller than --parallel %d: each slot needs a token per step", cfg.batch, cfg.parallel)
	case c.Float64("temperature") < 0 || math.IsNaN(c.Float64("temperature")):
		return cfg, usageErrorf("--temperature %g: want >= 0", c.Float64("temperature"))
	case math.IsNaN(cfg.minCoverage) || cfg.minCoverage < 0 || cfg.minCoverage > 1:
		return cfg, usageErrorf("--min-coverage %g: want a fraction in [0, 1]", cfg.minCoverage)
	case cfg.out == cfg.in:
		return cfg, usageErrorf("--out is the manifest %s", cfg.in)
	}
	if err := cfg.sampling.Validate(); err != nil {
		return cfg, usageErrorf("%v", err)
	}
	sh, err := dataset.ParseShard(c.String("shard"))
	if err != nil {
		return cfg, usageErrorf("--shard: %v", err)
	}
	cfg.shard = sh
	return cfg, nil
}

// rewriteItem is a product in flight, carried through the generator as the Tag.
type rewriteItem struct {
	p       dataset.Product
	suffix  []llamacpp.Token
	attempt int
	first   *llm.Result // the first attempt, kept while the retry runs
}

func rewriteAction(c *cli.Context) error {
	cfg, err := parseRewriteFlags(c)
	if err != nil {
		return err
	}
	stderr := c.App.ErrWriter
	man, err := dataset.ReadManifest(cfg.in)
	if err != nil {
		return err
	}
	examples, err := llm.ReadExamples(cfg.examplesPath)
	if err != nil {
		return err
	}
	system := ""
	if cfg.systemFile != "" {
		data, err := os.ReadFile(cfg.systemFile)
		if err != nil {
			return fmt.Errorf("rewrite: system instruction: %w", err)
		}
		if system = strings.TrimSpace(string(data)); system == "" {
			return fmt.Errorf("rewrite: system instruction %s is empty", cfg.systemFile)
		}
	}
	out, err := dataset.OpenOutput(cfg.out, dataset.OutputOptions{RetryErrors: cfg.retryErrors})
	if err != nil {
		return err
	}
	defer out.Close()
	var todo []dataset.Product
	for _, p := range man.Products {
		if cfg.shard.Has(p.ID) && !out.Done(p.ID) {
			todo = append(todo, p)
		}
	}
	if len(todo) == 0 {
		fmt.Fprintf(stderr, "rewrite: nothing to do: all %d products of shard %s are in %s\n", countShard(man, cfg.shard), cfg.shard, cfg.out)
		return out.Close()
	}

	if gap := llamaSIMDGap(native.CPUFeatures().Features, llamacpp.CPUFeatures()); gap != "" {
		slog.Warn("rewrite: " + gap + ": generation will be several times slower")
	}
	model, err := llamacpp.LoadModel(cfg.modelPath, llamacpp.ModelParams{GPULayers: cfg.gpuLayers})
	if err != nil {
		return err
	}
	defer model.Close()
	prompter, err := llm.NewPrompter(model, llm.PromptConfig{System: system, Examples: examples, DateLines: cfg.dateLines})
	if err != nil {
		return err
	}
	prefix := prompter.Prefix()
	ctxPerSeq := cfg.ctx
	if ctxPerSeq == 0 {
		ctxPerSeq = min(len(prefix)+1024+cfg.maxTokens, model.NCtxTrain())
	} else if ctxPerSeq > model.NCtxTrain() {
		slog.Warn("rewrite: --ctx is beyond the model's training context; quality may drop past it", "ctx", ctxPerSeq, "n_ctx_train", model.NCtxTrain())
	}

	r := &rewriter{
		cfg: cfg, out: out, stderr: stderr, prompter: prompter, modelName: filepath.Base(cfg.modelPath),
		ctxPerSeq: ctxPerSeq, examples: len(examples), total: len(todo), start: time.Now(),
		finish: map[string]int{},
	}
	r.lastProgress = r.start
	gen, err := llm.NewGenerator(model, prefix, llm.Options{
		Parallel: cfg.parallel, MaxTokens: cfg.maxTokens, CtxPerSeq: ctxPerSeq, NBatch: cfg.batch,
		Threads: cfg.threads, Sampling: cfg.sampling, OnStep: r.progress,
	})
	if err != nil {
		return err
	}
	defer gen.Close()
	if !cfg.quiet {
		fmt.Fprintf(stderr, "rewrite: %d products to do (%d already in %s), %s, parallel %d, shared prefix %d tokens (%d examples), context %d per product\n",
			len(todo), countShard(man, cfg.shard)-len(todo), cfg.out, model.Desc(), cfg.parallel, len(prefix), len(examples), ctxPerSeq)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	items := prepare(ctx, prompter, todo)
	runErr := gen.Run(ctx, r.next(items), r.emit)
	r.summary(gen.Stats())
	if runErr == nil {
		runErr = r.fatal
	}
	if runErr != nil {
		if errors.Is(runErr, context.Canceled) {
			return fmt.Errorf("rewrite: interrupted after %d of %d products; rerun the same command to resume", r.done, r.total)
		}
		return fmt.Errorf("rewrite: %w", runErr)
	}
	return out.Close()
}

func countShard(m *dataset.Manifest, sh dataset.Shard) int {
	n := 0
	for _, p := range m.Products {
		if sh.Has(p.ID) {
			n++
		}
	}
	return n
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
	cfg       rewriteConfig
	out       *dataset.Output
	stderr    io.Writer
	prompter  *llm.Prompter
	modelName string
	ctxPerSeq int
	examples  int

	retries []*rewriteItem // items to run again with another seed, before new ones
	fatal   error          // what stopped next() from feeding the generator

	total, done, failed, retried, flagged int
	firstErr                              string
	finish                                map[string]int
	covSum                                float64
	covN                                  int
	genTokens                             int
	start, lastProgress                   time.Time
}

func (r *rewriter) request(it *rewriteItem) llm.Request {
	return llm.Request{ID: it.p.ID, Suffix: it.suffix, Seed: llm.ItemSeed(r.cfg.seed, it.p.ID, it.attempt), Tag: it}
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
	if r.cfg.minCoverage > 0 && ok && cov < r.cfg.minCoverage && it.attempt == 0 {
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
	rec := rewriteRecord{
		ID: it.p.ID, Keywords: it.p.Keywords, Model: r.modelName, Attempts: it.attempt + 1,
		Params: rewriteParams{
			Temperature: r.cfg.sampling.Temperature, TopK: r.cfg.sampling.TopK, TopP: r.cfg.sampling.TopP,
			MinP: r.cfg.sampling.MinP, RepeatPenalty: r.cfg.sampling.RepeatPenalty, Seed: r.cfg.seed,
			ItemSeed: llm.ItemSeed(r.cfg.seed, it.p.ID, it.attempt), MaxTokens: r.cfg.maxTokens,
			Ctx: r.ctxPerSeq, Examples: r.examples,
		},
	}
	if rec.Keywords == nil {
		rec.Keywords = []string{}
	}
	if res != nil {
		rec.PromptTokens = res.PromptTokens
		rec.Params.ItemSeed = res.Req.Seed // the kept attempt's
	}
	r.done++
	if err != nil {
		r.failed++
		rec.Error = err.Error()
		if r.firstErr == "" {
			r.firstErr = fmt.Sprintf("product %s: %s", it.p.ID, rec.Error)
		}
	} else {
		rec.Text = &res.Text
		rec.GenTokens = len(res.Tokens)
		rec.MS = res.Duration.Milliseconds()
		rec.FinishReason = res.Finish
		r.finish[res.Finish]++
		r.genTokens += len(res.Tokens)
		if cov, missing, ok := llm.Coverage(it.p.Keywords, res.Text); ok {
			rec.Coverage = &cov
			rec.Missing = missing
			r.covSum += cov
			r.covN++
			if r.cfg.minCoverage > 0 && cov < r.cfg.minCoverage {
				rec.LowCoverage = true
				r.flagged++
			}
		}
	}
	if werr := r.out.Write(it.p.ID, rec); werr != nil {
		return werr
	}
	if err != nil && r.cfg.failFast {
		return fmt.Errorf("product %s: %w (--fail-fast)", it.p.ID, err)
	}
	return nil
}

// progress prints a progress line at most every 2 s.
func (r *rewriter) progress(st llm.Stats) {
	if r.cfg.quiet || time.Since(r.lastProgress) < 2*time.Second {
		return
	}
	r.lastProgress = time.Now()
	el := time.Since(r.start).Seconds()
	pps := float64(r.done) / el
	eta := "?"
	if pps > 0 {
		eta = (time.Duration(float64(r.total-r.done)/pps) * time.Second).Round(time.Second).String()
	}
	fmt.Fprintf(r.stderr, "rewrite: %d/%d products (%.1f%%), %.2f products/s, %.1f tokens/s, %d failed, ETA %s\n",
		r.done, r.total, 100*float64(r.done)/float64(r.total), pps, float64(st.GenTokens)/el, r.failed, eta)
}

func (r *rewriter) summary(st llm.Stats) {
	el := time.Since(r.start)
	w := r.stderr
	fmt.Fprintf(w, "rewrite: %d products written (%d failed) in %s: %.2f products/s, %.1f generated tokens/s\n",
		r.done, r.failed, el.Round(time.Millisecond), float64(r.done)/el.Seconds(), float64(st.GenTokens)/el.Seconds())
	var reasons []string
	for k, v := range r.finish {
		reasons = append(reasons, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(reasons)
	if len(reasons) > 0 {
		fmt.Fprintf(w, "rewrite: finish reasons: %s\n", strings.Join(reasons, ", "))
	}
	if r.covN > 0 {
		fmt.Fprintf(w, "rewrite: keyword coverage: mean %.3f over %d products", r.covSum/float64(r.covN), r.covN)
		if r.cfg.minCoverage > 0 {
			fmt.Fprintf(w, "; %d retried below %.2f, %d still below (low_coverage)", r.retried, r.cfg.minCoverage, r.flagged)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "rewrite: shared prefix of %d tokens decoded once: %d prefill tokens avoided over %d generations\n",
		st.PrefixTokens, st.PrefixAvoided, st.Products)
	if el > 0 {
		fmt.Fprintf(w, "rewrite: time: %.0f%% in llama_decode (%d calls), %.0f%% sampling\n",
			100*st.DecodeTime.Seconds()/el.Seconds(), st.DecodeCalls, 100*st.SampleTime.Seconds()/el.Seconds())
	}
	if r.failed > 0 {
		fmt.Fprintf(w, "rewrite: first failure: %s\n", r.firstErr)
	}
}
