package eval

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"synth/dataset"
	"synth/dataset/embcache"
	"synth/dataset/imagefile"
)

// Embedder turns image files and texts into embeddings (Long-CLIP in `synth eval`).
// Vectors need not be normalised; Run normalises them.
type Embedder interface {
	// Model describes the model: the report records it, the cache keys on it.
	Model() ModelInfo
	// EmbedImages embeds the image files at paths. For each i exactly one of vecs[i] and
	// errs[i] is set; an error is that image's fault (undecodable, too large, ...).
	// Failures of the embedder itself (ctx cancelled included) are returned for every
	// item alike; Run stops when ctx is done.
	EmbedImages(ctx context.Context, paths []string) (vecs [][]float32, errs []error)
	// EmbedTexts embeds texts, with the same contract.
	EmbedTexts(ctx context.Context, texts []string) (vecs [][]float32, errs []error)
}

// ModelInfo identifies the embedding model.
type ModelInfo struct {
	Name   string `json:"name"`           // e.g. "LONGCLIP-L"
	File   string `json:"file,omitempty"` // the weights file
	SHA256 string `json:"sha256"`         // hex SHA-256 of the weights file
	Dim    int    `json:"dim,omitempty"`  // embedding width, 0 when not known ahead
	// ImagePreprocessing and TextPreprocessing name everything besides the weights that
	// decides an embedding (e.g. "clip-224-bicubic", "cliptok-248-truncate"): part of the
	// cache key, so changing either never returns stale vectors.
	ImagePreprocessing string `json:"image_preprocessing"`
	TextPreprocessing  string `json:"text_preprocessing"`
}

// Dataset names a manifest to evaluate.
type Dataset struct {
	Name     string // the report's row label, e.g. "source"
	Manifest string // path of the JSONL manifest
}

// Config is one evaluation. Zero values take the defaults noted.
type Config struct {
	// Datasets: the first is the reference (the real, source data) that the others'
	// distributions are compared with.
	Datasets []Dataset
	// Products is n, the products sampled per dataset (default 1000, the paper's).
	Products int
	// ImagesPerProduct is k, the images taken per product (default 2, the paper's).
	ImagesPerProduct int
	// Seed selects the sample and the bootstrap draws.
	Seed uint64
	// Bootstrap is the number of bootstrap replicates (default 1000).
	Bootstrap int
	// Strict makes a sampled product with a missing or undecodable image, or a text the
	// embedder rejects, fatal instead of excluded and reported.
	Strict bool
	// Batch is the number of products embedded per call (default 32); the cache is
	// written after each batch, so a killed run loses at most one batch.
	Batch int
	// Cache, when not nil, is consulted before the embedder and filled after it.
	Cache *embcache.Cache
	// Progress, when not nil, is called after each batch.
	Progress func(Progress)
	// Warn, when not nil, gets each warning as soon as it is found (the report keeps
	// them too): e.g. a dataset whose texts are mostly not English.
	Warn func(string)
}

// Progress reports how far Run has come with one dataset.
type Progress struct {
	Dataset    string
	Done, Want int // products embedded successfully so far, and the target: n, or fewer when fewer are eligible
	Excluded   int
}

// Defaults (the paper's protocol).
const (
	DefaultProducts         = 1000
	DefaultImagesPerProduct = 2
	DefaultBootstrap        = 1000
	DefaultBatch            = 32
)

// ErrStrict is wrapped by Run's error when Config.Strict is set and a product fails.
var ErrStrict = errors.New("bad product (strict)")

func (c *Config) setDefaults() error {
	if c.Products == 0 {
		c.Products = DefaultProducts
	}
	if c.ImagesPerProduct == 0 {
		c.ImagesPerProduct = DefaultImagesPerProduct
	}
	if c.Bootstrap == 0 {
		c.Bootstrap = DefaultBootstrap
	}
	if c.Batch == 0 {
		c.Batch = DefaultBatch
	}
	switch {
	case len(c.Datasets) == 0:
		return errors.New("eval: no dataset to evaluate")
	case c.Products < 2:
		return fmt.Errorf("eval: products = %d: different-product pairs need at least 2", c.Products)
	case c.ImagesPerProduct < 1:
		return fmt.Errorf("eval: images per product = %d, want >= 1", c.ImagesPerProduct)
	case c.Bootstrap < 1:
		return fmt.Errorf("eval: bootstrap replicates = %d, want >= 1", c.Bootstrap)
	case c.Batch < 1:
		return fmt.Errorf("eval: batch = %d, want >= 1", c.Batch)
	}
	seen := map[string]bool{}
	for i, d := range c.Datasets {
		if strings.TrimSpace(d.Name) == "" {
			return fmt.Errorf("eval: dataset %d (%s) has no name", i+1, d.Manifest)
		}
		if seen[d.Name] {
			return fmt.Errorf("eval: dataset name %q used twice", d.Name)
		}
		seen[d.Name] = true
	}
	return nil
}

