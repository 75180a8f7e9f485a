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

// The LLM commands (rewrite, translate) share the engine (llm.Generator + llm.RunJob),
// their generation flags, and the progress and summary lines printed here.

// genConfig holds the flags every LLM command has.
type genConfig struct {
	modelPath, in, out, systemFile             string
	parallel, maxTokens, ctx, batch, gpuLayers int
	sampling                                   llamacpp.SamplerParams
	seed                                       uint64
	shard                                      dataset.Shard
	dateLines, retryErrors, failFast, quiet    bool
	threads                                    int
}

// generationFlags are the flags of every LLM command; maxTokens and temperature are the
// command's defaults.
func generationFlags(maxTokens int, temperature float64) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "model", Usage: "GGUF model file (e.g. Llama-3.1-8B-Instruct Q4_0)", Required: true},
		&cli.StringFlag{Name: "in", Usage: "product manifest (JSONL, one product a line with its id)", Required: true},
		&cli.StringFlag{Name: "out", Usage: "output JSONL (appended to; resumable)", Required: true},
		&cli.IntFlag{Name: "parallel", Value: 8, Usage: "products generated together (KV sequences)"},
		&cli.IntFlag{Name: "max-tokens", Value: maxTokens, Usage: "most tokens generated per product (per field for translate)"},
		&cli.Float64Flag{Name: "temperature", Value: temperature, Usage: "sampling temperature; 0 = greedy"},
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
		&cli.StringFlag{Name: "shard", Usage: "only the products of shard i/n (hash of the id), e.g. 0/4"},
		&cli.BoolFlag{Name: "retry-errors", Usage: "redo products whose record in --out has an error"},
		&cli.BoolFlag{Name: "fail-fast", Usage: "stop at the first product that fails instead of recording the error"},
		&cli.BoolFlag{Name: "quiet", Usage: "no progress lines (the final summary is still printed)"},
	}
}

