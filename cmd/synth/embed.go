package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"synth/dataset"
	"synth/dataset/imagefile"
	"synth/vision/cliptok"
	"synth/vision/longclip"
	"synth/vision/nn"
	"synth/weights"
)

func embedCommand() *cli.Command {
	return &cli.Command{
		Name:      "embed",
		Usage:     "embed images or texts with Long-CLIP",
		ArgsUsage: " ",
		Description: "Runs Long-CLIP's image or text tower over one input source and writes one embedding per item.\n" +
			"\n" +
			"Inputs (exactly one): --image FILE (repeatable); --images MANIFEST (a JSONL product manifest,\n" +
			"every image of every product); --text STR (repeatable); --texts FILE (a .jsonl manifest: each\n" +
			"product's \"text\"; any other file: one text a line).\n" +
			"\n" +
			"--model is a folder (config.json, one checkpoint file, bpe_simple_vocab_16e6.txt.gz), or a\n" +
			"LongCLIP-L.pt / .safetensors / .gguf file (a config.json beside it is read; GGUF from\n" +
			"synth convert carries its own). Images go through upstream's transform (PIL bicubic resize,\n" +
			"center crop, CLIP normalisation); texts through the CLIP tokenizer with 248-token truncation.\n" +
			"\n" +
			"--out FILE.jsonl writes one record per item, {\"id\", \"image\" or \"text\", \"embedding\", \"model\"}\n" +
			"or {..., \"error\"} for an item that failed (a broken image never stops the run; --fail-fast\n" +
			"does). A rerun with the same --out skips the items already written and retries the failed\n" +
			"ones. --out FILE.npy (float32 [N, E]) or FILE.safetensors (\"embeddings\" [N, E], \"valid\" [N])\n" +
			"are written at the end, failed rows NaN, with FILE.items.jsonl naming each row's item.\n" +
			"Embeddings are L2-normalised unless --normalize=false.",
		Flags: append(longclipFlags(),
			&cli.StringSliceFlag{Name: "image", Usage: "an image file (repeatable)"},
			&cli.StringFlag{Name: "images", Usage: "a JSONL product manifest whose images to embed"},
			&cli.StringSliceFlag{Name: "text", Usage: "a text (repeatable)"},
			&cli.StringFlag{Name: "texts", Usage: "a .jsonl manifest (product texts) or a file with one text a line"},
			&cli.StringFlag{Name: "out", Usage: "output `FILE`: .jsonl, .npy or .safetensors", Required: true},
			&cli.BoolFlag{Name: "normalize", Value: true, Usage: "L2-normalise the embeddings"},
			&cli.StringFlag{Name: "shard", Usage: "embed only shard `i/n` of the items (by product id, or by path / line)"},
			&cli.BoolFlag{Name: "fail-fast", Usage: "stop at the first item that fails (exit 1) instead of recording it"},
		),
		Action: runEmbed,
	}
}

// longclipFlags are the flags of every command that runs Long-CLIP (embed, eval); read
// them with openEmbedder.
func longclipFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "model", Usage: "Long-CLIP model folder or weights file (.pt, .safetensors, .gguf)", Required: true},
		&cli.StringFlag{Name: "vocab", Usage: "the BPE merges file (default: " + clipVocabName + " beside the model)"},
		&cli.StringFlag{Name: "dtype", Value: "f32", Usage: "weights in memory: f32, f16, bf16, q8_0, q4_0, q4_k, q5_k, q6_k (quantized GGUF weights stay as stored)"},
		&cli.BoolFlag{Name: "upstream-fp16", Usage: "round the weights upstream's loader casts to float16, like longclip.load"},
		&cli.IntFlag{Name: "batch", Value: 8, Usage: "items per forward pass"},
	}
}

// embedItem is one thing to embed and how it is named in the output.
type embedItem struct {
	ID     string // product id, line number, argument index, or the path for --image
	Image  string // as written in the input (manifest-relative for --images)
	Path   string // the file to read
	Text   string
	IsText bool // a text item (Text may be empty)
	Err    error
}

func (it embedItem) key() string {
	if it.Image != "" {
		return dataset.JoinKey(it.ID, it.Image)
	}
	return dataset.JoinKey(it.ID)
}

func (it embedItem) label() string {
	if it.Image != "" {
		return it.Image
	}
	return "text " + it.ID
}

