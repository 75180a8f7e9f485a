package quantbench

import (
	"context"
	"fmt"
	"image"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	"synth/dataset"
	"synth/dataset/imagefile"
	"synth/eval"
	"synth/eval/quant"
	"synth/native"
	"synth/vision/cliptok"
	"synth/vision/longclip"
	"synth/weights"
)

// clipVocabName is the CLIP merges file looked for beside a Long-CLIP checkpoint.
const clipVocabName = "bpe_simple_vocab_16e6.txt.gz"

// evalRun is one level's evaluation: eval's report on the sample and every embedding
// the evaluation asked for, by image path and by text.
type evalRun struct {
	rep    *eval.Report
	images map[string][]float32
	texts  map[string][]float32
	cost   *quant.Cost
}

func runEval(ctx context.Context, cfg *Config) (*quant.Model, error) {
	e := cfg.Eval
	vocab := e.Vocab
	if vocab == "" {
		vocab = filepath.Join(besideModel(e.Model), clipVocabName)
	}
	tok, err := cliptok.Load(vocab)
	if err != nil {
		return nil, fmt.Errorf("quantbench: eval model's tokenizer (give its merges file): %w", err)
	}
	man, err := dataset.ReadManifest(cfg.Sample)
	if err != nil {
		return nil, err
	}
	src, err := weights.Open(e.Model)
	if err != nil {
		return nil, err
	}
	var config []byte
	if b, err := os.ReadFile(filepath.Join(besideModel(e.Model), "config.json")); err == nil && src.Config() == nil {
		config = b
	}
	levels := visionLevels(cfg.Levels, src, "longclip")
	src.Close()

	refStored, size, err := storedTypes(e.Model)
	if err != nil {
		return nil, err
	}
	task := cfg.start(quant.RoleEval, len(levels))
	defer task.End()
	task.Note("reference")
	ref, err := cfg.evalLevel(ctx, e.Model, native.F32, size, tok)
	if err != nil {
		return nil, err
	}
	m := &quant.Model{Role: quant.RoleEval, Name: "Long-CLIP", Path: e.Model,
		Items: ref.rep.Datasets[0].Used, ItemsAre: fmt.Sprintf("products (Table 1 sample, seed %d), %d images each and the text", cfg.Seed, ref.rep.Params.ImagesPerProduct),
		Reference: quant.Level{Level: dominant(refStored), Stored: refStored, Cost: ref.cost}}
	m.Notes = append(m.Notes, ref.rep.Datasets[0].Notes...)
	task.Add(1)
	m.Levels, err = cfg.eachLevel(task, quant.RoleEval, e.Model, "longclip", config, levels, func(l visionLevel, path string, size int64) (quant.Level, error) {
		run, err := cfg.evalLevel(ctx, path, l.runs, size, tok)
		if err != nil {
			return quant.Level{}, err
		}
		lv := quant.Level{Cost: run.cost}
		lv.Embedding, err = compareEmbeddings(man, ref, run)
		return lv, err
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// evalLevel loads the model at path with Linear weights as dt and runs the evaluation.
func (cfg *Config) evalLevel(ctx context.Context, path string, dt native.DType, size int64, tok *cliptok.Tokenizer) (*evalRun, error) {
	mt := startMeter(cfg.Device, size)
	model, err := longclip.Open(path, longclip.Options{DType: dt, Device: cfg.Device})
	if err != nil {
		return nil, err
	}
	defer model.Close()
	emb, err := longclip.NewEmbedder(model, tok, longclip.EmbedderOptions{Threads: cfg.Threads, Batch: cfg.Batch, Normalize: true,
		Decode: func(p string) (image.Image, error) { return imagefile.Decode(p, imagefile.Limits{}) }})
	if err != nil {
		return nil, err
	}
	defer emb.Close()
	mt.loaded()
	rec := &recorder{e: emb, images: map[string][]float32{}, texts: map[string][]float32{},
		info: eval.ModelInfo{Name: "Long-CLIP", File: path, SHA256: "quantbench (no cache)", Dim: emb.Dim()}}
	rep, err := eval.Run(ctx, eval.Config{
		Datasets: []eval.Dataset{{Name: "sample", Manifest: cfg.Sample}},
		Products: cfg.N, Seed: cfg.Seed, Bootstrap: 100,
	}, rec)
	if err != nil {
		return nil, err
	}
	return &evalRun{rep: rep, images: rec.images, texts: rec.texts, cost: mt.done(float64(rec.nImages), "images/s", rec.imageTime)}, nil
}

// recorder is eval's Embedder over a Long-CLIP Embedder that keeps every embedding and
// times the image embedding.
type recorder struct {
	e             *longclip.Embedder
	info          eval.ModelInfo
	mu            sync.Mutex
	images, texts map[string][]float32
	nImages       int
	imageTime     time.Duration
}

func (r *recorder) Model() eval.ModelInfo { return r.info }

func (r *recorder) EmbedImages(ctx context.Context, paths []string) ([][]float32, []error) {
	start := time.Now()
	vecs, errs := r.e.EmbedImages(paths)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.imageTime += time.Since(start)
	r.nImages += len(paths)
	keep(r.images, paths, vecs, errs)
	return vecs, errs
}

func (r *recorder) EmbedTexts(ctx context.Context, texts []string) ([][]float32, []error) {
	vecs, errs := r.e.EmbedTexts(texts)
	r.mu.Lock()
	defer r.mu.Unlock()
	keep(r.texts, texts, vecs, errs)
	return vecs, errs
}

// keep records copies: eval normalises the vectors it is given in place.
func keep(m map[string][]float32, keys []string, vecs [][]float32, errs []error) {
	for i, k := range keys {
		if errs[i] == nil && vecs[i] != nil {
			m[k] = append([]float32(nil), vecs[i]...)
		}
	}
}

// compareEmbeddings compares a level's evaluation with the reference's: each embedding's
// cosine to the reference's, the Table 1 numbers, and the rank agreement of the
// per-record scores (cos(image, its product's text) for every sampled image both
// evaluations kept).
func compareEmbeddings(man *dataset.Manifest, ref, lv *evalRun) (*quant.EmbeddingAgreement, error) {
	a := &quant.EmbeddingAgreement{Table1: quant.Table1Changes(&ref.rep.Datasets[0], &lv.rep.Datasets[0])}
	var all []float64
	a.Images, all = cosines(ref.images, lv.images, all)
	a.Texts, all = cosines(ref.texts, lv.texts, all)
	a.All = summarize(all)
	text := map[string]string{}
	for _, p := range man.Products {
		text[p.ID] = p.Text
	}
	inLevel := map[string]bool{}
	for _, p := range lv.rep.Datasets[0].Sampled {
		for _, img := range p.Images {
			inLevel[p.ID+"\x00"+img] = true
		}
	}
	var rs, ls []float64
	for _, p := range ref.rep.Datasets[0].Sampled {
		for _, img := range p.Images {
			if !inLevel[p.ID+"\x00"+img] {
				continue
			}
			path, t := man.ImagePath(img), text[p.ID]
			ri, rt, li, lt := ref.images[path], ref.texts[t], lv.images[path], lv.texts[t]
			if ri == nil || rt == nil || li == nil || lt == nil {
				return nil, fmt.Errorf("quantbench: eval: product %s image %s: an embedding of the sample is missing", p.ID, img)
			}
			rs = append(rs, cosine(ri, rt))
			ls = append(ls, cosine(li, lt))
		}
	}
	a.Records = len(rs)
	a.Spearman = quant.Num(quant.Spearman(rs, ls))
	a.KendallTauB = quant.Num(quant.KendallTauB(rs, ls))
	return a, nil
}

// cosines summarises the cosine of every level embedding to the reference's of the same
// input, appending them to all.
func cosines(ref, lv map[string][]float32, all []float64) (quant.CosineStats, []float64) {
	var cs []float64
	for k, r := range ref {
		if l, ok := lv[k]; ok {
			cs = append(cs, cosine(r, l))
		}
	}
	return summarize(cs), append(all, cs...)
}

func summarize(cs []float64) quant.CosineStats {
	s := quant.CosineStats{Count: len(cs)}
	if len(cs) == 0 {
		return s
	}
	s.Min = math.Inf(1)
	var sum float64
	for _, c := range cs {
		sum += c
		s.Min = min(s.Min, c)
	}
	s.Mean = sum / float64(len(cs))
	return s
}

func cosine(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	if aa == 0 || bb == 0 {
		return 0
	}
	return ab / math.Sqrt(aa*bb)
}

// besideModel is the folder of a model: the path itself, or a file's folder.
func besideModel(path string) string {
	if st, err := os.Stat(path); err == nil && !st.IsDir() {
		return filepath.Dir(path)
	}
	return path
}
