package longclip

import (
	"context"
	"errors"
	"fmt"
	"image"
	"runtime"
	"sort"
	"strings"
	"sync"

	"synth/internal/filehash"
	"synth/native"
	"synth/vision/cliptok"
	"synth/vision/preprocess"
)

// PreprocessID names the image transform (preprocess.CLIP: PIL 9.4 bicubic resize of the
// short side, center crop, CLIP mean/std), for cache identities.
const PreprocessID = "clip-transform-pil9.4"

// EmbedderOptions configure an Embedder.
type EmbedderOptions struct {
	// Threads is the number of compute workers (0: GOMAXPROCS).
	Threads int
	// Batch is the number of items per forward pass (0: 8).
	Batch int
	// Normalize L2-normalises every embedding (what cosine similarities need).
	Normalize bool
	// Decode reads an image file into the Go image type that stands for its PIL mode
	// (dataset/imagefile.Decode does; see package preprocess). EmbedImages needs it.
	Decode func(path string) (image.Image, error)
	// Workers is the number of goroutines decoding and resizing images (0: max(2,
	// Threads)). The next batch is prepared while the current one is encoded.
	Workers int
}

// Result is one item's outcome: its index in the input, the embedding [E] (nil when
// Err is set) and, for texts, whether the tokens were cut at the 248-token context.
type Result struct {
	Index     int
	Embedding []float32
	Err       error
	Truncated bool
}

// Embedder embeds image files and texts in batches with per-item errors: a file that
// cannot be decoded gives that item an error, never a failed batch or a panic. Its
// methods may be called from several goroutines; they run one at a time.
type Embedder struct {
	m   *Model
	tok *cliptok.Tokenizer
	opt EmbedderOptions

	mu sync.Mutex
	c  *native.Ctx
}

// NewEmbedder makes an Embedder over a loaded model and the CLIP tokenizer (tok may be
// nil when only images are embedded). Close it to stop its workers; the model stays open.
func NewEmbedder(m *Model, tok *cliptok.Tokenizer, opt EmbedderOptions) (*Embedder, error) {
	if opt.Batch <= 0 {
		opt.Batch = 8
	}
	if opt.Threads < 0 || opt.Workers < 0 {
		return nil, fmt.Errorf("longclip: embedder: threads %d, workers %d must not be negative", opt.Threads, opt.Workers)
	}
	if opt.Workers == 0 {
		opt.Workers = max(2, opt.Threads)
		if opt.Threads == 0 {
			opt.Workers = max(2, runtime.GOMAXPROCS(0))
		}
	}
	c, err := native.NewCtxOn(m.Device(), opt.Threads)
	if err != nil {
		return nil, fmt.Errorf("longclip: embedder: %w", err)
	}
	return &Embedder{m: m, tok: tok, opt: opt, c: c}, nil
}

// Close stops the compute workers.
func (e *Embedder) Close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.c != nil {
		e.c.Close()
		e.c = nil
	}
}

// Dim is the embedding width E.
func (e *Embedder) Dim() int { return e.m.Config.EmbedDim }

// Tokenizer is the CLIP tokenizer texts go through (nil when only images are embedded).
func (e *Embedder) Tokenizer() *cliptok.Tokenizer { return e.tok }

// Model is the model the Embedder runs.
func (e *Embedder) Model() *Model { return e.m }

// Identity names what determines the embeddings, for outputs and caches: the
// checkpoint's content (sha256 of its files), the preprocessing of images and texts
// (PreprocessingIDs: dtype, fp16 rounding, transform, tokenizer) and normalisation.
func (e *Embedder) Identity() (string, error) {
	fp, err := e.m.Fingerprint()
	if err != nil {
		return "", err
	}
	img, txt := e.PreprocessingIDs()
	id := fmt.Sprintf("longclip sha256:%s image:%s text:%s", fp, img, txt)
	if e.opt.Normalize {
		id += " normalized"
	}
	return id, nil
}

// EmbedImages embeds image files: embs[i] is nil where errs[i] is set. A setup error
// (no Decode, a closed Embedder) is every item's error.
func (e *Embedder) EmbedImages(paths []string) (embs [][]float32, errs []error) {
	embs, errs = make([][]float32, len(paths)), make([]error, len(paths))
	err := e.StreamImages(paths, func(r Result) error {
		embs[r.Index], errs[r.Index] = r.Embedding, r.Err
		return nil
	})
	if err != nil { // a setup error (no decoder, closed): every item has it
		for i := range errs {
			embs[i], errs[i] = nil, err
		}
	}
	return embs, errs
}

