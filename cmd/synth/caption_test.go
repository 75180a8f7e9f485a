package main

import (
	"bufio"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"synth/internal/demo"
	"synth/internal/fixtures"
	"synth/native"
	"synth/vision/blip2"
	"synth/vision/bpe"
	"synth/vision/gpt2tok"
	"synth/vision/preprocess"
	"synth/weights"
)

// tinyTokenizer writes a GPT-2 tokenizer folder for a fixture model of vocab tokens:
// OPT's specials at 0..3, then single bytes (space and lowercase letters first, the other
// printable ASCII after) for as many ids as the model has, no merges. It skips the test
// when the vocabulary cannot hold the prompts the tests use.
func tinyTokenizer(t *testing.T, dir string, vocab int) {
	t.Helper()
	order := " abcdefghijklmnopqrstuvwxyz"
	for c := byte(33); c < 127; c++ {
		if !strings.ContainsRune(order, rune(c)) {
			order += string(c)
		}
	}
	if vocab < 4+len(" abcdefghijklmnopqrstuvwxyz") {
		t.Skipf("a text vocabulary of %d ids cannot hold the specials and the lowercase prompts the tests use", vocab)
	}
	ids := map[string]int32{"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
	for i := 0; i < len(order) && 4+i < vocab; i++ {
		ids[string(bpe.ByteToUnicode[order[i]])] = int32(4 + i)
	}
	js, _ := json.Marshal(ids)
	if err := os.WriteFile(filepath.Join(dir, "vocab.json"), js, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "merges.txt"), []byte("#version: 0.2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// textVocab is the set's language model vocabulary size (config.json).
func textVocab(t *testing.T, set string) int {
	t.Helper()
	var cfg struct {
		Text struct {
			Vocab int `json:"vocab_size"`
		} `json:"text_config"`
	}
	b, err := os.ReadFile(filepath.Join(set, "config.json"))
	if err != nil || json.Unmarshal(b, &cfg) != nil || cfg.Text.Vocab <= 0 {
		t.Fatalf("%s: no text_config.vocab_size in config.json (%v)", set, err)
	}
	return cfg.Text.Vocab
}

func writeRandomPNG(t *testing.T, path string, w, h int, seed uint64) image.Image {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 9))
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(r.IntN(256)), uint8(r.IntN(256)), uint8(r.IntN(256)), 255})
		}
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	return img
}

func readCaptionRecords(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s: bad line %q: %v", path, sc.Text(), err)
		}
		recs = append(recs, r)
	}
	return recs
}

