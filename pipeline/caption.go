package pipeline

import (
	"context"
	"errors"
	"fmt"
	"image"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"synth/dataset"
	"synth/dataset/imagefile"
	"synth/internal/seed"
	"synth/native"
	"synth/vision/blip2"
	"synth/vision/generate"
	"synth/vision/gpt2tok"
	"synth/vision/nn"
	"synth/weights"
)

// CaptionParams are the settings of synth caption and of synth.yaml's caption: section
// (docs/parameters.md maps them to transformers' generate() names).
type CaptionParams struct {
	Model     string `set:"model" path:"1" req:"1" usage:"BLIP-2 model folder or .gguf file"`
	LoRA      string `set:"lora,adapter" path:"1" usage:"PEFT LoRA adapter folder (adapter_config.json + adapter_model.*)"`
	LoRALive  bool   `set:"lora-live" usage:"keep the adapter unmerged (two small extra GEMMs per adapted layer)"`
	Tokenizer string `set:"tokenizer" path:"1" usage:"folder with vocab.json and merges.txt (default: beside the model)"`
	Prompt    string `set:"prompt" usage:"text prompt the captions continue (default: none, BOS alone)"`
	Batch     int    `set:"batch" def:"0" usage:"images per batch (0: 8 on a CPU, 64 on a GPU)"`
	Device    string `set:"device" def:"cpu" usage:"where the model runs: cpu (synth's kernels), ggml:CPU, cuda:0 or another ggml device (synth doctor lists them; GPU modules load from $SYNTH_GGML_BACKENDS or lib/synth beside the binary; docs/devices.md)"`
	DType     string `set:"dtype" def:"auto" usage:"weights in memory: auto (as stored), f32, f16, bf16, q8_0, q4_0, q4_k, q5_k or q6_k"`
	KVCache   string `set:"kv-cache" def:"f16" usage:"KV cache element type: f16 or f32"`

	MaxNewTokens      int     `set:"max-new-tokens,max-tokens" def:"120" usage:"longest caption, in tokens"`
	MinNewTokens      int     `set:"min-new-tokens" def:"0" usage:"forbid EOS before this many tokens"`
	Beams             int     `set:"beams,num-beams" def:"1" usage:"beam search width (1: greedy or sampling)"`
	LengthPenalty     float64 `set:"length-penalty" def:"1" usage:"beam search: score = log-prob / length^p"`
	EarlyStopping     string  `set:"early-stopping" def:"false" usage:"beam search stop rule: false, true or never"`
	Sample            bool    `set:"sample,do-sample" usage:"sample instead of greedy search"`
	Temperature       float64 `set:"temperature" def:"1" usage:"sampling temperature"`
	TopK              int     `set:"top-k" def:"50" usage:"sampling: keep the k most likely tokens (0: off)"`
	TopP              float64 `set:"top-p" def:"1" usage:"sampling: nucleus mass (1: off)"`
	Seed              uint64  `set:"seed" def:"0" usage:"sampling seed (each image's stream depends on it and the image's id)"`
	RepetitionPenalty float64 `set:"repetition-penalty,repeat-penalty" def:"1" usage:"penalty on tokens already generated (1: off)"`
	NoRepeatNgram     int     `set:"no-repeat-ngram,no-repeat-ngram-size" def:"0" usage:"forbid repeating n-grams of this size (0: off)"`

	RetryErrors bool `set:"retry-errors" usage:"redo images whose earlier record in the output is an error"`
	FailFast    bool `set:"fail-fast" usage:"stop at the first image that fails instead of recording the error"`
}

// captionRecordParams is what every caption record says about how it was made: the
// generation parameters that decide the text (a sampling setting is recorded only when
// sampling is on, so that changing it alone is no change).
type captionRecordParams struct {
	Prompt            string  `json:"prompt"`
	DType             string  `json:"dtype"`
	KVCache           string  `json:"kv_cache"`
	LoRALive          bool    `json:"lora_live,omitempty"`
	MaxNewTokens      int     `json:"max_new_tokens"`
	MinNewTokens      int     `json:"min_new_tokens"`
	NumBeams          int     `json:"num_beams"`
	LengthPenalty     float64 `json:"length_penalty"`
	EarlyStopping     string  `json:"early_stopping"`
	DoSample          bool    `json:"do_sample"`
	Temperature       float64 `json:"temperature,omitempty"`
	TopK              int     `json:"top_k,omitempty"`
	TopP              float64 `json:"top_p,omitempty"`
	Seed              uint64  `json:"seed,omitempty"`
	RepetitionPenalty float64 `json:"repetition_penalty"`
	NoRepeatNgramSize int     `json:"no_repeat_ngram_size"`
}