// EmbedTexts embeds texts (tokenized with upstream's truncate=True), in input order.
// A text itself never fails; errs holds setup errors (no tokenizer, a closed Embedder).
func (e *Embedder) EmbedTexts(texts []string) (embs [][]float32, errs []error) {
	embs, errs = make([][]float32, len(texts)), make([]error, len(texts))
	err := e.StreamTexts(texts, func(r Result) error {
		embs[r.Index], errs[r.Index] = r.Embedding, r.Err
		return nil
	})
	if err != nil {
		for i := range errs {
			embs[i], errs[i] = nil, err
		}
	}
	return embs, errs
}

// StreamImages embeds image files batch by batch and calls fn once per item, in input
// order. Decoding and resizing run on Workers goroutines and prepare the next batch
// while the current one is encoded (preprocess.Prefetch). An error returned by fn stops
// the stream and is returned.
func (e *Embedder) StreamImages(paths []string, fn func(Result) error) (err error) {
	defer native.Recover(&err) // a device out of memory: an error that suggests a smaller batch
	if e.opt.Decode == nil {
		return errors.New("longclip: embedder: images need EmbedderOptions.Decode (e.g. dataset/imagefile.Decode)")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.c == nil {
		return errors.New("longclip: embedder used after Close")
	}
	s := e.m.Config.Vision.Resolution
	return preprocess.Prefetch(context.Background(), paths, e.opt.Batch, s, e.opt.Workers, preprocess.Batch, e.opt.Decode, func(b preprocess.Prepared) error {
		ok, px := b.Compact(s)
		var embs [][]float32
		if len(ok) > 0 { // failed slots are not encoded
			embs = e.rows(e.m.EncodeImage(e.c, native.FromF32(px, len(ok), 3, s, s)))
		}
		j := 0
		for i, err := range b.Errs {
			r := Result{Index: b.Start + i, Err: err}
			if err == nil {
				r.Embedding = embs[j]
				j++
			}
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	})
}

// StreamTexts embeds texts and calls fn once per item. Texts are tokenized first and
// batched by token count (the text tower computes only up to the longest pooled position
// of a batch), so fn sees items in that order, not in input order. An error returned by
// fn stops the stream and is returned.
func (e *Embedder) StreamTexts(texts []string, fn func(Result) error) (err error) {
	defer native.Recover(&err)
	if e.tok == nil {
		return errors.New("longclip: embedder: texts need a tokenizer")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.c == nil {
		return errors.New("longclip: embedder used after Close")
	}
	ctx := e.m.Config.Text.Context
	ids := make([][]int32, len(texts))
	trunc := make([]bool, len(texts))
	var wg sync.WaitGroup
	workers := max(1, min(e.opt.Workers, len(texts)))
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < len(texts); i += workers {
				ids[i], trunc[i] = e.tok.Encode(texts[i], ctx)
			}
		}(w)
	}
	wg.Wait()
	order := make([]int, len(texts))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		return cliptok.EOTIndex(ids[order[a]]) < cliptok.EOTIndex(ids[order[b]])
	})
	for start := 0; start < len(order); start += e.opt.Batch {
		idx := order[start:min(start+e.opt.Batch, len(order))]
		rows := make([][]int32, len(idx))
		for j, i := range idx {
			rows[j] = ids[i]
		}
		embs := e.rows(e.m.EncodeText(e.c, rows))
		for j, i := range idx {
			if err := fn(Result{Index: i, Embedding: embs[j], Truncated: trunc[i]}); err != nil {
				return err
			}
		}
	}
	return nil
}

// rows brings out [B, E] to the host, one slice per row, L2-normalised when asked, and
// releases the arena.
func (e *Embedder) rows(out native.Tensor) [][]float32 {
	defer e.c.Release(native.Mark{})
	if e.opt.Normalize {
		out = e.c.L2Normalize(out)
	}
	n, d := out.Dims2()
	flat := e.c.ToHost(out)
	res := make([][]float32, n)
	for i := range res {
		res[i] = flat[i*d : (i+1)*d : (i+1)*d]
	}
	return res
}

// Fingerprint is the sha256 (hex) of the checkpoint's files in order, computed once;
// a model built from memory gives "memory:<name>".
func (m *Model) Fingerprint() (string, error) {
	m.fpOnce.Do(func() {
		if len(m.files) == 0 || m.memory {
			m.fp = "memory:" + strings.Join(m.files, ",")
			return
		}
		if m.fp, m.fpErr = filehash.Files(m.files...); m.fpErr != nil {
			m.fpErr = fmt.Errorf("longclip: fingerprint: %w", m.fpErr)
		}
	})
	return m.fp, m.fpErr
}