func runEmbed(c *cli.Context) error {
	if c.Args().Present() {
		return usageErrorf("embed takes no arguments (use --image, --images, --text or --texts), got %q", c.Args().First())
	}
	n := 0
	for _, set := range []bool{len(c.StringSlice("image")) > 0, c.String("images") != "", len(c.StringSlice("text")) > 0, c.String("texts") != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		return usageErrorf("give exactly one of --image, --images, --text, --texts")
	}
	out := c.String("out")
	ext := strings.ToLower(filepath.Ext(out))
	if ext != ".jsonl" && ext != ".npy" && ext != ".safetensors" {
		return usageErrorf("--out %q: want a .jsonl, .npy or .safetensors file", out)
	}
	shard, err := dataset.ParseShard(c.String("shard"))
	if err != nil {
		return usageErrorf("--shard: %v", err)
	}
	texts := len(c.StringSlice("text")) > 0 || c.String("texts") != ""

	items, err := embedItems(c)
	if err != nil {
		return err
	}
	var mine []embedItem
	for _, it := range items {
		key := it.ID
		if len(c.StringSlice("image")) > 0 {
			key = it.Image
		}
		if shard.Has(key) {
			mine = append(mine, it)
		}
	}
	e, err := openEmbedder(c, texts, c.Bool("normalize"))
	if err != nil {
		return err
	}
	defer e.Model().Close()
	defer e.Close()
	identity, err := e.Identity()
	if err != nil {
		return err
	}

	var sink embedSink
	if ext == ".jsonl" {
		sink, err = openJSONLSink(out, identity, texts)
	} else {
		sink = newArraySink(out, ext, identity, len(mine), e.Dim(), c.Bool("normalize"))
	}
	if err != nil {
		return err
	}
	var todo []embedItem
	for _, it := range mine {
		if !sink.done(it) {
			todo = append(todo, it)
		}
	}
	kind := "images"
	if texts {
		kind = "texts"
	}
	if skipped := len(mine) - len(todo); skipped > 0 {
		slog.Info("embed: resuming", "out", out, "already_done", skipped, "to_do", len(todo))
	}
	prog := newProgress(kind, len(todo))
	failFast := c.Bool("fail-fast")
	handle := func(r longclip.Result) error {
		it := todo[r.Index]
		if it.Err != nil {
			r.Err, r.Embedding = it.Err, nil
		}
		if r.Err != nil {
			prog.failed++
			slog.Warn("embed: item failed", "item", it.label(), "error", r.Err)
			if failFast {
				return fmt.Errorf("embed: %s: %w", it.label(), r.Err)
			}
		}
		if err := sink.write(r.Index, it, r); err != nil {
			return err
		}
		prog.add(1)
		return nil
	}
	if texts {
		strs := make([]string, len(todo))
		for i, it := range todo {
			strs[i] = it.Text
		}
		err = e.StreamTexts(strs, handle)
	} else {
		paths := make([]string, len(todo))
		for i, it := range todo {
			paths[i] = it.Path
		}
		err = e.StreamImages(paths, handle)
	}
	if cerr := sink.close(err == nil); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "embedded %d of %d %s into %s (%d failed) in %s, %.3g %s/s\n",
		len(todo)-prog.failed, len(todo), kind, out, prog.failed, time.Since(prog.start).Round(time.Millisecond), prog.rate(), kind)
	return nil
}

// openEmbedder loads the model (and the tokenizer when texts are embedded) as
// longclipFlags and --threads say. Close the Embedder, then its Model.
func openEmbedder(c *cli.Context, texts, normalize bool) (*longclip.Embedder, error) {
	if c.Int("batch") < 1 {
		return nil, usageErrorf("--batch must be at least 1, got %d", c.Int("batch"))
	}
	dt, err := nn.ParseDType(c.String("dtype"))
	if err != nil {
		return nil, usageErrorf("--dtype: %v", err)
	}
	model := c.String("model")
	start := time.Now()
	m, err := longclip.Open(model, longclip.Options{DType: dt, UpstreamFP16: c.Bool("upstream-fp16")})
	if err != nil {
		return nil, err
	}
	slog.Info("embed: model loaded", "model", model, "config", m.Config.String(), "dtype", c.String("dtype"), "took", time.Since(start).Round(time.Millisecond))
	var tok *cliptok.Tokenizer
	if texts {
		vocab := c.String("vocab")
		if vocab == "" {
			dir := model
			if st, err := os.Stat(model); err == nil && !st.IsDir() {
				dir = filepath.Dir(model)
			}
			vocab = filepath.Join(dir, clipVocabName)
			if _, err := os.Stat(vocab); err != nil {
				m.Close()
				return nil, usageErrorf("no %s beside the model (%s): give --vocab FILE", clipVocabName, dir)
			}
		}
		if tok, err = cliptok.Load(vocab); err != nil {
			m.Close()
			return nil, err
		}
	}
	e, err := longclip.NewEmbedder(m, tok, longclip.EmbedderOptions{
		Threads:   threads(c),
		Batch:     c.Int("batch"),
		Normalize: normalize,
		Decode: func(path string) (image.Image, error) {
			return imagefile.Decode(path, imagefile.Limits{})
		},
	})
	if err != nil {
		m.Close()
		return nil, err
	}
	return e, nil
}

