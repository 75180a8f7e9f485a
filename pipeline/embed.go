package pipeline

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"synth/dataset"
	"synth/vision/longclip"
)

// EmbedInput is where synth embed's items come from: exactly one source.
type EmbedInput struct {
	Images    []string // image files (the path is the item's id)
	Manifest  string   // every image of every product of a manifest
	Texts     []string // texts (the argument index is the id)
	TextsFile string   // a .jsonl manifest (each product's text) or one text a line
}

// Embed writes Long-CLIP embeddings of images or texts to a resumable JSONL file or an
// array file (dataset.OpenEmbeddingSink), one per item, failed items recorded.
type Embed struct {
	Params    LongCLIPParams
	Input     EmbedInput
	Out       string
	Normalize bool
	FailFast  bool
	Shard     dataset.Shard
}

func (s *Embed) Name() string { return "embed" }

func (s *Embed) texts() bool { return len(s.Input.Texts) > 0 || s.Input.TextsFile != "" }

// Check validates the settings and the input choice and opens the model's headers.
func (s *Embed) Check(*Env) error {
	if err := s.Params.Validate(); err != nil {
		return err
	}
	n := 0
	for _, set := range []bool{len(s.Input.Images) > 0, s.Input.Manifest != "", len(s.Input.Texts) > 0, s.Input.TextsFile != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		return badf("", "give exactly one of --image, --images, --text, --texts")
	}
	if !slices.Contains(dataset.EmbeddingFormats, strings.ToLower(filepath.Ext(s.Out))) {
		return badf("out", "%q: want a .jsonl, .npy or .safetensors file", s.Out)
	}
	if err := probeLock(s.Out); err != nil {
		return err
	}
	return s.Params.check(s.Name(), s.texts())
}

// embedItem is one thing to embed and how it is named in the output.
type embedItem struct {
	ID    string // product id, line number, argument index, or the path of an image
	Image string // as written in the input (manifest-relative for a manifest)
	Path  string // the file to read
	Text  *string
	Err   error
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

// items lists the input's items of the shard (an image given by path is sharded by its
// path, the rest by id).
func (s *Embed) items() ([]embedItem, error) {
	var items []embedItem
	in := s.Input
	switch {
	case len(in.Images) > 0:
		for _, p := range in.Images {
			items = append(items, embedItem{ID: p, Image: p, Path: p})
		}
	case in.Manifest != "":
		list, err := dataset.ListImages(in.Manifest, dataset.All)
		if err != nil {
			return nil, err
		}
		for _, it := range list {
			items = append(items, embedItem{ID: it.ID, Image: it.Image, Path: it.Path})
		}
	case len(in.Texts) > 0:
		for i, t := range in.Texts {
			items = append(items, embedItem{ID: strconv.Itoa(i), Text: &t})
		}
	default:
		texts, err := dataset.ReadTexts(in.TextsFile)
		if err != nil {
			return nil, err
		}
		for _, t := range texts {
			it := embedItem{ID: t.ID, Text: &t.Text}
			if t.Product && strings.TrimSpace(t.Text) == "" {
				it.Err = fmt.Errorf("product %q has no text", t.ID)
			}
			items = append(items, it)
		}
	}
	mine := items[:0]
	for _, it := range items {
		if s.Shard.Has(it.ID) {
			mine = append(mine, it)
		}
	}
	return mine, nil
}

// Run embeds every item of the shard that the output does not hold yet.
func (s *Embed) Run(ctx context.Context, env *Env) (Status, error) {
	st := Status{Step: s.Name(), Output: s.Out}
	items, err := s.items()
	if err != nil {
		return st, err
	}
	st.Items = len(items)
	texts := s.texts()
	key := dataset.KeyFields("id", "image")
	if texts {
		key = dataset.KeyFields("id")
	}
	// The output is opened (and locked) before the model loads, so a second run on it
	// fails at once.
	sink, err := dataset.OpenEmbeddingSink(s.Out, key, s.Normalize)
	if err != nil {
		return st, err
	}
	complete := false
	defer func() {
		if !complete {
			sink.Close(false)
		}
	}()
	e, err := s.Params.OpenEmbedder(env, texts, s.Normalize)
	if err != nil {
		return st, err
	}
	defer e.Model().Close()
	defer e.Close()
	identity, err := e.Identity()
	if err != nil {
		return st, err
	}
	if err := sink.Start(identity, len(items), e.Dim()); err != nil {
		return st, err
	}
	var todo []embedItem
	for _, it := range items {
		if !sink.Done(it.key()) {
			todo = append(todo, it)
		}
	}
	kind := "images"
	if texts {
		kind = "texts"
	}
	if done := len(items) - len(todo); done > 0 {
		env.log().Info("embed: resuming", "out", s.Out, "already_done", done, "to_do", len(todo))
	}
	task := env.Progress.Start("embed", kind, len(todo))
	handle := func(r longclip.Result) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		it := todo[r.Index]
		if it.Err != nil {
			r.Err, r.Embedding = it.Err, nil
		}
		rec := dataset.EmbeddingRecord{ID: it.ID, Image: it.Image, Text: it.Text, Embedding: r.Embedding, Truncated: r.Truncated}
		if r.Err != nil {
			task.Fail(1)
			env.log().Warn("embed: item failed", "item", it.label(), "error", r.Err)
			if s.FailFast {
				return fmt.Errorf("embed: %s: %w (fail-fast)", it.label(), r.Err)
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
			strs[i] = *it.Text
		}
		err = e.StreamTexts(strs, handle)
	} else {
		paths := make([]string, len(todo))
		for i, it := range todo {
			paths[i] = it.Path
		}
		err = e.StreamImages(paths, handle)
	}
	task.End()
	st.Ran = true
	complete = true
	if cerr := sink.Close(err == nil); err == nil {
		err = cerr
	}
	if errors.Is(err, context.Canceled) {
		return st, fmt.Errorf("embed: interrupted; rerun the same command to resume (a JSONL output keeps what is done): %w", err)
	}
	st.Done, st.DoneFailed = task.Counts()
	st.Records = len(items) - len(todo) + st.Done
	return st, err
}
