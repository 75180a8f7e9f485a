package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"time"

	"synth/dataset"
	"synth/dataset/embcache"
	"synth/dataset/imagefile"
	"synth/eval"
	"synth/internal/progress"
	"synth/vision/cliptok"
	"synth/vision/longclip"
	"synth/vision/nn"
	"synth/weights"
)

// ClipVocabName is the Long-CLIP tokenizer's merges file, looked for beside the model.
const ClipVocabName = "bpe_simple_vocab_16e6.txt.gz"

// LongCLIPParams are the Long-CLIP settings of synth eval and synth embed.
type LongCLIPParams struct {
	Model        string `set:"model" path:"1" req:"1" usage:"Long-CLIP model folder or weights file (.pt, .safetensors, .gguf)"`
	Vocab        string `set:"vocab" path:"1" usage:"the BPE merges file (default: bpe_simple_vocab_16e6.txt.gz beside the model)"`
	DType        string `set:"dtype" def:"f32" usage:"weights in memory: f32, f16, bf16, q8_0, q4_0, q4_k, q5_k, q6_k (quantized GGUF weights stay as stored)"`
	UpstreamFP16 bool   `set:"upstream-fp16" usage:"round the weights upstream's loader casts to float16, like longclip.load"`
	Batch        int    `set:"batch" def:"0" usage:"items per forward pass (0: 8 on a CPU, 64 on a GPU)"`
	Device       string `set:"device" def:"cpu" usage:"where the model runs: cpu (synth's kernels), ggml:CPU, cuda:0 or another ggml device (synth doctor lists them; GPU modules load from $SYNTH_GGML_BACKENDS or lib/synth beside the binary; docs/devices.md)"`
}

// Validate checks the values without touching a file.
func (p *LongCLIPParams) Validate() error {
	if p.Model == "" {
		return badf("model", "is required")
	}
	if p.Batch < 0 || p.Batch > maxBatch {
		return badf("batch", "%d: want 1 to %d (0: the device's default)", p.Batch, maxBatch)
	}
	if _, err := nn.ParseDType(p.DType); err != nil {
		return badf("dtype", "%v", err)
	}
	return nil
}

// vocab is the tokenizer file: the setting, or the one beside the model.
func (p *LongCLIPParams) vocab() string {
	if p.Vocab != "" {
		return p.Vocab
	}
	dir := p.Model
	if st, err := os.Stat(p.Model); err == nil && !st.IsDir() {
		dir = filepath.Dir(p.Model)
	}
	return filepath.Join(dir, ClipVocabName)
}

// check opens the checkpoint's headers and config and the tokenizer (when texts), not
// the weights.
func (p *LongCLIPParams) check(step string, texts bool) error {
	if _, err := openDevice(p.Device); err != nil {
		return err
	}
	if err := exists(step, "model", p.Model, false); err != nil {
		return err
	}
	src, err := weights.Open(p.Model)
	if err != nil {
		return fmt.Errorf("%s: model: %w", step, err)
	}
	defer src.Close()
	cfg := src.Config()
	if st, err := os.Stat(p.Model); cfg == nil && err == nil && !st.IsDir() {
		cfg, _ = os.ReadFile(filepath.Join(filepath.Dir(p.Model), "config.json")) // optional
	}
	if _, err := longclip.ConfigFromWeights(src, cfg); err != nil {
		return fmt.Errorf("%s: model %s: %w", step, p.Model, err)
	}
	if texts {
		if _, err := os.Stat(p.vocab()); err != nil && p.Vocab == "" {
			return badf("vocab", "not set, and no %s beside the model %s", ClipVocabName, p.Model)
		}
		if _, err := cliptok.Load(p.vocab()); err != nil {
			return fmt.Errorf("%s: vocab: %w", step, err)
		}
	}
	return nil
}