// embedItems lists the items of the one input source given.
func embedItems(c *cli.Context) ([]embedItem, error) {
	var items []embedItem
	switch {
	case len(c.StringSlice("image")) > 0:
		for _, p := range c.StringSlice("image") {
			items = append(items, embedItem{ID: p, Image: p, Path: p})
		}
	case c.String("images") != "":
		m, err := dataset.ReadManifest(c.String("images"))
		if err != nil {
			return nil, err
		}
		for _, p := range m.Products {
			for _, img := range p.Images {
				items = append(items, embedItem{ID: p.ID, Image: img, Path: m.ImagePath(img)})
			}
		}
	case len(c.StringSlice("text")) > 0:
		for i, s := range c.StringSlice("text") {
			items = append(items, embedItem{ID: strconv.Itoa(i), Text: s, IsText: true})
		}
	default:
		name := c.String("texts")
		if ext := strings.ToLower(filepath.Ext(name)); ext == ".jsonl" {
			m, err := dataset.ReadManifest(name)
			if err != nil {
				return nil, err
			}
			for _, p := range m.Products {
				it := embedItem{ID: p.ID, Text: p.Text, IsText: true}
				if strings.TrimSpace(p.Text) == "" {
					it.Err = fmt.Errorf("product %q has no text", p.ID)
				}
				items = append(items, it)
			}
			return items, nil
		}
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("embed: %w", err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<16), 64<<20)
		for line := 1; sc.Scan(); line++ {
			items = append(items, embedItem{ID: strconv.Itoa(line), Text: strings.TrimSuffix(sc.Text(), "\r"), IsText: true})
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("embed: read %s: %w", name, err)
		}
	}
	return items, nil
}

// embedSink is where results go.
type embedSink interface {
	done(it embedItem) bool
	// write records item i of the run (the index into the items to do).
	write(i int, it embedItem, r longclip.Result) error
	// close finishes the output; complete is false when the run stopped early.
	close(complete bool) error
}

// embedRecord is one JSONL line (and one line of the .items.jsonl beside arrays).
type embedRecord struct {
	Row       *int      `json:"row,omitempty"`
	ID        string    `json:"id"`
	Image     string    `json:"image,omitempty"`
	Text      *string   `json:"text,omitempty"`
	Embedding []float32 `json:"embedding,omitempty"`
	Truncated bool      `json:"truncated,omitempty"`
	Model     string    `json:"model,omitempty"`
	Error     string    `json:"error,omitempty"`
}

func newRecord(it embedItem, r longclip.Result) embedRecord {
	rec := embedRecord{ID: it.ID, Image: it.Image, Embedding: r.Embedding, Truncated: r.Truncated}
	if it.IsText {
		text := it.Text
		rec.Text = &text
	}
	if r.Err != nil {
		rec.Error = r.Err.Error()
		rec.Embedding = nil
	}
	return rec
}

type jsonlSink struct {
	out      *dataset.Output
	identity string
}

// errFirstRecord stops ReadRecords after the first record.
var errFirstRecord = errors.New("first record read")

func openJSONLSink(path, identity string, texts bool) (*jsonlSink, error) {
	// A rerun must not mix embeddings of different models in one file.
	err := dataset.ReadRecords(path, func(line int, raw json.RawMessage) error {
		var rec struct {
			Model string `json:"model"`
		}
		if json.Unmarshal(raw, &rec) == nil && rec.Model != "" && rec.Model != identity {
			return fmt.Errorf("embed: %s:%d was written by another model or setting (%s, now %s): use another --out", path, line, rec.Model, identity)
		}
		if rec.Model != "" {
			return errFirstRecord
		}
		return nil
	})
	if err != nil && !errors.Is(err, errFirstRecord) && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	key := dataset.KeyFields("id")
	if !texts {
		key = dataset.KeyFields("id", "image")
	}
	out, err := dataset.OpenOutput(path, dataset.OutputOptions{Key: key, RetryErrors: true})
	if err != nil {
		return nil, err
	}
	return &jsonlSink{out: out, identity: identity}, nil
}

func (s *jsonlSink) done(it embedItem) bool { return s.out.Done(it.key()) }

func (s *jsonlSink) write(_ int, it embedItem, r longclip.Result) error {
	rec := newRecord(it, r)
	rec.Model = s.identity
	return s.out.Write(it.key(), rec)
}

func (s *jsonlSink) close(bool) error { return s.out.Close() }