// CaptionRecord is one line of a caption output (docs/dataset.md).
type CaptionRecord struct {
	ID         string              `json:"id"`
	Image      string              `json:"image"`
	Caption    *string             `json:"caption,omitempty"`
	Model      string              `json:"model"`
	LoRA       *string             `json:"lora"`
	Params     captionRecordParams `json:"params"`
	Tokens     *int                `json:"tokens,omitempty"`
	MS         *float64            `json:"ms,omitempty"`
	Error      string              `json:"error,omitempty"`
	Provenance Provenance          `json:"provenance"`
}

// generation turns the settings into generate.Params (EOS from the model later).
func (p *CaptionParams) generation() (generate.Params, error) {
	early, err := generate.ParseEarlyStopping(p.EarlyStopping)
	if err != nil {
		return generate.Params{}, badf("early-stopping", "%v", err)
	}
	g := generate.Params{
		MaxNewTokens: p.MaxNewTokens, MinNewTokens: p.MinNewTokens,
		NumBeams: p.Beams, LengthPenalty: p.LengthPenalty, EarlyStopping: early,
		DoSample: p.Sample, Temperature: p.Temperature, TopK: p.TopK, TopP: p.TopP,
		RepetitionPenalty: p.RepetitionPenalty, NoRepeatNgramSize: p.NoRepeatNgram,
	}
	if err := g.Validate(); err != nil {
		return g, badf(generationKey(err), "%v", err)
	}
	return g, nil
}

// generationKey guesses the setting a generate.Params error is about, for the message.
func generationKey(err error) string {
	msg := err.Error()
	for _, k := range []struct{ word, key string }{
		{"MaxNewTokens", "max-new-tokens"}, {"MinNewTokens", "min-new-tokens"}, {"NumBeams", "beams"},
		{"Temperature", "temperature"}, {"TopK", "top-k"}, {"TopP", "top-p"}, {"RepetitionPenalty", "repetition-penalty"},
		{"NoRepeatNgram", "no-repeat-ngram"}, {"LengthPenalty", "length-penalty"}, {"beam", "beams"}, {"sampl", "sample"},
	} {
		if strings.Contains(msg, k.word) {
			return k.key
		}
	}
	return "generation"
}

// Validate checks every value without touching a file.
func (p *CaptionParams) Validate() error {
	switch {
	case p.Model == "":
		return badf("model", "is required")
	case p.Batch < 0 || p.Batch > maxBatch:
		return badf("batch", "%d: want 1 to %d (0: the device's default)", p.Batch, maxBatch)
	case p.Beams < 1 || p.Beams > maxBeams:
		return badf("beams", "%d: want 1 to %d", p.Beams, maxBeams)
	case p.Batch*p.Beams > maxSlots:
		return badf("batch", "%d x beams %d = %d sequences: want at most %d", p.Batch, p.Beams, p.Batch*p.Beams, maxSlots)
	case !(p.RepetitionPenalty > 0) || math.IsInf(p.RepetitionPenalty, 0):
		// generate treats 0 as off like 1; given, it is a mistake (transformers refuses a
		// penalty that is not strictly positive)
		return badf("repetition-penalty", "%g: want a positive number (1: off)", p.RepetitionPenalty)
	case p.LoRALive && p.LoRA == "":
		return badf("lora-live", "needs lora")
	}
	if !strings.EqualFold(p.DType, "auto") {
		if _, err := nn.ParseDType(p.DType); err != nil {
			return badf("dtype", "%v", err)
		}
	}
	if _, err := kvCacheType(p.KVCache); err != nil {
		return err
	}
	_, err := p.generation()
	return err
}

func kvCacheType(s string) (native.DType, error) {
	switch strings.ToLower(s) {
	case "f16":
		return native.F16, nil
	case "f32":
		return native.F32, nil
	}
	return 0, badf("kv-cache", "%q is not f16 or f32", s)
}

// Caption captions the images of a manifest or folder with BLIP-2 (+ LoRA) into a
// resumable JSONL output, one record per image.
type Caption struct {
	Params CaptionParams
	Images string // a product manifest (JSONL) or a folder of images
	Out    string
	Shard  dataset.Shard
}

func (s *Caption) Name() string { return "caption" }

func (s *Caption) Outputs() []string { return []string{s.Out} }

func (s *Caption) Publication() Publication {
	return Publication{Name: "captioned", Input: s.Images, Output: s.Out, PerImage: true, Text: "caption"}
}

// tokenizerDir is where vocab.json and merges.txt are read from.
func (s *Caption) tokenizerDir() string {
	if s.Params.Tokenizer != "" {
		return s.Params.Tokenizer
	}
	if st, err := os.Stat(s.Params.Model); err == nil && !st.IsDir() {
		return filepath.Dir(s.Params.Model)
	}
	return s.Params.Model
}

