package longclip

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"image/color"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"synth/internal/fixtures"
	"synth/native"
	"synth/vision/cliptok"
	"synth/vision/preprocess"
)

func gradient(w, h int, seed uint64) image.Image {
	r := rand.New(rand.NewPCG(seed, 9))
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), uint8(r.IntN(256)), 255})
		}
	}
	return img
}

// TestEmbedImagesPerItemErrors: failures (decoder errors, a decoder panic, a nil image)
// stay with their items; every other item gets what EncodeImage gives it alone.
func TestEmbedImagesPerItemErrors(t *testing.T) {
	m, err := Load(memSource(t, randomCheckpoint(t, smallConfig, 11), nil), smallConfig, Options{})
	if err != nil {
		t.Fatal(err)
	}
	images := map[string]image.Image{
		"a.png": gradient(40, 33, 1), "b.png": gradient(17, 50, 2), "c.png": gradient(64, 64, 3),
	}
	decode := func(path string) (image.Image, error) {
		switch path {
		case "broken.jpg":
			return nil, errors.New("corrupt JPEG data")
		case "panic.png":
			panic("decoder bug")
		case "nil.png":
			return nil, nil
		}
		return images[path], nil
	}
	paths := []string{"broken.jpg", "a.png", "panic.png", "b.png", "nil.png", "c.png", "a.png"}
	e, err := NewEmbedder(m, nil, EmbedderOptions{Threads: 2, Batch: 3, Decode: decode, Normalize: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	embs, errs := e.EmbedImages(paths)

	c := native.NewCtx(1)
	defer c.Close()
	s := smallConfig.Vision.Resolution
	for i, p := range paths {
		img, ok := images[p]
		if !ok {
			if errs[i] == nil || embs[i] != nil {
				t.Errorf("%s: err %v, embedding %v: want an error and no embedding", p, errs[i], embs[i] != nil)
			}
			continue
		}
		if errs[i] != nil {
			t.Fatalf("%s: %v", p, errs[i])
		}
		px, err := preprocess.CLIP(img, s)
		if err != nil {
			t.Fatal(err)
		}
		want := normalize(c.ToHost(m.EncodeImage(c, native.FromF32(px, 1, 3, s, s))), smallConfig.EmbedDim)
		if d, _ := maxErr(embs[i], want); d > 1e-5 {
			t.Errorf("%s (item %d): differs from a single EncodeImage by %g", p, i, d)
		}
	}
	if !strings.Contains(errs[2].Error(), "panicked") {
		t.Errorf("panic not reported as such: %v", errs[2])
	}

	// Items come in input order, and an error from fn stops the stream.
	var order []int
	stop := errors.New("stop")
	err = e.StreamImages(paths, func(r Result) error {
		order = append(order, r.Index)
		if r.Index == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || fmt.Sprint(order) != "[0 1 2 3]" {
		t.Errorf("stream: order %v, err %v", order, err)
	}

	// Without a decoder every item fails with the setup error.
	e2, _ := NewEmbedder(m, nil, EmbedderOptions{})
	defer e2.Close()
	if _, errs := e2.EmbedImages([]string{"a.png"}); errs[0] == nil || !strings.Contains(errs[0].Error(), "Decode") {
		t.Errorf("no decoder: %v", errs[0])
	}
}

// TestEmbedTexts: in input order, equal to EncodeText on the tokenizer's ids, normalised.
func TestEmbedTexts(t *testing.T) {
	sets := fixtures.Sets(t, "longclip", "model.safetensors")
	tok, err := cliptok.Load(filepath.Join(filepath.Dir(sets[0]), "bpe_simple_vocab_16e6.txt.gz"))
	if err != nil {
		t.Skipf("no vocabulary: %v", err)
	}
	m := openModel(t, filepath.Join(sets[0], "model.pt"), Options{})
	if m.Config.Text.Vocab < tok.VocabSize() {
		t.Skipf("%s: a text vocabulary of %d cannot take the released tokenizer's %d ids", sets[0], m.Config.Text.Vocab, tok.VocabSize())
	}
	texts := []string{"a long red dress " + strings.Repeat("with pleats ", 100), "blue jeans", "", "셔츠", "white shirt, cotton"}
	e, err := NewEmbedder(m, tok, EmbedderOptions{Batch: 2, Normalize: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	embs, errs := e.EmbedTexts(texts)
	c := native.NewCtx(1)
	defer c.Close()
	for i, text := range texts {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		ids, _ := tok.Encode(text, cliptok.Context)
		want := normalize(c.ToHost(m.EncodeText(c, [][]int32{ids})), m.Config.EmbedDim)
		if d, _ := maxErr(embs[i], want); d > 1e-5 {
			t.Errorf("text %d: differs from EncodeText by %g", i, d)
		}
	}
	var truncated []int
	e.StreamTexts(texts, func(r Result) error {
		if r.Truncated {
			truncated = append(truncated, r.Index)
		}
		return nil
	})
	if fmt.Sprint(truncated) != "[0]" {
		t.Errorf("truncated texts %v, want [0]", truncated)
	}
}

func TestIdentity(t *testing.T) {
	sets := fixtures.Sets(t, "longclip", "model.safetensors")
	path := filepath.Join(sets[0], "model.safetensors")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	var ids []string
	for _, opt := range []Options{{}, {DType: native.Q8_0}, {UpstreamFP16: true}} {
		m := openModel(t, path, opt)
		e, _ := NewEmbedder(m, nil, EmbedderOptions{Normalize: true})
		id, err := e.Identity()
		e.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(id, hex.EncodeToString(sum[:])) || !strings.Contains(id, PreprocessID) {
			t.Errorf("identity %q lacks the file hash or the transform", id)
		}
		ids = append(ids, id)
	}
	if ids[0] == ids[1] || ids[0] == ids[2] || ids[1] == ids[2] {
		t.Errorf("identities do not tell dtypes / rounding apart: %q", ids)
	}
}