// OpenEmbedder loads the model (and the tokenizer when texts are embedded). Close the
// Embedder, then its Model.
func (p *LongCLIPParams) OpenEmbedder(env *Env, texts, normalize bool) (*longclip.Embedder, error) {
	dt, err := nn.ParseDType(p.DType)
	if err != nil {
		return nil, badf("dtype", "%v", err)
	}
	dev, err := openDevice(p.Device)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	m, err := longclip.Open(p.Model, longclip.Options{DType: dt, UpstreamFP16: p.UpstreamFP16, Device: dev})
	if err != nil {
		return nil, err
	}
	env.log().Info("Long-CLIP loaded", "model", p.Model, "config", m.Config.String(), "dtype", p.DType, "device", dev, "took", time.Since(start).Round(time.Millisecond))
	var tok *cliptok.Tokenizer
	if texts {
		if _, err := os.Stat(p.vocab()); err != nil && p.Vocab == "" {
			m.Close()
			return nil, badf("vocab", "not set, and no %s beside the model %s", ClipVocabName, p.Model)
		}
		if tok, err = cliptok.Load(p.vocab()); err != nil {
			m.Close()
			return nil, fmt.Errorf("vocab: %w", err)
		}
	}
	e, err := longclip.NewEmbedder(m, tok, longclip.EmbedderOptions{
		Threads: env.Threads, Batch: deviceBatch(p.Batch, dev, 8, 64), Normalize: normalize,
		Decode: func(path string) (image.Image, error) { return imagefile.Decode(path, imagefile.Limits{}) },
	})
	if err != nil {
		m.Close()
		return nil, err
	}
	return e, nil
}

// EvalParams are the settings of synth eval and of synth.yaml's eval: section.
type EvalParams struct {
	LongCLIPParams
	Products         int    `set:"products" def:"1000" usage:"products sampled per dataset (n; the paper's 1000)"`
	ImagesPerProduct int    `set:"images-per-product" def:"2" usage:"images taken per product (k; the paper's 2)"`
	Seed             uint64 `set:"seed" def:"0" usage:"seed of the product and image sample and of the bootstrap"`
	Bootstrap        int    `set:"bootstrap" def:"1000" usage:"bootstrap replicates for the 95% intervals"`
	Strict           bool   `set:"strict" usage:"a sampled product with a missing or undecodable image is fatal (default: excluded and reported)"`
	Cache            string `set:"cache" path:"1" usage:"embedding cache folder (default: $XDG_CACHE_HOME/synth/embeddings, or ~/.cache/...)"`
	NoCache          bool   `set:"no-cache" usage:"embed everything again and keep nothing"`
}

// Validate checks the values without touching a file.
func (p *EvalParams) Validate() error {
	if err := p.LongCLIPParams.Validate(); err != nil {
		return err
	}
	switch {
	case p.Products < 2:
		return badf("products", "%d: different-product pairs need at least 2", p.Products)
	case p.ImagesPerProduct < 1:
		return badf("images-per-product", "%d: want at least 1", p.ImagesPerProduct)
	case p.Bootstrap < 1 || p.Bootstrap > 1_000_000:
		return badf("bootstrap", "%d: want 1 to 1000000", p.Bootstrap)
	}
	return nil
}

// cacheDir is the embedding cache folder ("" with no-cache).
func (p *EvalParams) cacheDir() (string, error) {
	switch {
	case p.NoCache:
		return "", nil
	case p.Cache != "":
		return p.Cache, nil
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "synth", "embeddings"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", badf("cache", "not set, and no $HOME for the default: set it, or no-cache")
	}
	return filepath.Join(home, ".cache", "synth", "embeddings"), nil
}

// evalRecordParams are the parameters the evaluation's fingerprint covers.
type evalRecordParams struct {
	Products         int    `json:"products"`
	ImagesPerProduct int    `json:"images_per_product"`
	Seed             uint64 `json:"seed"`
	Bootstrap        int    `json:"bootstrap_replicates"`
	Strict           bool   `json:"strict"`
	DType            string `json:"dtype"`
	UpstreamFP16     bool   `json:"upstream_fp16"`
}

// Eval is the paper's Table 1 over a list of datasets (the first the reference), and,
// when Pairs is set, the per-record Long-CLIP score of every pair (into Scores) with
// the same loaded model.
type Eval struct {
	Params   EvalParams
	Datasets []eval.Dataset
	Out      string // report folder

	Pairs  []eval.Pair
	Scores []float64 // after Run: cos(image, text) per pair, NaN where it failed

	// Report is the report after Run (read back when it was already complete).
	Report *eval.Report
}

// ProvenanceFile is the eval step's record of what made its report.
const ProvenanceFile = "provenance.json"

func (s *Eval) Name() string { return "eval" }