// Check opens the model's config and tokenizer and the adapter, reads the input, and
// checks that the output was not made with other settings.
func (s *Caption) Check(env *Env) error {
	p := &s.Params
	if err := p.Validate(); err != nil {
		return err
	}
	if err := probeLock(s.Out); err != nil {
		return err
	}
	if _, err := openDevice(p.Device); err != nil {
		return err
	}
	if err := checkInput(s.Name(), "images", s.Images); err != nil {
		return err
	}
	if err := exists(s.Name(), "model", p.Model, false); err != nil {
		return err
	}
	src, err := weights.Open(p.Model)
	if err != nil {
		return fmt.Errorf("caption: model: %w", err)
	}
	defer src.Close()
	if cfg, err := blip2.Parse(src.Config()); err != nil {
		return fmt.Errorf("caption: model %s: %w", p.Model, err)
	} else if err := cfg.Validate(); err != nil {
		return fmt.Errorf("caption: model %s: %w", p.Model, err)
	}
	if _, err := gpt2tok.Load(s.tokenizerDir()); err != nil {
		return fmt.Errorf("caption: tokenizer in %s (vocab.json and merges.txt; set tokenizer to another folder): %w", s.tokenizerDir(), err)
	}
	if p.LoRA != "" && !env.Pending(p.LoRA) {
		a, err := weights.LoadAdapter(p.LoRA)
		if err != nil {
			return fmt.Errorf("caption: lora: %w", err)
		}
		a.Close()
	}
	if p.LoRA != "" && env.Pending(p.LoRA) {
		return nil // the adapter is made by an earlier step: its fingerprint is taken at Run
	}
	prov, rp, err := s.provenance(env, src)
	if err != nil {
		return err
	}
	_, _, err = staleRecords(s.Name(), s.Out, prov, rp, env.Force)
	return err
}

// checkInput checks that a manifest parses (ids unique, lines valid), or that a folder
// exists. A missing or broken image is not an error here: it fails its own item.
func checkInput(step, key, path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s: %s %s: %w", step, key, path, unwrapPath(err))
	}
	if st.IsDir() {
		return nil
	}
	if _, err := dataset.ReadManifest(path); err != nil {
		return fmt.Errorf("%s: %s: %w", step, key, err)
	}
	return nil
}

// provenance is the run's fingerprint and recorded parameters; src is the opened model
// (its stored dtype decides dtype auto).
func (s *Caption) provenance(env *Env, src *weights.Source) (Provenance, captionRecordParams, error) {
	p := &s.Params
	g, err := p.generation()
	if err != nil {
		return Provenance{}, captionRecordParams{}, err
	}
	kv, _ := kvCacheType(p.KVCache)
	rp := captionRecordParams{
		Prompt: p.Prompt, DType: strings.ToLower(s.dtype(src).String()), KVCache: strings.ToLower(kv.String()), LoRALive: p.LoRALive,
		MaxNewTokens: g.MaxNewTokens, MinNewTokens: g.MinNewTokens, NumBeams: g.NumBeams, LengthPenalty: g.LengthPenalty,
		EarlyStopping: g.EarlyStopping.String(), DoSample: g.DoSample,
		RepetitionPenalty: g.RepetitionPenalty, NoRepeatNgramSize: g.NoRepeatNgramSize,
	}
	if g.DoSample {
		rp.Temperature, rp.TopK, rp.TopP, rp.Seed = g.Temperature, g.TopK, g.TopP, p.Seed
	}
	models, err := env.hashes(s.Name(), [2]string{"model", p.Model}, [2]string{"lora", p.LoRA}, [2]string{"tokenizer", p.Tokenizer})
	if err != nil {
		return Provenance{}, rp, err
	}
	return NewProvenance(s.Name(), env.Version, models, rp), rp, nil
}

// dtype is the dtype the weights are held in: the setting, or for auto the one the
// checkpoint keeps its language model's Linear weights in (F32 otherwise).
func (s *Caption) dtype(src *weights.Source) native.DType {
	if !strings.EqualFold(s.Params.DType, "auto") {
		dt, _ := nn.ParseDType(s.Params.DType) // validated
		return dt
	}
	return blip2.StoredDType(src)
}