// captionSetup makes a model folder (a fixture set's model plus a tiny tokenizer) and a
// folder of images: two good ones and a corrupt one.
func captionSetup(t *testing.T, set string) (modelDir, imgDir string, imgs map[string]image.Image) {
	modelDir, imgDir = t.TempDir(), t.TempDir()
	for _, f := range []string{"config.json", "model.safetensors"} {
		b, err := os.ReadFile(filepath.Join(set, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(modelDir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tinyTokenizer(t, modelDir, textVocab(t, set))
	imgs = map[string]image.Image{
		"a.png":     writeRandomPNG(t, filepath.Join(imgDir, "a.png"), 70, 50, 1),
		"sub/b.png": nil,
	}
	if err := os.MkdirAll(filepath.Join(imgDir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	imgs["sub/b.png"] = writeRandomPNG(t, filepath.Join(imgDir, "sub", "b.png"), 56, 56, 2)
	if err := os.WriteFile(filepath.Join(imgDir, "bad.png"), []byte("not an image"), 0o644); err != nil {
		t.Fatal(err)
	}
	return modelDir, imgDir, imgs
}

func TestCaptionCLI(t *testing.T) {
	for _, set := range fixtures.Sets(t, "blip2", "expected.safetensors") {
		modelDir, imgDir, imgs := captionSetup(t, set)
		out := filepath.Join(t.TempDir(), "captions.jsonl")
		args := []string{"--threads", "2", "caption", "--model", modelDir, "--images", imgDir, "--out", out,
			"--batch", "2", "--max-new-tokens", "6", "--prompt", "a photo of"}
		code, _, errOut := runCLI(t, args...)
		if code != exitOK {
			t.Fatalf("caption: exit %d: %s", code, errOut)
		}
		recs := readCaptionRecords(t, out)
		if len(recs) != 3 {
			t.Fatalf("%d records, want 3 (2 captions, 1 error):\n%v", len(recs), recs)
		}

		// the captions are what the library gives for the same pixels and prompt
		src, err := weights.Open(modelDir)
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		m, err := blip2.Load(src, blip2.Options{DType: native.F32, KVCache: native.F16}) // the CLI's default cache
		if err != nil {
			t.Fatal(err)
		}
		tok, err := gpt2tok.Load(modelDir)
		if err != nil {
			t.Fatal(err)
		}
		c := native.NewCtx(2)
		defer c.Close()
		p := m.Params(6)
		g, err := m.NewGenerator(c, 1, 16, p)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			img, _ := r["image"].(string)
			if img == "bad.png" {
				if r["error"] == nil || r["caption"] != nil || r["id"] != "bad" {
					t.Errorf("corrupt image record: %v", r)
				}
				continue
			}
			for _, k := range []string{"id", "image", "caption", "model", "lora", "params", "tokens", "ms"} {
				if _, ok := r[k]; !ok {
					t.Errorf("record %v has no %q", r, k)
				}
			}
			if p, _ := r["params"].(map[string]any); p["kv_cache"] != "f16" {
				t.Errorf("record params %v: kv_cache is not f16", r["params"])
			}
			s := m.Cfg.Vision.ImageSize
			px, err := preprocess.BLIP(imgs[img], s)
			if err != nil {
				t.Fatal(err)
			}
			res, err := g.Generate(native.FromF32(px, 1, 3, s, s), []blip2.Prompt{{IDs: tok.Encode("a photo of", true)}}, p)
			if err != nil {
				t.Fatal(err)
			}
			want := strings.TrimSpace(tok.Decode(res[0].Tokens, gpt2tok.DecodeOptions{SkipSpecial: true, CleanUpSpaces: true}))
			if r["caption"] != want || r["tokens"] != float64(len(res[0].Tokens)) {
				t.Errorf("%s: caption %q (%v tokens), library gives %q (%d)", img, r["caption"], r["tokens"], want, len(res[0].Tokens))
			}
		}

		// a rerun skips what is done; --retry-errors redoes the failed image only
		if code, _, errOut := runCLI(t, args...); code != exitOK || len(readCaptionRecords(t, out)) != 3 {
			t.Errorf("rerun: exit %d, %d records: %s", code, len(readCaptionRecords(t, out)), errOut)
		}
		if code, _, errOut := runCLI(t, append(args, "--retry-errors")...); code != exitOK || len(readCaptionRecords(t, out)) != 3 {
			t.Errorf("retry errors: exit %d, %d records: %s", code, len(readCaptionRecords(t, out)), errOut)
		}
		// --fail-fast stops at the corrupt image
		out2 := filepath.Join(t.TempDir(), "c.jsonl")
		if code, _, _ := runCLI(t, "caption", "--model", modelDir, "--images", imgDir, "--out", out2, "--fail-fast", "--max-new-tokens", "3"); code != exitRuntime {
			t.Errorf("--fail-fast with a corrupt image: exit %d, want %d", code, exitRuntime)
		}
	}
}

func TestCaptionManifestLoRAAndShards(t *testing.T) {
	for _, set := range fixtures.Sets(t, "blip2", "adapter_config.json") {
		modelDir, imgDir, _ := captionSetup(t, set)
		man := filepath.Join(imgDir, "manifest.jsonl")
		lines := `{"id": "p1", "images": ["a.png", "sub/b.png"]}` + "\n" + `{"id": "p2", "images": ["sub/b.png"]}` + "\n" +
			`{"id": "p3", "images": ["a.png"]}` + "\n"
		if err := os.WriteFile(man, []byte(lines), 0o644); err != nil {
			t.Fatal(err)
		}
		total := 0
		ids := map[string]int{}
		for _, shard := range []string{"0/2", "1/2"} {
			out := filepath.Join(t.TempDir(), "c.jsonl")
			code, _, errOut := runCLI(t, "caption", "--model", modelDir, "--lora", set, "--lora-live", "--images", man,
				"--out", out, "--beams", "2", "--max-new-tokens", "4", "--shard", shard)
			if code != exitOK {
				t.Fatalf("shard %s: exit %d: %s", shard, code, errOut)
			}
			for _, r := range readCaptionRecords(t, out) {
				if r["lora"] != filepath.Base(set) || r["error"] != nil {
					t.Errorf("record %v", r)
				}
				ids[r["id"].(string)]++
				total++
			}
		}
		if total != 4 || ids["p1"] != 2 || ids["p2"] != 1 || ids["p3"] != 1 {
			t.Errorf("shards covered %v (%d records), want p1 x2, p2, p3 once each", ids, total)
		}
	}
}

func TestCaptionUsageErrors(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"caption", "--images", dir, "--out", "x.jsonl"},
		{"caption", "--model", dir, "--images", dir, "--out", "x.jsonl", "--batch", "-1"},
		{"caption", "--model", dir, "--images", dir, "--out", "x.jsonl", "--beams", "2", "--sample"},
		{"caption", "--model", dir, "--images", dir, "--out", "x.jsonl", "--dtype", "q3"},
		{"caption", "--model", dir, "--images", dir, "--out", "x.jsonl", "--kv-cache", "q8_0"},
		{"caption", "--model", dir, "--images", dir, "--out", "x.jsonl", "--early-stopping", "maybe"},
		{"caption", "--model", dir, "--images", dir, "--out", "x.jsonl", "--lora-live"},
		{"caption", "--model", dir, "--images", dir, "--out", "x.jsonl", "--shard", "3/2"},
		{"caption", "--model", dir, "--images", dir, "--out", "x.jsonl", "--top-p", "2"},
	} {
		if code, _, errOut := runCLI(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d (%s)", args, code, exitUsage, errOut)
		}
	}
}

// The demo's BLIP-2 (internal/demo, used by synth demo and the pipeline tests) captions
// through synth caption with its adapter merged, and the captions are text of its
// tokenizer ending at its newline EOS.
func TestCaptionDemoModel(t *testing.T) {
	dir, lora := filepath.Join(t.TempDir(), "blip2"), filepath.Join(t.TempDir(), "lora")
	if err := demo.WriteBLIP2(dir, lora, demo.DemoBLIP2, 5); err != nil {
		t.Fatal(err)
	}
	imgDir := t.TempDir()
	writeRandomPNG(t, filepath.Join(imgDir, "x.png"), 120, 90, 3)
	out := filepath.Join(t.TempDir(), "c.jsonl")
	code, _, errOut := runCLI(t, "caption", "--model", dir, "--lora", lora, "--images", imgDir, "--out", out, "--max-new-tokens", "12")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	recs := readCaptionRecords(t, out)
	if len(recs) != 1 || recs[0]["error"] != nil || recs[0]["caption"] == nil {
		t.Fatalf("records %v", recs)
	}
	if c := recs[0]["caption"].(string); strings.Contains(c, "\n") {
		t.Errorf("caption %q holds the EOS newline", c)
	}
}