// Check opens the model's headers and the tokenizer, reads every manifest not made by
// an earlier step, and checks that the report was not made with other settings.
func (s *Eval) Check(env *Env) error {
	p := &s.Params
	if err := p.Validate(); err != nil {
		return err
	}
	if len(s.Datasets) == 0 {
		return errors.New("eval: no dataset to evaluate")
	}
	if err := p.check(s.Name(), true); err != nil {
		return err
	}
	for _, d := range s.Datasets {
		if env.Pending(d.Manifest) {
			continue
		}
		if err := checkInput(s.Name(), "data "+d.Name, d.Manifest); err != nil {
			return err
		}
	}
	if dir, err := p.cacheDir(); err != nil {
		return err
	} else if st, err := os.Stat(dir); dir != "" && err == nil && !st.IsDir() {
		return fmt.Errorf("eval: cache %s: not a folder", dir)
	}
	prov, rp, err := s.provenance(env)
	if err != nil {
		return err
	}
	_, err = s.stale(prov, rp, env.Force)
	return err
}

func (s *Eval) provenance(env *Env) (Provenance, evalRecordParams, error) {
	p := &s.Params
	rp := evalRecordParams{Products: p.Products, ImagesPerProduct: p.ImagesPerProduct, Seed: p.Seed, Bootstrap: p.Bootstrap,
		Strict: p.Strict, DType: p.DType, UpstreamFP16: p.UpstreamFP16}
	models, err := env.hashes(s.Name(), [2]string{"model", p.Model}, [2]string{"vocab", p.vocab()})
	if err != nil {
		return Provenance{}, rp, err
	}
	return NewProvenance(s.Name(), env.Version, models, rp), rp, nil
}

// stale compares the report folder's provenance with this run's: true when the
// report there was made the same way (its inputs may still have changed).
func (s *Eval) stale(prov Provenance, rp evalRecordParams, force bool) (same bool, err error) {
	old, err := os.ReadFile(filepath.Join(s.Out, ProvenanceFile))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("eval: %w", err)
	}
	var rec struct {
		Provenance Provenance `json:"provenance"`
	}
	if json.Unmarshal(old, &rec) == nil && rec.Provenance.Fingerprint == prov.Fingerprint {
		return true, nil
	}
	if force {
		return false, nil
	}
	return false, &StaleError{Step: s.Name(), Output: s.Out, Records: 1, Changes: changes(old, prov, rp)}
}

