package main

import (
	"bufio"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"synth/dataset"
	"synth/pipeline"
	"synth/vision/longclip"
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
		Flags: append(settingFlags(&pipeline.LongCLIPParams{}),
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
	var p pipeline.LongCLIPParams
	if err := readSettings(c, &p); err != nil {
		return err
	}
	out := c.String("out")
	if !slices.Contains(dataset.EmbeddingFormats, strings.ToLower(filepath.Ext(out))) {
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
	e := env(c, false)
	emb, err := p.OpenEmbedder(e, texts, c.Bool("normalize"))
	if err != nil {
		return stepError(err)
	}
	defer emb.Model().Close()
	defer emb.Close()
	identity, err := emb.Identity()
	if err != nil {
		return err
	}
	key := dataset.KeyFields("id", "image")
	if texts {
		key = dataset.KeyFields("id")
	}
	sink, err := dataset.OpenEmbeddingSink(out, identity, key, len(mine), emb.Dim(), c.Bool("normalize"))
	if err != nil {
		return err
	}
	var todo []embedItem
	for _, it := range mine {
		if !sink.Done(it.key()) {
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
	task := e.Progress.Start("embed", kind, len(todo))
	handle := func(r longclip.Result) error {
		if err := c.Context.Err(); err != nil {
			return err
		}
		it := todo[r.Index]
		if it.Err != nil {
			r.Err, r.Embedding = it.Err, nil
		}
		rec := dataset.EmbeddingRecord{ID: it.ID, Image: it.Image, Embedding: r.Embedding, Truncated: r.Truncated}
		if it.IsText {
			rec.Text = &it.Text
		}
		if r.Err != nil {
			task.Fail(1)
			slog.Warn("embed: item failed", "item", it.label(), "error", r.Err)
			if c.Bool("fail-fast") {
				return fmt.Errorf("embed: %s: %w", it.label(), r.Err)
			}
			rec.Error, rec.Embedding = r.Err.Error(), nil
		} else {
			task.Add(1)
		}
		return sink.Write(r.Index, it.key(), rec)
	}
	if texts {
		strs := make([]string, len(todo))
		for i, it := range todo {
			strs[i] = it.Text
		}
		err = emb.StreamTexts(strs, handle)
	} else {
		paths := make([]string, len(todo))
		for i, it := range todo {
			paths[i] = it.Path
		}
		err = emb.StreamImages(paths, handle)
	}
	task.End()
	if cerr := sink.Close(err == nil); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	done, failed := task.Counts()
	fmt.Fprintf(c.App.Writer, "embedded %d of %d %s into %s (%d failed)\n", done-failed, len(todo), kind, out, failed)
	return nil
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