// arraySink keeps every row, in input order, and writes the array file and its
// .items.jsonl at the end.
type arraySink struct {
	path, ext, identity string
	dim                 int
	normalized          bool
	rows                []float32 // [N, E]
	recs                []embedRecord
}

func newArraySink(path, ext, identity string, n, dim int, normalized bool) *arraySink {
	return &arraySink{path: path, ext: ext, identity: identity, dim: dim, normalized: normalized,
		rows: make([]float32, n*dim), recs: make([]embedRecord, n)}
}

func (s *arraySink) done(embedItem) bool { return false }

func (s *arraySink) write(i int, it embedItem, r longclip.Result) error {
	rec := newRecord(it, r)
	rec.Row, rec.Embedding = &i, nil
	s.recs[i] = rec
	row := s.rows[i*s.dim : (i+1)*s.dim]
	if r.Err != nil {
		for j := range row {
			row[j] = float32(math.NaN())
		}
		return nil
	}
	copy(row, r.Embedding)
	return nil
}

func (s *arraySink) close(complete bool) error {
	if !complete {
		return nil // nothing half-written: arrays are all or nothing
	}
	n := len(s.recs)
	var err error
	if s.ext == ".npy" {
		err = writeNPY(s.path, s.rows, n, s.dim)
	} else {
		valid := make([]byte, n)
		for i, r := range s.recs {
			if r.Error == "" {
				valid[i] = 1
			}
		}
		data := make([]byte, 4*len(s.rows))
		for i, v := range s.rows {
			binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(v))
		}
		err = weights.WriteSafetensors(s.path, []weights.Tensor{
			{Name: "embeddings", DType: weights.F32, Shape: []int{n, s.dim}, Data: data},
			{Name: "valid", DType: weights.U8, Shape: []int{n}, Data: valid},
		}, map[string]string{"model": s.identity, "normalized": strconv.FormatBool(s.normalized), "items": filepath.Base(itemsPath(s.path))})
	}
	if err != nil {
		return err
	}
	return writeJSONLines(itemsPath(s.path), s.recs)
}

// itemsPath is the .items.jsonl beside an array output: emb.npy -> emb.items.jsonl.
func itemsPath(out string) string {
	return strings.TrimSuffix(out, filepath.Ext(out)) + ".items.jsonl"
}

func writeJSONLines(path string, recs []embedRecord) error {
	return writeFileAtomic(path, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		for _, r := range recs {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	})
}

// writeNPY writes rows [n, d] as a NumPy .npy file (format 1.0, little-endian float32,
// C order).
func writeNPY(path string, rows []float32, n, d int) error {
	header := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", n, d)
	// magic (6) + version (2) + header length (2) + header + '\n', padded to 64 bytes
	pad := 64 - (10+len(header)+1)%64
	header += strings.Repeat(" ", pad%64) + "\n"
	return writeFileAtomic(path, func(w io.Writer) error {
		pre := append([]byte("\x93NUMPY\x01\x00"), byte(len(header)), byte(len(header)>>8))
		if _, err := w.Write(append(pre, header...)); err != nil {
			return err
		}
		buf := make([]byte, 4*len(rows))
		for i, v := range rows {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
		}
		_, err := w.Write(buf)
		return err
	})
}

// writeFileAtomic writes path through a temporary file in the same folder and a rename.
func writeFileAtomic(path string, fill func(io.Writer) error) error {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("embed: %w", err)
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("embed: %w", err)
	}
	bw := bufio.NewWriterSize(tmp, 1<<20)
	err = fill(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("embed: write %s: %w", path, err)
	}
	return nil
}

// progress logs the rate and ETA of a long run on stderr, at most every few seconds.
type progress struct {
	what          string
	total, done   int
	failed        int
	start, logged time.Time
}

// progressEvery is how often progress is logged.
const progressEvery = 5 * time.Second

func newProgress(what string, total int) *progress {
	now := time.Now()
	return &progress{what: what, total: total, start: now, logged: now}
}

func (p *progress) rate() float64 {
	s := time.Since(p.start).Seconds()
	if s <= 0 {
		return 0
	}
	return float64(p.done) / s
}

func (p *progress) add(n int) {
	p.done += n
	if time.Since(p.logged) < progressEvery || p.done >= p.total {
		return
	}
	p.logged = time.Now()
	rate := p.rate()
	eta := "unknown"
	if rate > 0 {
		eta = time.Duration(float64(p.total-p.done) / rate * float64(time.Second)).Round(time.Second).String()
	}
	slog.Info("embed", "done", fmt.Sprintf("%d/%d", p.done, p.total), "failed", p.failed,
		"rate", fmt.Sprintf("%.3g %s/s", rate, p.what), "eta", eta)
}