// minImages is how many images make a product eligible: the protocol's 2, or k if more.
func (c *Config) minImages() int { return max(2, c.ImagesPerProduct) }

// Run evaluates every dataset of cfg with emb and returns the report; WriteFiles writes
// it out. For each dataset it ranks the eligible products (>= 2 images, and >= k; a
// non-empty text) by the seeded sampler, embeds them in that order until n have
// embedded cleanly (a product with a failing image or text is excluded and reported,
// and the next one takes its place), then computes the statistics.
func Run(ctx context.Context, cfg Config, emb Embedder) (*Report, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	info := emb.Model()
	rep := &Report{
		Params: Params{
			Products:         cfg.Products,
			ImagesPerProduct: cfg.ImagesPerProduct,
			Seed:             cfg.Seed,
			Bootstrap:        cfg.Bootstrap,
			Strict:           cfg.Strict,
			Sampler:          samplerVersion,
		},
		Model: info,
	}
	var sims []*sorted
	for _, ds := range cfg.Datasets {
		dr, s, err := evalDataset(ctx, &cfg, emb, ds, &rep.Model)
		if err != nil {
			return nil, err
		}
		rep.Datasets = append(rep.Datasets, *dr)
		rep.Warnings = append(rep.Warnings, dr.Warnings...)
		sims = append(sims, s)
	}
	ref := sims[0]
	for i := 1; i < len(sims); i++ {
		rep.Datasets[i].VsReference = &Distances{
			Reference: rep.Datasets[0].Name,
			Same:      Distance{KS: KS(sims[i].same, ref.same), W1: Wasserstein1(sims[i].same, ref.same)},
			Diff:      Distance{KS: KS(sims[i].diff, ref.diff), W1: Wasserstein1(sims[i].diff, ref.diff)},
		}
	}
	rep.Histogram = histograms(sims, histogramBins)
	for i := range rep.Datasets {
		rep.Datasets[i].HistogramSame = rep.Histogram.counts(sims[i].same)
		rep.Datasets[i].HistogramDiff = rep.Histogram.counts(sims[i].diff)
	}
	return rep, nil
}

// sorted holds one dataset's cosines, sorted ascending, for distances and histograms.
type sorted struct{ same, diff []float32 }

func evalDataset(ctx context.Context, cfg *Config, emb Embedder, ds Dataset, info *ModelInfo) (*DatasetReport, *sorted, error) {
	m, err := readManifest(ds.Manifest)
	if err != nil {
		return nil, nil, err
	}
	dr := &DatasetReport{
		Name:           ds.Name,
		Manifest:       ds.Manifest,
		ManifestSHA256: m.sha256,
		Products:       len(m.Products),
		Requested:      cfg.Products,
		Excluded:       []Excluded{},
	}
	dr.Ineligible.Products = []Excluded{}
	var eligible []dataset.Product
	for _, p := range m.Products {
		switch {
		case len(p.Images) < cfg.minImages():
			dr.Ineligible.FewImages++
			dr.Ineligible.Products = append(dr.Ineligible.Products, Excluded{ID: p.ID,
				Reason: fmt.Sprintf("%d of the %d images the protocol needs", len(p.Images), cfg.minImages())})
		case strings.TrimSpace(p.Text) == "":
			dr.Ineligible.NoText++
			dr.Ineligible.Products = append(dr.Ineligible.Products, Excluded{ID: p.ID, Reason: "no text"})
		default:
			eligible = append(eligible, p)
		}
	}
	dr.Eligible = len(eligible)
	ids := make([]string, len(eligible))
	words := make([]string, len(eligible))
	for i, p := range eligible {
		ids[i], words[i] = p.ID, p.Text
	}
	dr.Scripts = CountScripts(words)
	if w := dr.Scripts.warning(ds.Name); w != "" {
		dr.Warnings = append(dr.Warnings, w)
		if cfg.Warn != nil {
			cfg.Warn(w)
		}
	}
	order := rankOrder(cfg.Seed, ids)

	start := time.Now()
	e := &embedRun{ctx: ctx, cfg: cfg, emb: emb, info: info, m: m, name: ds.Name}
	var images, texts [][]float32 // [n*k][D], [n][D]
	for next := 0; len(texts) < cfg.Products && next < len(order); {
		if err := ctx.Err(); err != nil {
			return nil, nil, fmt.Errorf("eval: dataset %s: %w", ds.Name, err)
		}
		want := min(cfg.Batch, cfg.Products-len(texts), len(order)-next)
		batch := make([]dataset.Product, want)
		for i := range batch {
			batch[i] = eligible[order[next+i]]
		}
		next += want
		got, err := e.embedProducts(batch)
		if err != nil {
			return nil, nil, err
		}
		for i, p := range batch {
			r := got[i]
			if r.err != nil {
				if cfg.Strict {
					return nil, nil, fmt.Errorf("eval: dataset %s: product %q: %w: %v", ds.Name, p.ID, ErrStrict, r.err)
				}
				dr.Excluded = append(dr.Excluded, Excluded{ID: p.ID, Reason: r.err.Error()})
				continue
			}
			images = append(images, r.images...)
			texts = append(texts, r.text)
			dr.Sampled = append(dr.Sampled, SampledProduct{ID: p.ID, Images: r.paths})
		}
		if cfg.Progress != nil {
			cfg.Progress(Progress{Dataset: ds.Name, Done: len(texts), Want: min(cfg.Products, len(eligible)), Excluded: len(dr.Excluded)})
		}
	}
	dr.Embedding = e.stats
	dr.Seconds.Embed = time.Since(start).Seconds()
	n := len(texts)
	dr.Used = n
	if n < 2 {
		return nil, nil, fmt.Errorf("eval: dataset %s: %d usable products of %d in %s (%d eligible, %d excluded): different-product pairs need at least 2",
			ds.Name, n, len(m.Products), ds.Manifest, len(eligible), len(dr.Excluded))
	}
	if n < cfg.Products {
		dr.Notes = append(dr.Notes, fmt.Sprintf("used all %d usable products: %d eligible (of %d in the manifest), %d excluded; fewer than the %d requested",
			n, len(eligible), len(m.Products), len(dr.Excluded), cfg.Products))
	}

	start = time.Now()
	srt := analyze(dr, images, texts, cfg.ImagesPerProduct, cfg.Bootstrap, newRNG(cfg.Seed, "synth/eval/bootstrap\x00"+ds.Name))
	dr.Seconds.Analyze = time.Since(start).Seconds()
	return dr, srt, nil
}

