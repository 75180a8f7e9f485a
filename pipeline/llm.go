package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"synth/dataset"
	"synth/llm"
	"synth/llm/llamacpp"
	"synth/native"
)

// LLMParams are the settings every LLM step has (rewrite, translate): the model, the
// sampler, the batch engine's shape, and what to do with failures.
type LLMParams struct {
	Model       string  `set:"model" path:"1" req:"1" usage:"GGUF model file (e.g. Llama-3.1-8B-Instruct Q4_0)"`
	Parallel    int     `set:"parallel" def:"8" usage:"products generated together (KV sequences)"`
	Temperature float64 `set:"temperature" def:"0.6" usage:"sampling temperature; 0 = greedy"`
	TopK        int     `set:"top-k" def:"40" usage:"keep the k most likely tokens; 0 = off (then top-p sorts the whole\n\tvocabulary every token: about 100x slower sampling over Llama 3's 128K tokens)"`
	TopP        float64 `set:"top-p" def:"0.9" usage:"nucleus sampling; 1 = off (Llama 3.1's default 0.9)"`
	MinP        float64 `set:"min-p" def:"0" usage:"drop tokens below p x the best one's probability; 0 = off"`
	RepeatPen   float64 `set:"repeat-penalty,repetition-penalty" def:"1" usage:"penalty for tokens among the last 64 generated; 1 = off"`
	Seed        uint64  `set:"seed" def:"0" usage:"run seed; each product's sampler seed is derived from it and the product id"`
	Ctx         int     `set:"ctx" def:"0" usage:"positions per product: shared prefix + product prompt + generation\n\t(0 = prefix + 1024 + max-tokens, at most the model's training context)"`
	Batch       int     `set:"batch" def:"512" usage:"most tokens per llama_decode (llama.cpp n_batch)"`
	GPULayers   int     `set:"gpu-layers" def:"0" usage:"layers to offload to a GPU (-1 = all); needs a GPU backend module from CMakeLists.txt in lib/synth\n\tbeside the binary or named by $SYNTH_GGML_BACKENDS ('synth doctor' shows 'llama.cpp GPU: yes' then)"`
	SystemFile  string  `set:"system-file" path:"1" usage:"file with the system instruction to use instead of the built-in one"`
	DateLines   bool    `set:"date-lines" def:"true" usage:"put the template's 'Cutting Knowledge Date / Today Date' lines in the system\n\tturn as HF transformers renders Llama 3.1 (llama.cpp's formatter leaves them out)"`
	RetryErrors bool    `set:"retry-errors" usage:"redo products whose record in the output has an error"`
	FailFast    bool    `set:"fail-fast" usage:"stop at the first product that fails instead of recording the error"`
}

// Bounds of the LLM settings: far past any real use, and low enough that a mistyped
// value is a bad setting instead of an allocation that kills the process.
const (
	maxLLMCtx    = 1 << 20 // positions per product (Llama 3.1 trains at 128K)
	maxLLMTokens = 1 << 24 // ctx x parallel in one llama.cpp context
)

// validate checks the shared settings; maxTokens is the step's own.
func (p *LLMParams) validate(maxTokens int) error {
	switch {
	case p.Model == "":
		return badf("model", "is required")
	case p.Parallel < 1 || p.Parallel > 256:
		return badf("parallel", "%d: want 1 to 256", p.Parallel)
	case maxTokens < 1 || maxTokens > maxLLMCtx:
		return badf("max-tokens", "%d: want 1 to %d", maxTokens, maxLLMCtx)
	case p.Ctx < 0 || p.Ctx > maxLLMCtx:
		return badf("ctx", "%d: want 0 to %d (0: automatic)", p.Ctx, maxLLMCtx)
	case p.Ctx*p.Parallel > maxLLMTokens:
		return badf("ctx", "%d x parallel %d = %d positions in one context: want at most %d", p.Ctx, p.Parallel, p.Ctx*p.Parallel, maxLLMTokens)
	case p.Batch < p.Parallel || p.Batch > maxLLMCtx:
		return badf("batch", "%d: want parallel (%d) to %d: each slot needs a token per step", p.Batch, p.Parallel, maxLLMCtx)
	case p.Temperature < 0:
		return badf("temperature", "%g: want >= 0", p.Temperature)
	case !(p.RepeatPen > 0):
		// llama.cpp divides logits by it: 0 would make them infinite (1 is off)
		return badf("repeat-penalty", "%g: want a positive number (1: off)", p.RepeatPen)
	}
	if err := p.sampling().Validate(); err != nil {
		return badf("temperature", "%v", err)
	}
	return nil
}