// Run captions every image of the shard that the output does not hold yet.
func (s *Caption) Run(ctx context.Context, env *Env) (Status, error) {
	p := &s.Params
	log := env.log()
	st := Status{Step: s.Name(), Output: s.Out}
	items, err := dataset.ListImages(s.Images, s.Shard)
	if err != nil {
		return st, fmt.Errorf("caption: %w", err)
	}
	st.Items = len(items)
	src, err := weights.Open(p.Model)
	if err != nil {
		return st, fmt.Errorf("caption: model: %w", err)
	}
	defer src.Close()
	prov, rp, err := s.provenance(env, src)
	if err != nil {
		return st, err
	}
	out, err := env.openOutput(s.Name(), s.Out, dataset.KeyFields("id", "image"), prov, rp, p.RetryErrors)
	if err != nil {
		return st, err
	}
	defer out.Close()
	var todo []dataset.ImageItem
	for _, it := range items {
		if !out.Done(dataset.JoinKey(it.ID, it.Image)) {
			todo = append(todo, it)
		}
	}
	if len(todo) == 0 {
		log.Info("caption: complete, nothing to do", "out", s.Out, "images", len(items), "fingerprint", prov.Fingerprint)
		st.Records, st.Failed = out.Len(), out.Errors()
		return st, out.Close()
	}
	log.Info("caption", "images", len(items), "shard", s.Shard.String(), "already_done", len(items)-len(todo), "to_do", len(todo), "fingerprint", prov.Fingerprint)

	start := time.Now()
	tok, err := gpt2tok.Load(s.tokenizerDir())
	if err != nil {
		return st, fmt.Errorf("caption: tokenizer: %w", err)
	}
	dev, err := openDevice(p.Device)
	if err != nil {
		return st, err
	}
	kv, _ := kvCacheType(p.KVCache)
	opts := blip2.Options{LiveLoRA: p.LoRALive, KVCache: kv, DType: s.dtype(src), Device: dev}
	var lora *string
	if p.LoRA != "" {
		a, err := weights.LoadAdapter(p.LoRA)
		if err != nil {
			return st, fmt.Errorf("caption: lora: %w", err)
		}
		defer a.Close()
		opts.Adapter = a
		name := filepath.Base(filepath.Clean(p.LoRA))
		lora = &name
	}
	m, err := blip2.Load(src, opts)
	if err != nil {
		return st, fmt.Errorf("caption: %w", err)
	}
	var prompt []int32
	if p.Prompt != "" {
		prompt = tok.Encode(p.Prompt, true)
	}
	g, _ := p.generation()
	c, err := native.NewCtxOn(dev, env.Threads)
	if err != nil {
		return st, fmt.Errorf("caption: %w", err)
	}
	defer c.Close()
	cp, err := blip2.NewCaptioner(m, c, blip2.CaptionerOptions{
		Batch: deviceBatch(p.Batch, dev, 8, 64), Tokenizer: tok, Prompt: prompt, Params: g,
		Decode: func(path string) (image.Image, error) { return imagefile.Decode(path, imagefile.Limits{}) },
	})
	if err != nil {
		return st, fmt.Errorf("caption: %w", err)
	}
	log.Info("caption: model loaded", "model", p.Model, "lora", p.LoRA, "dtype", rp.DType, "kv_cache", rp.KVCache, "device", dev,
		"threads", c.Threads(), "took", time.Since(start).Round(time.Millisecond))

	images := make([]blip2.Image, len(todo))
	for i, it := range todo {
		images[i] = blip2.Image{Path: it.Path, Seed: seed.Item(p.Seed, it.ID, it.Image)}
	}
	model := filepath.Base(filepath.Clean(p.Model))
	task := env.Progress.Start("caption", "images", len(todo))
	err = cp.Stream(ctx, images, func(r blip2.Caption) error {
		it := todo[r.Index]
		rec := CaptionRecord{ID: it.ID, Image: it.Image, Model: model, LoRA: lora, Params: rp, Provenance: prov}
		if r.Err != nil {
			if p.FailFast {
				return fmt.Errorf("caption: %s: %w (fail-fast)", it.Path, r.Err)
			}
			rec.Error = fmt.Sprintf("load %s: %v", it.Image, r.Err)
			task.Fail(1)
		} else {
			text, n := r.Text, r.Tokens
			ms := math.Round(r.Seconds*1e4) / 10
			rec.Caption, rec.Tokens, rec.MS = &text, &n, &ms
			task.Add(1)
		}
		if err := out.Write(dataset.JoinKey(it.ID, it.Image), rec); err != nil && !errors.Is(err, dataset.ErrDuplicate) {
			return fmt.Errorf("caption: %w", err)
		}
		return nil
	})
	task.End()
	st.Ran = true
	if err != nil {
		if ctx.Err() != nil {
			done, _ := task.Counts()
			return st, fmt.Errorf("caption: interrupted after %d of %d images; rerun the same command to resume: %w", done, len(todo), ctx.Err())
		}
		return st, err
	}
	st.Records, st.Failed = out.Len(), out.Errors()
	return st, out.Close()
}