// Run writes the report unless the one in Out was made the same way from the same
// manifests, then scores the pairs.
func (s *Eval) Run(ctx context.Context, env *Env) (Status, error) {
	p := &s.Params
	log := env.log()
	st := Status{Step: s.Name(), Output: s.Out, Items: len(s.Datasets)}
	prov, rp, err := s.provenance(env)
	if err != nil {
		return st, err
	}
	same, err := s.stale(prov, rp, env.Force)
	if err != nil {
		return st, err
	}
	var rep *eval.Report
	if same {
		rep = s.reusable()
	}
	var cache *embcache.Cache
	if dir, err := p.cacheDir(); err != nil {
		return st, err
	} else if dir != "" {
		if cache, err = embcache.Open(dir); err != nil {
			return st, err
		}
		defer cache.Close()
	}
	if rep != nil && len(s.Pairs) == 0 {
		log.Info("eval: the report for these inputs and settings exists, nothing to do", "out", s.Out, "fingerprint", prov.Fingerprint)
		s.Report, st.Records = rep, len(rep.Datasets)
		return st, nil
	}
	e, err := p.OpenEmbedder(env, true, true)
	if err != nil {
		return st, fmt.Errorf("eval: %w", err)
	}
	defer e.Model().Close()
	defer e.Close()
	emb := &evalEmbedder{e: e}
	emb.info = eval.ModelInfo{Name: "Long-CLIP " + filepath.Base(p.Model), File: filepath.Base(p.Model), SHA256: prov.Models["model"], Dim: e.Dim()}
	emb.info.ImagePreprocessing, emb.info.TextPreprocessing = e.PreprocessingIDs()

	if rep == nil {
		st.Ran = true
		var task *taskByName
		rep, err = eval.Run(ctx, eval.Config{
			Datasets: s.Datasets, Products: p.Products, ImagesPerProduct: p.ImagesPerProduct,
			Seed: p.Seed, Bootstrap: p.Bootstrap, Strict: p.Strict, Cache: cache,
			Warn: func(w string) { log.Warn("eval: " + w) },
			Progress: func(pr eval.Progress) {
				task = task.next(env, "eval "+pr.Dataset, "products", pr.Want)
				task.set(pr.Done)
			},
		}, emb)
		task.end()
		if err != nil {
			if ctx.Err() != nil {
				return st, fmt.Errorf("eval: interrupted; rerun: the embeddings done so far are cached: %w", ctx.Err())
			}
			return st, err
		}
		rep.Fingerprint, rep.Version = prov.Fingerprint, prov.Version
		for i := range rep.Datasets {
			if rel, err := filepath.Rel(s.Out, rep.Datasets[i].Manifest); err == nil && filepath.IsAbs(rep.Datasets[i].Manifest) {
				rep.Datasets[i].Manifest = filepath.ToSlash(rel) // the report folder can move with its data
			}
		}
		if err := rep.WriteFiles(s.Out); err != nil {
			return st, err
		}
		js, _ := json.MarshalIndent(struct {
			Params     evalRecordParams `json:"params"`
			Provenance Provenance       `json:"provenance"`
		}{rp, prov}, "", "  ")
		if err := dataset.WriteFileIfChanged(filepath.Join(s.Out, ProvenanceFile), append(js, '\n')); err != nil {
			return st, err
		}
		log.Info("eval: report written", "out", filepath.Join(s.Out, eval.ReportMarkdown), "fingerprint", prov.Fingerprint)
	} else {
		log.Info("eval: the report for these inputs and settings exists", "out", s.Out, "fingerprint", prov.Fingerprint)
	}
	s.Report, st.Records = rep, len(rep.Datasets)

	if len(s.Pairs) > 0 {
		task := env.Progress.Start("scores", "inputs", 0)
		last := 0
		scores, _, err := eval.Score(ctx, emb, s.Pairs, eval.ScoreConfig{Cache: cache, Progress: func(done, total int) {
			task.SetTotal(total)
			task.Add(done - last)
			last = done
		}})
		task.End()
		if err != nil {
			return st, err
		}
		s.Scores = scores
	}
	return st, nil
}

// reusable reads the report in Out when it covers exactly the current manifests.
func (s *Eval) reusable() *eval.Report {
	data, err := os.ReadFile(filepath.Join(s.Out, eval.ReportJSON))
	if err != nil {
		return nil
	}
	var rep eval.Report
	if json.Unmarshal(data, &rep) != nil || len(rep.Datasets) != len(s.Datasets) {
		return nil
	}
	for i, d := range s.Datasets {
		sum, err := (*Hashes)(nil).Sum(d.Manifest)
		if err != nil || rep.Datasets[i].Name != d.Name || rep.Datasets[i].ManifestSHA256 != sum {
			return nil
		}
	}
	return &rep
}

// taskByName follows eval.Run's progress from one dataset to the next.
type taskByName struct {
	name string
	t    *progress.Task
	done int
}

func (t *taskByName) next(env *Env, name, unit string, total int) *taskByName {
	if t != nil && t.name == name {
		return t
	}
	t.end()
	return &taskByName{name: name, t: env.Progress.Start(name, unit, total)}
}

func (t *taskByName) set(done int) {
	t.t.Add(done - t.done)
	t.done = done
}

func (t *taskByName) end() {
	if t != nil {
		t.t.End()
	}
}

// evalEmbedder adapts a Long-CLIP Embedder to eval.Embedder.
type evalEmbedder struct {
	e    *longclip.Embedder
	info eval.ModelInfo
}

func (m *evalEmbedder) Model() eval.ModelInfo { return m.info }

func (m *evalEmbedder) EmbedImages(ctx context.Context, paths []string) ([][]float32, []error) {
	if err := ctx.Err(); err != nil {
		return nil, fill(len(paths), err)
	}
	return m.e.EmbedImages(paths)
}

func (m *evalEmbedder) EmbedTexts(ctx context.Context, texts []string) ([][]float32, []error) {
	if err := ctx.Err(); err != nil {
		return nil, fill(len(texts), err)
	}
	return m.e.EmbedTexts(texts)
}

func fill(n int, err error) []error {
	errs := make([]error, n)
	for i := range errs {
		errs[i] = err
	}
	return errs
}

func (s *Eval) models() []string { return nonEmpty(s.Params.Model, s.Params.Vocab) }
