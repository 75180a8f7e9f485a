package main

import (
	"errors"
	"fmt"
	"hash/fnv"
	"image"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"synth/dataset"
	"synth/dataset/imagefile"
	"synth/native"
	"synth/vision/blip2"
	"synth/vision/generate"
	"synth/vision/gpt2tok"
	"synth/vision/nn"
	"synth/vision/preprocess"
	"synth/weights"
)

func captionCommand() *cli.Command {
	return &cli.Command{
		Name:  "caption",
		Usage: "caption images with BLIP-2 (OPT) and an optional LoRA adapter, one JSON line per image",
		Description: "Loads --model (a Hugging Face Blip2ForConditionalGeneration folder, or a GGUF from synth\n" +
			"convert) and, with --lora, a PEFT adapter (merged into the weights at load; --lora-live keeps\n" +
			"it unmerged). --images is a manifest (JSONL, one product a line, its images captioned one\n" +
			"by one) or a folder (every .jpg/.jpeg/.png/.gif/.webp below it).\n" +
			"\n" +
			"Images run in batches of --batch: the vision tower and Q-Former see the whole batch, and\n" +
			"all its captions (and beams) decode together. Generation follows transformers' generate():\n" +
			"greedy by default, --beams N for beam search, --sample for sampling; it stops at the\n" +
			"model's EOS ids (blip2-opt: a newline) or after --max-new-tokens.\n" +
			"\n" +
			"Each image gives one line in --out: {id, image, caption, model, lora, params, tokens, ms}\n" +
			"(ms: the batch's time divided among its images) or {id, image, model, lora, params, error}.\n" +
			"A rerun skips images already in --out (--retry-errors redoes the failed ones); a killed run\n" +
			"loses at most the batch in flight. The tokenizer (vocab.json, merges.txt) is read from the\n" +
			"model folder, the GGUF's folder, or --tokenizer.\n" +
			"\n" +
			"Memory: the weights are held once, packed for the kernels; a GGUF is mmap'd and each\n" +
			"tensor's file pages are released once packed, so the file does not stay resident beside\n" +
			"them. --dtype q8_0 on an F32 folder quantizes at load. For the smallest footprint convert\n" +
			"once (every Linear and the tied embeddings become q8_0, norms and position tables stay\n" +
			"f32) and caption from the GGUF:\n" +
			"  synth convert --in DIR --lora LORA --merge --type q8_0 --out m.gguf\n" +
			"The KV cache holds keys and values in f16 by default (--kv-cache f16: half the memory and\n" +
			"memory traffic of f32; the fixture captions are identical either way), for --batch x\n" +
			"(32 queries + prompt + --max-new-tokens) positions, filled as captions grow.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Usage: "BLIP-2 model folder or .gguf file", Required: true},
			&cli.StringFlag{Name: "lora", Usage: "PEFT LoRA adapter folder (adapter_config.json + adapter_model.*)"},
			&cli.BoolFlag{Name: "lora-live", Usage: "keep the adapter unmerged (two small extra GEMMs per adapted layer)"},
			&cli.StringFlag{Name: "images", Usage: "manifest (JSONL) or folder of images", Required: true},
			&cli.StringFlag{Name: "out", Usage: "output JSONL file (appended to; done images are skipped)", Required: true},
			&cli.StringFlag{Name: "tokenizer", Usage: "folder with vocab.json and merges.txt (default: beside the model)"},
			&cli.StringFlag{Name: "prompt", Usage: "text prompt the captions continue (default: none, BOS alone)"},
			&cli.IntFlag{Name: "batch", Value: 8, Usage: "images per batch"},
			&cli.StringFlag{Name: "dtype", Value: "auto", Usage: "weights in memory: auto (as stored), f32, f16, bf16, q8_0, q4_0, q4_k, q5_k or q6_k"},
			&cli.StringFlag{Name: "kv-cache", Value: "f16", Usage: "KV cache element type: f16 or f32"},
			&cli.IntFlag{Name: "max-new-tokens", Value: 120, Usage: "longest caption, in tokens"},
			&cli.IntFlag{Name: "min-new-tokens", Value: 0, Usage: "forbid EOS before this many tokens"},
			&cli.IntFlag{Name: "beams", Value: 1, Usage: "beam search width (1: greedy or sampling)"},
			&cli.Float64Flag{Name: "length-penalty", Value: 1, Usage: "beam search: score = log-prob / length^p"},
			&cli.StringFlag{Name: "early-stopping", Value: "false", Usage: "beam search stop rule: false, true or never"},
			&cli.BoolFlag{Name: "sample", Usage: "sample instead of greedy search"},
			&cli.Float64Flag{Name: "temperature", Value: 1, Usage: "sampling temperature"},
			&cli.IntFlag{Name: "top-k", Value: 50, Usage: "sampling: keep the k most likely tokens (0: off)"},
			&cli.Float64Flag{Name: "top-p", Value: 1, Usage: "sampling: nucleus mass (1: off)"},
			&cli.Uint64Flag{Name: "seed", Value: 0, Usage: "sampling seed (each image's stream depends on it and the image's id)"},
			&cli.Float64Flag{Name: "repetition-penalty", Value: 1, Usage: "penalty on tokens already generated (1: off)"},
			&cli.IntFlag{Name: "no-repeat-ngram", Value: 0, Usage: "forbid repeating n-grams of this size (0: off)"},
			&cli.StringFlag{Name: "shard", Value: "0/1", Usage: "caption only shard `i/n` of the images (by a hash of the product id)"},
			&cli.BoolFlag{Name: "retry-errors", Usage: "redo images whose earlier record in --out is an error"},
			&cli.BoolFlag{Name: "fail-fast", Usage: "stop at the first image that fails instead of recording the error"},
		},
		Action: runCaption,
	}
}