func (p *LLMParams) sampling() llamacpp.SamplerParams {
	return llamacpp.SamplerParams{
		Temperature: float32(p.Temperature), TopK: p.TopK, TopP: float32(p.TopP), MinP: float32(p.MinP),
		RepeatPenalty: float32(p.RepeatPen),
	}
}

// llmSettings are the shared settings a fingerprint covers.
type llmSettings struct {
	Temperature   float64 `json:"temperature"`
	TopK          int     `json:"top_k"`
	TopP          float64 `json:"top_p"`
	MinP          float64 `json:"min_p"`
	RepeatPenalty float64 `json:"repeat_penalty"`
	Seed          uint64  `json:"seed"`
	MaxTokens     int     `json:"max_tokens"`
	Ctx           int     `json:"ctx"` // as set: 0 = automatic
	DateLines     bool    `json:"date_lines"`
}

func (p *LLMParams) settings(maxTokens int) llmSettings {
	return llmSettings{Temperature: p.Temperature, TopK: p.TopK, TopP: p.TopP, MinP: p.MinP, RepeatPenalty: p.RepeatPen,
		Seed: p.Seed, MaxTokens: maxTokens, Ctx: p.Ctx, DateLines: p.DateLines}
}

// systemInstruction reads the system file ("" when not set).
func (p *LLMParams) systemInstruction(step string) (string, error) {
	if p.SystemFile == "" {
		return "", nil
	}
	data, err := os.ReadFile(p.SystemFile)
	if err != nil {
		return "", fmt.Errorf("%s: system-file: %w", step, unwrapPath(err))
	}
	s := strings.TrimSpace(string(data))
	if s == "" {
		return "", fmt.Errorf("%s: system-file %s is empty", step, p.SystemFile)
	}
	return s, nil
}

// checkJob is the start of an LLM step's check: its settings, nobody else writing its
// output, an output that is not its input, an input that parses.
func checkJob(step string, params interface{ Validate() error }, in, out string) error {
	if err := params.Validate(); err != nil {
		return err
	}
	if err := probeLock(out); err != nil {
		return err
	}
	if filepath.Clean(in) == filepath.Clean(out) {
		return badf("out", "is the manifest %s", in)
	}
	return checkInput(step, "in", in)
}

// checkModel loads the model's vocabulary and chat template (not its weights) and
// builds the step's prompt on it.
func (p *LLMParams) checkModel(step string, build func(m *llamacpp.Model) error) error {
	if err := exists(step, "model", p.Model, false); err != nil {
		return err
	}
	m, err := llamacpp.LoadModel(p.Model, llamacpp.ModelParams{VocabOnly: true})
	if err != nil {
		return fmt.Errorf("%s: model: %w", step, err)
	}
	defer m.Close()
	if err := build(m); err != nil {
		return fmt.Errorf("%s: %w", step, err)
	}
	return nil
}

// jobRecorder is a step's side of an LLM job (llm.Rewriter, llm.Translator).
type jobRecorder interface {
	llm.Recorder
	Prefix() []llamacpp.Token
	SetContext(ctxPerSeq int)
	Task(p dataset.Product) *llm.Task
}

// llmJob is one run of an LLM step, as runLLMJob runs it.
type llmJob struct {
	step      string
	params    *LLMParams
	maxTokens int
	in, out   string
	shard     dataset.Shard
	prov      Provenance
	settings  any // the fingerprinted settings, for what changed
	// recorder builds the step's prompt and records on the loaded model; describe says
	// what the prompt holds.
	recorder func(m *llamacpp.Model, man *dataset.Manifest) (rec jobRecorder, describe string, err error)
	minScore float64
	// extra adds fields to each record beside its provenance (e.g. the product's images).
	extra func(t *llm.Task) map[string]any
}

