package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"synth/dataset/embcache"
	"synth/eval"
	"synth/vision/longclip"
)

func evalCommand() *cli.Command {
	flags := append(longclipFlags(),
		&cli.StringSliceFlag{Name: "data", Required: true, Usage: "a dataset `NAME=MANIFEST` (repeatable); the first is the reference (real) set"},
		&cli.StringFlag{Name: "out", Required: true, Usage: "report folder: report.md, report.json, similarity.png"},
		&cli.IntFlag{Name: "products", Value: 1000, Usage: "products sampled per dataset (n; the paper's 1000)"},
		&cli.IntFlag{Name: "images-per-product", Value: 2, Usage: "images taken per product (k; the paper's 2)"},
		&cli.Uint64Flag{Name: "seed", Value: 0, Usage: "seed of the product and image sample and of the bootstrap"},
		&cli.IntFlag{Name: "bootstrap", Value: 1000, Usage: "bootstrap replicates for the 95% intervals"},
		&cli.BoolFlag{Name: "strict", Usage: "a sampled product with a missing or undecodable image is fatal (default: excluded and reported)"},
		&cli.StringFlag{Name: "cache", Usage: "embedding cache `DIR` (default: $XDG_CACHE_HOME/synth/embeddings, or ~/.cache/...)"},
		&cli.BoolFlag{Name: "no-cache", Usage: "embed everything again and keep nothing"},
	)
	return &cli.Command{
		Name:  "eval",
		Usage: "the paper's Table 1: Long-CLIP image-text similarity, same product vs different products",
		Description: "Samples n products with at least k images from each dataset (seeded), embeds k images\n" +
			"and the product text with Long-CLIP (L2-normalised), and reports for every dataset the\n" +
			"mean and population variance of same-product and different-product cosines (the\n" +
			"paper's columns), with std, bootstrap 95% CIs, AUC P(same > diff), recall@1/5/10 in\n" +
			"both directions, image-image similarity, and the KS and Wasserstein-1 distances of\n" +
			"each dataset's distributions to the first (reference) dataset's.\n\n" +
			"Embeddings are cached by model, preprocessing and content, so a second eval or an\n" +
			"interrupted one recomputes nothing already done.\n\n" +
			"   synth eval --model LongCLIP-L.pt --data source=real.jsonl --data captioned=cap.jsonl --out eval/",
		Flags:  flags,
		Action: runEval,
	}
}

func runEval(c *cli.Context) error {
	if c.Args().Present() {
		return usageErrorf("eval takes no arguments, got %q", c.Args().Slice())
	}
	var sets []eval.Dataset
	names := map[string]bool{}
	for _, d := range c.StringSlice("data") {
		name, path, ok := strings.Cut(d, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" || path == "" {
			return usageErrorf("--data %q: want NAME=MANIFEST", d)
		}
		if names[name] {
			return usageErrorf("--data: dataset name %q given twice", name)
		}
		if _, err := os.Stat(path); err != nil {
			return usageErrorf("--data %s: %v", name, err)
		}
		names[name] = true
		sets = append(sets, eval.Dataset{Name: name, Manifest: path})
	}
	if c.Int("products") < 1 || c.Int("images-per-product") < 1 {
		return usageErrorf("--products and --images-per-product must be >= 1")
	}
	if _, err := intInRange(c, "bootstrap", 0, maxBootstrap); err != nil {
		return err
	}
	var cache *embcache.Cache
	if !c.Bool("no-cache") {
		dir := c.String("cache")
		if dir == "" {
			var err error
			if dir, err = defaultCacheDir(); err != nil {
				return err
			}
		}
		var err error
		if cache, err = embcache.Open(dir); err != nil {
			return err
		}
		defer cache.Close()
	}
	e, err := openEmbedder(c, true, true)
	if err != nil {
		return err
	}
	defer e.Close()
	emb, err := newEvalEmbedder(e, c.String("model"), c.String("dtype"), c.Bool("upstream-fp16"))
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	stderr := c.App.ErrWriter
	last := time.Time{}
	start := time.Now()
	rep, err := eval.Run(ctx, eval.Config{
		Datasets: sets, Products: c.Int("products"), ImagesPerProduct: c.Int("images-per-product"),
		Seed: c.Uint64("seed"), Bootstrap: c.Int("bootstrap"), Strict: c.Bool("strict"), Cache: cache,
		Warn: func(w string) { fmt.Fprintf(stderr, "eval: warning: %s\n", w) },
		Progress: func(p eval.Progress) {
			if time.Since(last) < 5*time.Second && p.Done < p.Want {
				return
			}
			last = time.Now()
			fmt.Fprintf(stderr, "eval: %s: %d/%d products embedded, %d excluded (%s)\n", p.Dataset, p.Done, p.Want, p.Excluded, time.Since(start).Round(time.Second))
		},
	}, emb)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("eval: interrupted; rerun the same command: the embeddings done so far are cached")
		}
		return err
	}
	if err := rep.WriteFiles(c.String("out")); err != nil {
		return err
	}
	fmt.Fprint(c.App.Writer, rep.Markdown())
	fmt.Fprintf(stderr, "eval: report in %s (%s)\n", filepath.Join(c.String("out"), "report.md"), time.Since(start).Round(time.Millisecond))
	return nil
}

// defaultCacheDir follows the XDG base directory convention.
func defaultCacheDir() (string, error) {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "synth", "embeddings"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("eval: no cache folder (no $HOME): give --cache DIR or --no-cache")
	}
	return filepath.Join(home, ".cache", "synth", "embeddings"), nil
}

// evalEmbedder adapts a Long-CLIP Embedder to eval.Embedder.
type evalEmbedder struct {
	e    *longclip.Embedder
	info eval.ModelInfo
}

func newEvalEmbedder(e *longclip.Embedder, model, dtype string, fp16 bool) (*evalEmbedder, error) {
	sum, err := e.Model().Fingerprint()
	if err != nil {
		return nil, err
	}
	// Everything besides the weights that changes an embedding is part of the
	// preprocessing ids, which key the cache: the in-memory dtype, upstream's fp16
	// rounding, the image transform and the tokenizer's vocabulary.
	weightsMode := "dtype=" + dtype
	if fp16 {
		weightsMode += " upstream-fp16"
	}
	cfg := e.Model().Config
	return &evalEmbedder{e: e, info: eval.ModelInfo{
		Name:               "Long-CLIP " + cfg.String(),
		File:               model,
		SHA256:             sum,
		Dim:                e.Dim(),
		ImagePreprocessing: fmt.Sprintf("%s@%d %s", longclip.PreprocessID, cfg.Vision.Resolution, weightsMode),
		TextPreprocessing:  fmt.Sprintf("cliptok vocab=%s context=248 truncate %s", vocabID(e), weightsMode),
	}}, nil
}

func vocabID(e *longclip.Embedder) string {
	if e.Tokenizer() == nil {
		return "none"
	}
	return e.Tokenizer().Fingerprint()[:16]
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