func parseGenerationFlags(c *cli.Context, name string) (genConfig, error) {
	if c.Args().Present() {
		return genConfig{}, usageErrorf("%s takes no arguments, got %q", name, c.Args().Slice())
	}
	cfg := genConfig{
		modelPath: c.String("model"), in: c.String("in"), out: c.String("out"), systemFile: c.String("system-file"),
		parallel: c.Int("parallel"), maxTokens: c.Int("max-tokens"), ctx: c.Int("ctx"), batch: c.Int("batch"),
		gpuLayers: c.Int("gpu-layers"),
		sampling: llamacpp.SamplerParams{
			Temperature:   float32(c.Float64("temperature")),
			TopK:          c.Int("top-k"),
			TopP:          float32(c.Float64("top-p")),
			MinP:          float32(c.Float64("min-p")),
			RepeatPenalty: float32(c.Float64("repeat-penalty")),
		},
		seed:      c.Uint64("seed"),
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

// minScoreFlag checks a --min-coverage / --min-faithful value.
func minScoreFlag(c *cli.Context, name string) (float64, error) {
	v := c.Float64(name)
	if math.IsNaN(v) || v < 0 || v > 1 {
		return 0, usageErrorf("--%s %g: want a fraction in [0, 1]", name, v)
	}
	return v, nil
}

// systemInstruction reads --system-file ("" when not given).
func (cfg genConfig) systemInstruction(name string) (string, error) {
	if cfg.systemFile == "" {
		return "", nil
	}
	data, err := os.ReadFile(cfg.systemFile)
	if err != nil {
		return "", fmt.Errorf("%s: system instruction: %w", name, err)
	}
	s := strings.TrimSpace(string(data))
	if s == "" {
		return "", fmt.Errorf("%s: system instruction %s is empty", name, cfg.systemFile)
	}
	return s, nil
}

// jobRecorder is a command's side of an LLM job (llm.Rewriter, llm.Translator).
type jobRecorder interface {
	llm.Recorder
	Prefix() []llamacpp.Token
	SetContext(ctxPerSeq int)
	Task(p dataset.Product) *llm.Task
}

// llmJob describes one LLM command's run to runLLMJob.
type llmJob struct {
	name string // the command, which starts every line it prints
	cfg  genConfig
	// recorder builds the command's prompt and records on the loaded model for the
	// manifest's products; describe says what the prompt holds, for the first line.
	recorder func(m *llamacpp.Model, man *dataset.Manifest) (rec jobRecorder, describe string, err error)
	minScore float64
	// score names the score in the summary ("keyword coverage") and what it is counted
	// over ("products"), lowField the record's flag of a part still below minScore.
	score, scoredOver, lowField string
}

// runLLMJob is the run both LLM commands share: the products of the manifest's shard
// not yet in the output go through the generator in parallel slots after one shared
// prefix; progress every 2 s and a summary go to stderr.
func runLLMJob(c *cli.Context, j llmJob) error {
	cfg := j.cfg
	stderr := c.App.ErrWriter
	man, err := dataset.ReadManifest(cfg.in)
	if err != nil {
		return err
	}
	out, err := dataset.OpenOutput(cfg.out, dataset.OutputOptions{RetryErrors: cfg.retryErrors})
	if err != nil {
		return err
	}
	defer out.Close()
	var todo []dataset.Product
	inShard := 0
	for _, p := range man.Products {
		if cfg.shard.Has(p.ID) {
			inShard++
			if !out.Done(p.ID) {
				todo = append(todo, p)
			}
		}
	}
	if len(todo) == 0 {
		fmt.Fprintf(stderr, "%s: nothing to do: all %d products of shard %s are in %s\n", j.name, inShard, cfg.shard, cfg.out)
		return out.Close()
	}

	if gap := llamaSIMDGap(native.CPUFeatures().Features, llamacpp.CPUFeatures()); gap != "" {
		slog.Warn(j.name + ": " + gap + ": generation will be several times slower")
	}
	model, err := llamacpp.LoadModel(cfg.modelPath, llamacpp.ModelParams{GPULayers: cfg.gpuLayers})
	if err != nil {
		return err
	}
	defer model.Close()
	rec, describe, err := j.recorder(model, man)
	if err != nil {
		return err
	}
	prefix := rec.Prefix()
	ctxPerSeq, beyond := llm.ContextPerSeq(cfg.ctx, len(prefix), cfg.maxTokens, model.NCtxTrain())
	if beyond {
		slog.Warn(j.name+": --ctx is beyond the model's training context; quality may drop past it", "ctx", ctxPerSeq, "n_ctx_train", model.NCtxTrain())
	}
	rec.SetContext(ctxPerSeq)
	gen, err := llm.NewGenerator(model, prefix, llm.Options{
		Parallel: cfg.parallel, MaxTokens: cfg.maxTokens, CtxPerSeq: ctxPerSeq, NBatch: cfg.batch,
		Threads: cfg.threads, Sampling: cfg.sampling,
	})
	if err != nil {
		return err
	}
	defer gen.Close()
	if !cfg.quiet {
		fmt.Fprintf(stderr, "%s: %d products to do (%d already in %s), %s, parallel %d, shared prefix %d tokens (%s), context %d per product\n",
			j.name, len(todo), inShard-len(todo), cfg.out, model.Desc(), cfg.parallel, len(prefix), describe, ctxPerSeq)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep := &jobReport{job: j, w: stderr, last: time.Now()}
	tasks := llm.Prepare(ctx, len(todo), func(i int) *llm.Task { return rec.Task(todo[i]) })
	st, runErr := llm.RunJob(ctx, gen, out, tasks, len(todo), llm.JobOptions{
		Recorder: rec, Seed: cfg.seed, MinScore: j.minScore, FailFast: cfg.failFast, Progress: rep.progress,
	})
	rep.summary(st)
	if runErr != nil {
		if errors.Is(runErr, context.Canceled) {
			return fmt.Errorf("%s: interrupted after %d of %d products; rerun the same command to resume", j.name, st.Done, st.Total)
		}
		return fmt.Errorf("%s: %w", j.name, runErr)
	}
	return out.Close()
}

// jobReport prints an LLM job's progress and summary lines.
type jobReport struct {
	job  llmJob
	w    io.Writer
	last time.Time
}

// progress prints a progress line at most every 2 s.
func (r *jobReport) progress(st llm.JobStats) {
	if r.job.cfg.quiet || time.Since(r.last) < 2*time.Second {
		return
	}
	r.last = time.Now()
	el := st.Elapsed.Seconds()
	pps := float64(st.Done) / el
	eta := "?"
	if pps > 0 {
		eta = (time.Duration(float64(st.Total-st.Done)/pps) * time.Second).Round(time.Second).String()
	}
	fmt.Fprintf(r.w, "%s: %d/%d products (%.1f%%), %.2f products/s, %.1f tokens/s, %d failed, ETA %s\n",
		r.job.name, st.Done, st.Total, 100*float64(st.Done)/float64(st.Total), pps, float64(st.Gen.GenTokens)/el, st.Failed, eta)
}

func (r *jobReport) summary(st llm.JobStats) {
	name, w, el := r.job.name, r.w, st.Elapsed
	fmt.Fprintf(w, "%s: %d products written (%d failed) in %s: %.2f products/s, %.1f generated tokens/s\n",
		name, st.Done, st.Failed, el.Round(time.Millisecond), float64(st.Done)/el.Seconds(), float64(st.Gen.GenTokens)/el.Seconds())
	var reasons []string
	for k, v := range st.Finish {
		reasons = append(reasons, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(reasons)
	if len(reasons) > 0 {
		fmt.Fprintf(w, "%s: finish reasons: %s\n", name, strings.Join(reasons, ", "))
	}
	if st.Scored > 0 {
		fmt.Fprintf(w, "%s: %s: mean %.3f over %d %s", name, r.job.score, st.ScoreSum/float64(st.Scored), st.Scored, r.job.scoredOver)
		if r.job.minScore > 0 {
			fmt.Fprintf(w, "; %d retried below %.2f, %d still below (%s)", st.Retried, r.job.minScore, st.Low, r.job.lowField)
			if st.RetriesDisabled {
				fmt.Fprintf(w, "; no retries at --temperature 0, where another seed gives the same text")
			}
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "%s: shared prefix of %d tokens decoded once: %d prefill tokens avoided over %d generations\n",
		name, st.Gen.PrefixTokens, st.Gen.PrefixAvoided, st.Gen.Products)
	if el > 0 {
		fmt.Fprintf(w, "%s: time: %.0f%% in llama_decode (%d calls), %.0f%% sampling\n",
			name, 100*st.Gen.DecodeTime.Seconds()/el.Seconds(), st.Gen.DecodeCalls, 100*st.Gen.SampleTime.Seconds()/el.Seconds())
	}
	if st.Failed > 0 {
		fmt.Fprintf(w, "%s: first failure: product %s\n", name, st.FirstError)
	}
}

// modelName is what records call the model: its file name.
func modelName(path string) string { return filepath.Base(path) }