// runLLMJob is the run every LLM step shares: the products of the manifest's shard not
// yet in the output go through the generator in parallel slots after one shared prefix;
// every record carries the run's provenance.
func runLLMJob(ctx context.Context, env *Env, j llmJob) (Status, error) {
	log, p := env.log(), j.params
	st := Status{Step: j.step, Output: j.out}
	man, err := dataset.ReadManifest(j.in)
	if err != nil {
		return st, fmt.Errorf("%s: in: %w", j.step, err)
	}
	out, err := env.openOutput(j.step, j.out, dataset.KeyFields("id"), j.prov, j.settings, p.RetryErrors)
	if err != nil {
		return st, err
	}
	defer out.Close()
	var todo []dataset.Product
	for _, pr := range man.Products {
		if j.shard.Has(pr.ID) {
			st.Items++
			if !out.Done(pr.ID) {
				todo = append(todo, pr)
			}
		}
	}
	if len(todo) == 0 {
		log.Info(j.step+": complete, nothing to do", "out", j.out, "products", st.Items, "shard", j.shard.String(), "fingerprint", j.prov.Fingerprint)
		st.Records, st.Failed = out.Len(), out.Errors()
		return st, out.Close()
	}
	if gap := LlamaSIMDGap(native.CPUFeatures().Features, llamacpp.CPUFeatures()); gap != "" {
		log.Warn(j.step + ": " + gap + ": generation will be several times slower")
	}
	model, err := llamacpp.LoadModel(p.Model, llamacpp.ModelParams{GPULayers: p.GPULayers})
	if err != nil {
		return st, fmt.Errorf("%s: model: %w", j.step, err)
	}
	defer model.Close()
	rec, describe, err := j.recorder(model, man)
	if err != nil {
		return st, fmt.Errorf("%s: %w", j.step, err)
	}
	prefix := rec.Prefix()
	ctxPerSeq, beyond := llm.ContextPerSeq(p.Ctx, len(prefix), j.maxTokens, model.NCtxTrain())
	if beyond {
		log.Warn(j.step+": ctx is beyond the model's training context; quality may drop past it", "ctx", ctxPerSeq, "n_ctx_train", model.NCtxTrain())
	}
	rec.SetContext(ctxPerSeq)
	gen, err := llm.NewGenerator(model, prefix, llm.Options{
		Parallel: p.Parallel, MaxTokens: j.maxTokens, CtxPerSeq: ctxPerSeq, NBatch: p.Batch,
		Threads: env.Threads, Sampling: p.sampling(),
	})
	if err != nil {
		return st, fmt.Errorf("%s: %w", j.step, err)
	}
	defer gen.Close()
	log.Info(j.step, "to_do", len(todo), "already_done", st.Items-len(todo), "out", j.out, "model", model.Desc(),
		"parallel", p.Parallel, "prefix_tokens", len(prefix), "prompt", describe, "ctx", ctxPerSeq, "fingerprint", j.prov.Fingerprint)

	task := env.Progress.Start(j.step, "products", len(todo))
	done := 0
	tasks := llm.Prepare(ctx, len(todo), func(i int) *llm.Task { return rec.Task(todo[i]) })
	stats, runErr := llm.RunJob(ctx, gen, out, tasks, len(todo), llm.JobOptions{
		Recorder: provenanceRecorder{jobRecorder: rec, prov: j.prov, extra: j.extra},
		Seed:     p.Seed, MinScore: j.minScore, FailFast: p.FailFast,
		Progress: func(js llm.JobStats) {
			task.Add(js.Done - done)
			done = js.Done
			task.Note(fmt.Sprintf("%.1f tokens/s", float64(js.Gen.GenTokens)/js.Elapsed.Seconds()))
		},
	})
	task.Add(stats.Done - done)
	task.End()
	summarize(log, j.step, stats, j.minScore)
	st.Ran, st.Done, st.DoneFailed = true, stats.Done, stats.Failed
	if runErr != nil {
		if errors.Is(runErr, context.Canceled) {
			return st, fmt.Errorf("%s: interrupted after %d of %d products; rerun the same command to resume: %w", j.step, stats.Done, stats.Total, runErr)
		}
		return st, fmt.Errorf("%s: %w", j.step, runErr)
	}
	st.Records, st.Failed = out.Len(), out.Errors()
	return st, out.Close()
}