// analyze fills dr's statistics from the sample's normalised embeddings, images
// [n*k][D] product-major and texts [n][D], and returns the sorted cosines.
func analyze(dr *DatasetReport, images, texts [][]float32, k, replicates int, r *rng) *sorted {
	sim := NewSimilarity(images, texts, k)
	same, diff := sim.Same(), sim.Diff()
	dr.Same.Summary, dr.Diff.Summary = Summarize(same), Summarize(diff)
	dr.Same.CI95, dr.Diff.CI95 = sim.BootstrapCI(replicates, r)
	dr.Recall.ImageToText = sim.ImageToText()
	dr.Recall.TextToImage = sim.TextToImage()
	dr.ImageImage.Same, dr.ImageImage.Diff = ImageImage(images, k)
	sortFloat32(same)
	sortFloat32(diff)
	dr.AUC = AUC(same, diff)
	return &sorted{same: same, diff: diff}
}

// productResult is one product's embeddings (normalised) or the reason it failed.
type productResult struct {
	images [][]float32 // [k][D]
	paths  []string    // the chosen images as the manifest names them
	text   []float32   // [D]
	err    error
}

type embedRun struct {
	ctx   context.Context
	cfg   *Config
	emb   Embedder
	info  *ModelInfo
	m     *manifest
	name  string
	stats EmbeddingStats
}

// job is one input to embed: an image file or a text, and where its vector goes.
type job struct {
	product int
	slot    int    // image slot, or -1 for the text
	name    string // the image as the manifest names it
	path    string // resolved against the manifest's folder
	text    string
	key     embcache.Key
	vec     []float32
	err     error
}

// describe names the input in error messages and the report's exclusion reasons.
func (j *job) describe() string {
	if j.slot >= 0 {
		return "image " + j.name
	}
	return "text"
}

// embedProducts embeds the chosen images and the text of each product, reading the
// cache first and writing what it computed back to it.
func (e *embedRun) embedProducts(batch []dataset.Product) ([]productResult, error) {
	k := e.cfg.ImagesPerProduct
	res := make([]productResult, len(batch))
	var jobs []*job
	for i, p := range batch {
		res[i].images = make([][]float32, k)
		for slot, idx := range chooseImages(e.cfg.Seed, p.ID, len(p.Images), k) {
			res[i].paths = append(res[i].paths, p.Images[idx])
			jobs = append(jobs, &job{product: i, slot: slot, name: p.Images[idx], path: e.m.ImagePath(p.Images[idx])})
		}
		jobs = append(jobs, &job{product: i, slot: -1, text: p.Text})
	}

	if err := e.resolve(jobs); err != nil {
		return nil, err
	}

	for _, j := range jobs {
		r := &res[j.product]
		if j.err == nil {
			if err := e.checkDim(j.vec); err != nil {
				return nil, fmt.Errorf("eval: dataset %s: %s: %w", e.name, j.describe(), err)
			}
			if err := Normalize(j.vec); err != nil {
				j.err = fmt.Errorf("%s: %w", j.describe(), err)
			}
		}
		if j.err != nil {
			if r.err == nil { // the first failure of a product is its reason
				r.err = j.err
			}
			continue
		}
		if j.slot >= 0 {
			r.images[j.slot] = j.vec
		} else {
			r.text = j.vec
		}
	}
	return res, nil
}