// captionParams is what the records say about how captions were made.
type captionParams struct {
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

type captionRecord struct {
	ID      string        `json:"id"`
	Image   string        `json:"image"`
	Caption *string       `json:"caption,omitempty"`
	Model   string        `json:"model"`
	LoRA    *string       `json:"lora"`
	Params  captionParams `json:"params"`
	Tokens  *int          `json:"tokens,omitempty"`
	MS      *float64      `json:"ms,omitempty"`
	Error   string        `json:"error,omitempty"`
}

// captionItem is one image to caption.
type captionItem struct {
	ID, Image string // as recorded (Image as written in the manifest, or relative to the folder)
	Path      string // the file
}

func runCaption(c *cli.Context) error {
	if c.Args().Present() {
		return usageErrorf("caption takes no arguments, got %q (use --images)", c.Args().First())
	}
	gp, rp, err := captionGenParams(c)
	if err != nil {
		return err
	}
	batch := c.Int("batch")
	if batch < 1 {
		return usageErrorf("--batch must be at least 1, got %d", batch)
	}
	shard, err := dataset.ParseShard(c.String("shard"))
	if err != nil {
		return usageErrorf("--shard: %v", err)
	}
	var dt native.DType
	auto := strings.EqualFold(c.String("dtype"), "auto")
	if !auto {
		if dt, err = nn.ParseDType(c.String("dtype")); err != nil {
			return usageErrorf("--dtype: %v", err)
		}
	}
	var kvCache native.DType
	switch strings.ToLower(c.String("kv-cache")) {
	case "f16":
		kvCache = native.F16
	case "f32":
		kvCache = native.F32
	default:
		return usageErrorf("--kv-cache: %q is not f16 or f32", c.String("kv-cache"))
	}
	if c.Bool("lora-live") && c.String("lora") == "" {
		return usageErrorf("--lora-live needs --lora DIR")
	}

	items, err := listCaptionItems(c.String("images"), shard)
	if err != nil {
		return err
	}
	out, err := dataset.OpenOutput(c.String("out"), dataset.OutputOptions{
		Key: dataset.KeyFields("id", "image"), RetryErrors: c.Bool("retry-errors"),
	})
	if err != nil {
		return err
	}
	defer out.Close()
	todo := items[:0]
	seen := map[string]bool{}
	for _, it := range items {
		key := dataset.JoinKey(it.ID, it.Image)
		if !out.Done(key) && !seen[key] { // a manifest may list an image twice
			seen[key] = true
			todo = append(todo, it)
		}
	}
	slog.Info("caption", "images", len(items), "shard", shard.String(), "already_done", out.Len(), "to_do", len(todo))
	if len(todo) == 0 {
		return nil
	}

	modelPath := c.String("model")
	tokDir := c.String("tokenizer")
	if tokDir == "" {
		tokDir = modelPath
		if st, err := os.Stat(modelPath); err == nil && !st.IsDir() {
			tokDir = filepath.Dir(modelPath)
		}
	}
	if _, err := os.Stat(filepath.Join(tokDir, "vocab.json")); err != nil {
		return fmt.Errorf("caption: no tokenizer in %s (vocab.json and merges.txt): pass --tokenizer DIR", tokDir)
	}
	tok, err := gpt2tok.Load(tokDir)
	if err != nil {
		return err
	}

	start := time.Now()
	src, err := weights.Open(modelPath)
	if err != nil {
		return err
	}
	defer src.Close()
	var loraPath *string
	opts := blip2.Options{LiveLoRA: c.Bool("lora-live"), KVCache: kvCache}
	if dir := c.String("lora"); dir != "" {
		a, err := weights.LoadAdapter(dir)
		if err != nil {
			return err
		}
		defer a.Close()
		opts.Adapter, loraPath = a, &dir
	}
	if auto {
		dt = storedDType(src)
	}
	opts.DType = dt
	rp.DType = strings.ToLower(dt.String())
	rp.LoRALive = opts.LiveLoRA
	rp.KVCache = strings.ToLower(kvCache.String())
	m, err := blip2.Load(src, opts)
	if err != nil {
		return err
	}
	gp.EOS = m.Cfg.Text.EOS
	var promptIDs []int32
	if rp.Prompt != "" {
		promptIDs = tok.Encode(rp.Prompt, true)
	}
	if os.Getenv("GOGC") == "" {
		// The KV cache is one large allocation, mostly untouched pages, that still counts
		// toward the collector's heap goal: at the default GOGC the garbage of decoded
		// images could grow by as much as the cache before a collection.
		defer debug.SetGCPercent(debug.SetGCPercent(25)) // restored for in-process callers (synth pipeline)
	}
	ctx := native.NewCtx(threads(c))
	defer ctx.Close()
	gen, err := m.NewGenerator(ctx, batch, max(len(promptIDs), 1), gp)
	if err != nil {
		return usageErrorf("%v", err)
	}
	slog.Info("model loaded", "model", modelPath, "lora", c.String("lora"), "dtype", rp.DType, "kv_cache", rp.KVCache,
		"threads", ctx.Threads(), "took", time.Since(start).Round(time.Millisecond))

	run := captionRun{
		gen: gen, tok: tok, out: out, params: gp, rec: rp, model: modelPath, lora: loraPath,
		prompt: promptIDs, seed: c.Uint64("seed"), size: m.Cfg.Vision.ImageSize, failFast: c.Bool("fail-fast"),
		workers: max(2, ctx.Threads()),
	}
	return run.all(todo, batch)
}

// captionGenParams reads the generation flags.
func captionGenParams(c *cli.Context) (generate.Params, captionParams, error) {
	early, err := generate.ParseEarlyStopping(c.String("early-stopping"))
	if err != nil {
		return generate.Params{}, captionParams{}, usageErrorf("--early-stopping: %v", err)
	}
	p := generate.Params{
		MaxNewTokens: c.Int("max-new-tokens"), MinNewTokens: c.Int("min-new-tokens"),
		NumBeams: c.Int("beams"), LengthPenalty: c.Float64("length-penalty"), EarlyStopping: early,
		DoSample: c.Bool("sample"), Temperature: c.Float64("temperature"), TopK: c.Int("top-k"), TopP: c.Float64("top-p"),
		RepetitionPenalty: c.Float64("repetition-penalty"), NoRepeatNgramSize: c.Int("no-repeat-ngram"),
	}
	if err := p.Validate(); err != nil {
		return p, captionParams{}, usageErrorf("%v", err)
	}
	rp := captionParams{
		Prompt: c.String("prompt"), MaxNewTokens: p.MaxNewTokens, MinNewTokens: p.MinNewTokens,
		NumBeams: p.NumBeams, LengthPenalty: p.LengthPenalty, EarlyStopping: early.String(), DoSample: p.DoSample,
		RepetitionPenalty: p.RepetitionPenalty, NoRepeatNgramSize: p.NoRepeatNgramSize,
	}
	if p.DoSample {
		rp.Temperature, rp.TopK, rp.TopP, rp.Seed = p.Temperature, p.TopK, p.TopP, c.Uint64("seed")
	}
	return p, rp, nil
}

// storedDType is the dtype the checkpoint keeps its language model's Linear weights in,
// where the kernels read it (F32 otherwise): --dtype auto.
func storedDType(src *weights.Source) native.DType {
	t, err := src.Tensor("language_model.model.decoder.layers.0.fc1.weight")
	if err != nil {
		return native.F32
	}
	if dt, err := nn.ParseDType(t.DType.String()); err == nil {
		return dt
	}
	return native.F32
}

var imageExts = []string{".jpg", ".jpeg", ".png", ".gif", ".webp"}

// listCaptionItems reads a manifest (each product's images) or walks a folder, keeping
// the shard's items.
func listCaptionItems(path string, shard dataset.Shard) ([]captionItem, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("caption: --images: %w", err)
	}
	var items []captionItem
	if !st.IsDir() {
		man, err := dataset.ReadManifest(path)
		if err != nil {
			return nil, err
		}
		for _, p := range man.Products {
			if !shard.Has(p.ID) {
				continue
			}
			for _, img := range p.Images {
				items = append(items, captionItem{ID: p.ID, Image: img, Path: man.ImagePath(img)})
			}
		}
		return items, nil
	}
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !slices.Contains(imageExts, strings.ToLower(filepath.Ext(p))) {
			return nil
		}
		rel, err := filepath.Rel(path, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		id := strings.TrimSuffix(rel, filepath.Ext(rel))
		if shard.Has(id) {
			items = append(items, captionItem{ID: id, Image: rel, Path: p})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("caption: list %s: %w", path, err)
	}
	if len(items) == 0 {
		slog.Warn("caption: no images found", "folder", path, "extensions", strings.Join(imageExts, " "))
	}
	return items, nil
}

// captionRun holds what every batch needs.
type captionRun struct {
	gen      *blip2.Generator
	tok      *gpt2tok.Tokenizer
	out      *dataset.Output
	params   generate.Params
	rec      captionParams
	model    string
	lora     *string
	prompt   []int32
	seed     uint64
	size     int
	failFast bool
	workers  int
}

// preparedBatch is a batch of images decoded and preprocessed.
type preparedBatch struct {
	items  []captionItem
	pixels []float32 // [len(items), 3, S, S]
	errs   []error
}

// all captions the items batch by batch, decoding the next batch while the model runs.
func (r *captionRun) all(items []captionItem, batch int) error {
	batches := make(chan preparedBatch, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		defer close(batches)
		for i := 0; i < len(items); i += batch {
			b := items[i:min(i+batch, len(items))]
			px, errs := preprocess.BatchBLIP(len(b), r.size, r.workers, func(k int) (image.Image, error) {
				return imagefile.Decode(b[k].Path, imagefile.Limits{})
			})
			select {
			case batches <- preparedBatch{items: b, pixels: px, errs: errs}:
			case <-stop:
				return
			}
		}
	}()
	start, lastLog := time.Now(), time.Now()
	done, failed := 0, 0
	for pb := range batches {
		n, f, err := r.one(pb)
		done, failed = done+n, failed+f
		if err != nil {
			return err
		}
		// The collector paces itself by the live heap, gigabytes of weights: even at GOGC=25
		// the garbage of dozens of batches (decoded images, results) would pile up before a
		// cycle, past the weights' own size. A cycle per batch costs milliseconds (the
		// weights hold no pointers) against seconds of captioning.
		runtime.GC()
		if now := time.Now(); now.Sub(lastLog) >= 5*time.Second || done == len(items) {
			lastLog = now
			rate := float64(done) / now.Sub(start).Seconds()
			eta := time.Duration(float64(len(items)-done) / rate * float64(time.Second))
			slog.Info("caption", "done", fmt.Sprintf("%d/%d", done, len(items)), "errors", failed,
				"images_per_s", fmt.Sprintf("%.3f", rate), "eta", eta.Round(time.Second))
		}
	}
	slog.Info("caption finished", "images", done, "errors", failed, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// one captions a prepared batch and writes its records: the images that failed to load
// first, then the captions. It returns the images written and how many were errors.
func (r *captionRun) one(pb preparedBatch) (int, int, error) {
	per := 3 * r.size * r.size
	var ok []captionItem
	var pixels []float32
	failed := 0
	for i, it := range pb.items {
		if pb.errs[i] != nil {
			if r.failFast {
				return 0, 0, fmt.Errorf("caption: %s: %w", it.Path, pb.errs[i])
			}
			if err := r.write(it, captionRecord{Error: fmt.Sprintf("load %s: %v", it.Image, pb.errs[i])}); err != nil {
				return 0, 0, err
			}
			failed++
			continue
		}
		ok = append(ok, it)
		pixels = append(pixels, pb.pixels[i*per:(i+1)*per]...)
	}
	if len(ok) == 0 {
		return len(pb.items), failed, nil
	}
	prompts := make([]blip2.Prompt, len(ok))
	for i, it := range ok {
		h := fnv.New64a()
		h.Write([]byte(it.ID + "\x00" + it.Image))
		prompts[i] = blip2.Prompt{IDs: r.prompt, Seed: r.seed ^ h.Sum64()}
	}
	t0 := time.Now()
	res, err := r.gen.Generate(native.FromF32(pixels, len(ok), 3, r.size, r.size), prompts, r.params)
	if err != nil {
		return 0, 0, err
	}
	ms := math.Round(float64(time.Since(t0).Microseconds())/100/float64(len(ok))) / 10
	for i, it := range ok {
		text := strings.TrimSpace(r.tok.Decode(res[i].Tokens, gpt2tok.DecodeOptions{SkipSpecial: true, CleanUpSpaces: r.tok.CleanUpDefault()}))
		n := len(res[i].Tokens)
		if err := r.write(it, captionRecord{Caption: &text, Tokens: &n, MS: &ms}); err != nil {
			return 0, 0, err
		}
	}
	return len(pb.items), failed, nil
}

func (r *captionRun) write(it captionItem, rec captionRecord) error {
	rec.ID, rec.Image, rec.Model, rec.LoRA, rec.Params = it.ID, it.Image, r.model, r.lora, r.rec
	if err := r.out.Write(dataset.JoinKey(it.ID, it.Image), rec); err != nil && !errors.Is(err, dataset.ErrDuplicate) {
		return fmt.Errorf("caption: %w", err)
	}
	return nil
}