// summarize logs what an LLM run did: rates, finish reasons, scores, where time went.
func summarize(log interface{ Info(string, ...any) }, step string, st llm.JobStats, minScore float64) {
	el := st.Elapsed.Seconds()
	var reasons []string
	for k, v := range st.Finish {
		reasons = append(reasons, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(reasons)
	attrs := []any{"products", st.Done, "failed", st.Failed, "took", st.Elapsed.Round(time.Millisecond),
		"products_per_s", fmt.Sprintf("%.2f", float64(st.Done)/el), "tokens_per_s", fmt.Sprintf("%.1f", float64(st.Gen.GenTokens)/el),
		"finish", strings.Join(reasons, ", "), "prefix_tokens_avoided", st.Gen.PrefixAvoided,
		"decode_share", fmt.Sprintf("%.0f%%", 100*st.Gen.DecodeTime.Seconds()/el),
		"sample_share", fmt.Sprintf("%.0f%%", 100*st.Gen.SampleTime.Seconds()/el)}
	if st.Scored > 0 {
		attrs = append(attrs, "score_mean", fmt.Sprintf("%.3f", st.ScoreSum/float64(st.Scored)))
		if minScore > 0 {
			attrs = append(attrs, "retried", st.Retried, "low", st.Low)
			if st.RetriesDisabled {
				attrs = append(attrs, "note", "no retries at temperature 0, where another seed gives the same text")
			}
		}
	}
	if st.Failed > 0 {
		attrs = append(attrs, "first_failure", st.FirstError)
	}
	log.Info(step+" summary", attrs...)
}

// provenanceRecorder adds the run's provenance (and the step's extra fields) to every
// record the step's recorder makes.
type provenanceRecorder struct {
	jobRecorder
	prov  Provenance
	extra func(t *llm.Task) map[string]any
}

func (r provenanceRecorder) Record(t *llm.Task, parts []llm.PartResult) (any, error) {
	rec, err := r.jobRecorder.Record(t, parts)
	if err != nil {
		return nil, err
	}
	return r.with(t, rec)
}

func (r provenanceRecorder) Failed(t *llm.Task, parts []llm.PartResult, err error) any {
	rec, werr := r.with(t, r.jobRecorder.Failed(t, parts, err))
	if werr != nil {
		return r.jobRecorder.Failed(t, parts, err) // a record without provenance: stale on a rerun, made again
	}
	return rec
}

// with appends fields to a record's JSON object, keeping the recorder's own order.
func (r provenanceRecorder) with(t *llm.Task, rec any) (json.RawMessage, error) {
	js, err := json.Marshal(rec)
	if err != nil || len(js) < 2 || js[len(js)-1] != '}' {
		return nil, fmt.Errorf("pipeline: record of %s is not a JSON object: %v", t.ID, err)
	}
	fields := map[string]any{"provenance": r.prov}
	if r.extra != nil {
		for k, v := range r.extra(t) {
			fields[k] = v
		}
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := js[:len(js)-1]
	for _, k := range keys {
		v, err := json.Marshal(fields[k])
		if err != nil {
			return nil, fmt.Errorf("pipeline: record of %s: %w", t.ID, err)
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		kj, _ := json.Marshal(k)
		out = append(append(append(out, kj...), ':'), v...)
	}
	return append(out, '}'), nil
}

// LlamaSIMDGap names the best SIMD level this CPU has that llama.cpp's CPU backend was
// compiled without, or "". ggml-cpu's SIMD level is fixed at compile time, unlike our
// kernels' dispatch: plain `go build` or `go install` (no -march) gives a llama.cpp
// without AVX2, several times slower at rewriting. doctor reports it; LLM steps warn.
func LlamaSIMDGap(cpuFeatures, llamaCPU []string) string {
	for _, lv := range []struct{ cpu, ggml, name string }{{"AVX512F", "AVX512", "AVX-512"}, {"AVX2", "AVX2", "AVX2"}} {
		if slices.Contains(cpuFeatures, lv.cpu) && !slices.Contains(llamaCPU, lv.ggml) {
			return "this CPU has " + lv.name + ", which this build's llama.cpp does not use (a native build, plain make, would)"
		}
	}
	return ""
}

// modelName is what records call a model: its file name, never a local path.
func modelName(path string) string { return filepath.Base(filepath.Clean(path)) }