// resolve fills every job's vector or error: its cache key, the cache, then the
// embedder for what the cache did not have.
func (e *embedRun) resolve(jobs []*job) error {
	var imgMiss, txtMiss []*job
	for _, j := range jobs {
		if j.slot >= 0 {
			// bounded, and refusing FIFOs and devices, before anything is read
			b, err := imagefile.ReadFile(j.path, imagefile.Limits{})
			if err != nil {
				j.err = fmt.Errorf("%s: %w", j.describe(), unwrapPath(err))
				continue
			}
			j.key = embcache.ImageKey(e.info.SHA256, e.info.ImagePreprocessing, sha256.Sum256(b))
		} else {
			j.key = embcache.TextKey(e.info.SHA256, e.info.TextPreprocessing, j.text)
		}
		if e.cfg.Cache != nil {
			v, ok, err := e.cfg.Cache.Get(j.key)
			if err != nil {
				return fmt.Errorf("eval: %w", err)
			}
			if ok {
				j.vec = v
				if j.slot >= 0 {
					e.stats.ImagesCached++
				} else {
					e.stats.TextsCached++
				}
				continue
			}
		}
		if j.slot >= 0 {
			imgMiss = append(imgMiss, j)
		} else {
			txtMiss = append(txtMiss, j)
		}
	}

	if err := e.embed(imgMiss, true); err != nil {
		return err
	}
	if err := e.embed(txtMiss, false); err != nil {
		return err
	}

	return nil
}

// embed runs the embedder on jobs and stores what it returns in the cache.
func (e *embedRun) embed(jobs []*job, images bool) error {
	if len(jobs) == 0 {
		return nil
	}
	in := make([]string, len(jobs))
	for i, j := range jobs {
		if images {
			in[i] = j.path
		} else {
			in[i] = j.text
		}
	}
	var vecs [][]float32
	var errs []error
	what := "texts"
	if images {
		what = "images"
		vecs, errs = e.emb.EmbedImages(e.ctx, in)
		e.stats.ImagesEmbedded += len(in)
	} else {
		vecs, errs = e.emb.EmbedTexts(e.ctx, in)
		e.stats.TextsEmbedded += len(in)
	}
	if err := e.ctx.Err(); err != nil {
		return fmt.Errorf("eval: dataset %s: %w", e.name, err)
	}
	if len(vecs) != len(in) || len(errs) != len(in) {
		return fmt.Errorf("eval: embedder returned %d vectors and %d errors for %d %s", len(vecs), len(errs), len(in), what)
	}
	var keys []embcache.Key
	var good [][]float32
	for i, j := range jobs {
		switch {
		case errs[i] != nil:
			j.err = fmt.Errorf("%s: %w", j.describe(), errs[i])
		case len(vecs[i]) == 0:
			return fmt.Errorf("eval: embedder returned neither a vector nor an error for %s", j.describe())
		default:
			if err := e.checkDim(vecs[i]); err != nil {
				return fmt.Errorf("eval: dataset %s: embedder output for %s: %w", e.name, j.describe(), err)
			}
			j.vec = vecs[i]
			// A zero or NaN vector is the input's fault and is not worth keeping.
			if Normalize(slices.Clone(j.vec)) == nil {
				keys = append(keys, j.key)
				good = append(good, j.vec)
			}
		}
	}
	if e.cfg.Cache != nil && len(keys) > 0 {
		if err := e.cfg.Cache.PutMany(keys, good); err != nil {
			return fmt.Errorf("eval: %w", err)
		}
	}
	return nil
}

// checkDim fixes the embedding width at the first vector seen and holds every later one
// to it: images and texts must share the space for cosines to mean anything.
func (e *embedRun) checkDim(v []float32) error {
	if e.info.Dim == 0 {
		e.info.Dim = len(v)
	}
	if len(v) != e.info.Dim {
		return fmt.Errorf("embedding has %d values, want %d", len(v), e.info.Dim)
	}
	return nil
}

// unwrapPath drops the *PathError wrapper, whose message would repeat the path.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}
