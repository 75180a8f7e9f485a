package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"synth/dataset"
	"synth/internal/fixtures"
	"synth/vision/longclip"
	"synth/vision/nn"
	"synth/weights"
)

// testModelConfig is a small random Long-CLIP (heads from width // 64, like the released
// models) so the command's tests need no fixture files.
var testModelConfig = longclip.Config{EmbedDim: 32, Eps: longclip.LayerNormEps,
	Vision: longclip.VisionConfig{Width: 64, Layers: 1, Heads: 1, PatchSize: 8, Resolution: 32},
	Text:   longclip.TextConfig{Width: 64, Layers: 1, Heads: 1, Context: 248, Vocab: 49408}}

func writeTestModel(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "model.safetensors")
	m, err := longclip.Random(testModelConfig, 7, nn.RandomOptions{}, longclip.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := weights.WriteSafetensors(path, m.Checkpoint(), nil); err != nil {
		t.Fatal(err)
	}
	return path
}

func writePNG(t *testing.T, path string, w, h int) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(7 * x), uint8(5 * y), uint8(x ^ y), 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// pngHeaderOnly is a PNG signature and a valid IHDR claiming w x h RGBA, then garbage.
func pngHeaderOnly(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 6 // 8-bit RGBA
	chunk := append([]byte("IHDR"), ihdr...)
	binary.Write(&b, binary.BigEndian, uint32(13))
	b.Write(chunk)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	b.WriteString("IDAT garbage")
	return b.Bytes()
}

type jsonRecord struct {
	ID        string    `json:"id"`
	Image     string    `json:"image"`
	Text      *string   `json:"text"`
	Embedding []float32 `json:"embedding"`
	Model     string    `json:"model"`
	Error     string    `json:"error"`
}

func readRecords(t *testing.T, path string) []jsonRecord {
	t.Helper()
	var recs []jsonRecord
	err := dataset.ReadRecords(path, func(_ int, raw json.RawMessage) error {
		var r jsonRecord
		if err := json.Unmarshal(raw, &r); err != nil {
			return err
		}
		recs = append(recs, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// TestEmbedBrokenFiles: a folder of broken files gives one error record each, the good
// file its embedding, exit code 0, no panic, and memory stays far below what decoding the
// 20000x20000 header would take (1.6 GB).
func TestEmbedBrokenFiles(t *testing.T) {
	model := writeTestModel(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.png")
	writePNG(t, good, 50, 40)
	var jpeg bytes.Buffer
	jpeg.Write([]byte{0xFF, 0xD8, 0xFF, 0xE0, 0, 16, 'J', 'F', 'I', 'F', 0})
	jpeg.Write(bytes.Repeat([]byte{0x55}, 200)) // cut off long before any scan data
	files := map[string][]byte{
		"truncated.jpg": jpeg.Bytes(),
		"empty.png":     {},
		"text.jpg":      []byte("this is not an image\n"),
		"huge.png":      pngHeaderOnly(20000, 20000),
	}
	var args []string
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--image", p)
	}
	// a 60000x1 PNG resized its short side to 224 (a 9 GB image) before the crop, and a
	// FIFO blocked in open
	wide := filepath.Join(dir, "wide.png")
	writePNG(t, wide, 60000, 1)
	fifo := filepath.Join(dir, "pipe.jpg")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("cannot make a FIFO here: %v", err)
	}
	args = append(args, "--image", wide, "--image", fifo, "--image", good)
	out := filepath.Join(dir, "emb.jsonl")

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	code, stdout, stderr := runCLI(t, append([]string{"--threads", "2", "embed", "--model", model, "--out", out, "--batch", "2"}, args...)...)
	runtime.ReadMemStats(&after)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if strings.Contains(stderr, "panic") {
		t.Errorf("stderr mentions a panic:\n%s", stderr)
	}
	if !strings.Contains(stdout, "(6 failed)") {
		t.Errorf("summary %q does not count 6 failures", stdout)
	}
	recs := readRecords(t, out)
	if len(recs) != 7 {
		t.Fatalf("%d records, want 7", len(recs))
	}
	for _, r := range recs {
		if filepath.Base(r.Image) == "good.png" {
			if r.Error != "" || len(r.Embedding) != testModelConfig.EmbedDim {
				t.Errorf("good.png: error %q, %d values", r.Error, len(r.Embedding))
			}
			continue
		}
		if r.Error == "" || r.Embedding != nil {
			t.Errorf("%s: no error recorded", r.Image)
		}
		want := map[string]string{"huge.png": "limit", "wide.png": "aspect ratio", "pipe.jpg": "not a regular file"}[filepath.Base(r.Image)]
		if !strings.Contains(r.Error, want) {
			t.Errorf("%s: %q does not say %q", filepath.Base(r.Image), r.Error, want)
		}
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 256<<20 {
		t.Errorf("embedding the broken folder allocated %d MiB", grew>>20)
	}
}

// TestEmbedResume: a rerun skips what is done and retries failures; another dtype may not
// append to the same file.
func TestEmbedResume(t *testing.T) {
	model := writeTestModel(t)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.png"), filepath.Join(dir, "b.png")
	writePNG(t, a, 33, 33)
	out := filepath.Join(dir, "emb.jsonl")
	args := []string{"embed", "--model", model, "--out", out, "--image", a, "--image", b}
	if code, _, stderr := runCLI(t, args...); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	recs := readRecords(t, out)
	if len(recs) != 2 || recs[1].Error == "" {
		t.Fatalf("first run: %+v", recs)
	}
	first := recs[0].Embedding
	writePNG(t, b, 40, 20)
	code, stdout, stderr := runCLI(t, args...)
	if code != exitOK || !strings.Contains(stdout, "embedded 1 of 1 images") {
		t.Fatalf("rerun: exit %d, %s %s", code, stdout, stderr)
	}
	recs = readRecords(t, out)
	if len(recs) != 2 || recs[0].Error != "" || recs[1].Error != "" {
		t.Fatalf("after the rerun: %+v", recs)
	}
	if !slicesEqual(recs[0].Embedding, first) {
		t.Error("the rerun rewrote a finished record")
	}
	code, _, stderr = runCLI(t, append(args, "--dtype", "q8_0")...)
	if code != exitRuntime || !strings.Contains(stderr, "another model or setting") {
		t.Errorf("other dtype into the same file: exit %d, %s", code, stderr)
	}
}

func slicesEqual(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestEmbedManifestShardsAndArrays: --images over a manifest, split in two shards that
// together cover every image once; .npy and .safetensors hold the same rows as .jsonl, in
// input order, with the failed row NaN.
func TestEmbedManifestShardsAndArrays(t *testing.T) {
	model := writeTestModel(t)
	dir := t.TempDir()
	var lines []string
	for _, p := range []string{"p1", "p2", "p3", "p4"} {
		writePNG(t, filepath.Join(dir, p+"_0.png"), 30+len(lines), 40)
		writePNG(t, filepath.Join(dir, p+"_1.png"), 45, 31)
		lines = append(lines, `{"id": "`+p+`", "images": ["`+p+`_0.png", "`+p+`_1.png"], "text": "item `+p+`"}`)
	}
	lines = append(lines, `{"id": "p5", "images": ["missing.png"]}`)
	manifest := filepath.Join(dir, "products.jsonl")
	if err := os.WriteFile(manifest, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, shard := range []string{"0/2", "1/2"} {
		out := filepath.Join(dir, "shard"+shard[:1]+".jsonl")
		if code, _, stderr := runCLI(t, "embed", "--model", model, "--images", manifest, "--shard", shard, "--out", out); code != exitOK {
			t.Fatalf("shard %s: exit %d: %s", shard, code, stderr)
		}
		for _, r := range readRecords(t, out) {
			seen[r.ID+"/"+r.Image]++
		}
	}
	if len(seen) != 9 {
		t.Errorf("shards cover %d images, want 9: %v", len(seen), seen)
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("%s embedded %d times", k, n)
		}
	}

	base := []string{"embed", "--model", model, "--images", manifest}
	jsonl := filepath.Join(dir, "all.jsonl")
	if code, _, stderr := runCLI(t, append(base, "--out", jsonl)...); code != exitOK {
		t.Fatal(stderr)
	}
	recs := readRecords(t, jsonl)
	npy := filepath.Join(dir, "all.npy")
	if code, _, stderr := runCLI(t, append(base, "--out", npy)...); code != exitOK {
		t.Fatal(stderr)
	}
	st := filepath.Join(dir, "all.safetensors")
	if code, _, stderr := runCLI(t, append(base, "--out", st)...); code != exitOK {
		t.Fatal(stderr)
	}
	// Array outputs and their .items.jsonl are as readable as every other output.
	for _, p := range []string{npy, st, dataset.ItemsPath(npy), dataset.ItemsPath(st)} {
		if info, err := os.Stat(p); err != nil || info.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v (%v), want 0644", filepath.Base(p), info.Mode().Perm(), err)
		}
	}
	d := testModelConfig.EmbedDim
	rows := readNPY(t, npy, len(recs), d)
	src, err := weights.Open(st)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	emb, _ := src.Tensor("embeddings")
	stRows, _ := emb.F32()
	valid, _ := src.Tensor("valid")
	if len(stRows) != len(rows) {
		t.Fatalf("safetensors has %d values, npy %d", len(stRows), len(rows))
	}
	for i, r := range recs {
		for j := 0; j < d; j++ {
			got, st := rows[i*d+j], stRows[i*d+j]
			if r.Error != "" {
				if !math.IsNaN(float64(got)) || !math.IsNaN(float64(st)) || valid.Data[i] != 0 {
					t.Fatalf("row %d (%s, failed): %v %v valid %d", i, r.Image, got, st, valid.Data[i])
				}
				continue
			}
			if got != r.Embedding[j] || st != r.Embedding[j] || valid.Data[i] != 1 {
				t.Fatalf("row %d (%s) col %d: npy %v safetensors %v jsonl %v", i, r.Image, j, got, st, r.Embedding[j])
			}
		}
	}
	items := readRecords(t, filepath.Join(dir, "all.items.jsonl"))
	if len(items) != len(recs) || items[len(items)-1].Image != "missing.png" || items[len(items)-1].Error == "" {
		t.Errorf("items file does not list the rows in input order: %+v", items)
	}
}

// readNPY reads a float32 [n, d] .npy file written by writeNPY.
func readNPY(t *testing.T, path string, n, d int) []float32 {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte("\x93NUMPY\x01\x00")) {
		t.Fatalf("%s: not an npy file", path)
	}
	hl := int(binary.LittleEndian.Uint16(data[8:10]))
	header := string(data[10 : 10+hl])
	if (10+hl)%64 != 0 || !strings.Contains(header, "'descr': '<f4'") || !strings.Contains(header, "'shape': ("+strconv.Itoa(n)+", "+strconv.Itoa(d)+")") {
		t.Fatalf("npy header %q (data at %d)", header, 10+hl)
	}
	body := data[10+hl:]
	if len(body) != 4*n*d {
		t.Fatalf("npy body %d bytes, want %d", len(body), 4*n*d)
	}
	out := make([]float32, n*d)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(body[4*i:]))
	}
	return out
}

// TestEmbedMatchesFixture: synth embed on the fixture's source images and texts gives the
// upstream embeddings (normalised), file decoding and preprocessing included.
func TestEmbedMatchesFixture(t *testing.T) {
	prep := fixtures.Dir(t, "longclip/preprocess")
	vocab := filepath.Join(filepath.Dir(prep), clipVocabName)
	for _, set := range fixtures.Sets(t, "longclip", "model.safetensors") {
		raw, err := os.ReadFile(filepath.Join(set, "config.json"))
		if err != nil {
			t.Fatal(err)
		}
		var cfg struct {
			Inputs struct {
				Texts  []string `json:"texts"`
				Images []string `json:"images"` // "photo_300x200.jpg through _transform(56)"
			} `json:"inputs"`
		}
		if err := json.Unmarshal(raw, &cfg); err != nil {
			t.Fatal(err)
		}
		exp, err := weights.Open(filepath.Join(set, "expected_fp32.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		want := func(name string) []float32 {
			tt, err := exp.Tensor(name)
			if err != nil {
				t.Fatal(err)
			}
			v, _ := tt.F32()
			return v
		}
		imgWant, txtWant := want("image_embeds_normalized"), want("text_embeds_normalized")
		exp.Close()
		d := len(txtWant) / len(cfg.Inputs.Texts)

		dir := t.TempDir()
		args := []string{"embed", "--model", filepath.Join(set, "model.pt"), "--out", filepath.Join(dir, "img.jsonl")}
		var rows []int
		for i, desc := range cfg.Inputs.Images {
			file, _, _ := strings.Cut(desc, " ")
			if p := filepath.Join(prep, file); fileExists(p) {
				args = append(args, "--image", p)
				rows = append(rows, i)
			}
		}
		if len(rows) == 0 {
			t.Fatalf("%s: no input image found under %s", set, prep)
		}
		if code, _, stderr := runCLI(t, args...); code != exitOK {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		for k, r := range readRecords(t, filepath.Join(dir, "img.jsonl")) {
			checkClose(t, "image "+r.Image, r.Embedding, imgWant[rows[k]*d:(rows[k]+1)*d])
		}

		// synth convert --type q8_0, then embed from the GGUF: cosine >= 0.999 (the bar).
		gguf := filepath.Join(dir, "model-q8_0.gguf")
		if code, _, stderr := runCLI(t, "convert", "--in", filepath.Join(set, "model.pt"), "--type", "q8_0", "--out", gguf); code != exitOK {
			t.Fatalf("convert: exit %d: %s", code, stderr)
		}
		q8 := filepath.Join(dir, "img-q8.jsonl")
		args[2], args[4] = gguf, q8
		if code, _, stderr := runCLI(t, args...); code != exitOK {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		for k, r := range readRecords(t, q8) {
			var cos float64
			for j, v := range r.Embedding { // both sides are normalised
				cos += float64(v) * float64(imgWant[rows[k]*d+j])
			}
			if cos < 0.999 {
				t.Errorf("q8_0 GGUF, image %s: cosine %.6f to the float32 upstream embedding", r.Image, cos)
			}
		}

		// JSON strings, one a line: a set's text may hold a newline
		var lines bytes.Buffer
		for _, text := range cfg.Inputs.Texts {
			js, _ := json.Marshal(text)
			lines.Write(append(js, '\n'))
		}
		texts := filepath.Join(dir, "texts.jsonl")
		if err := os.WriteFile(texts, lines.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, "txt.jsonl")
		if code, _, stderr := runCLI(t, "embed", "--model", filepath.Join(set, "model.safetensors"), "--vocab", vocab, "--texts", texts, "--out", out); code != exitOK {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		recs := readRecords(t, out)
		if len(recs) != len(cfg.Inputs.Texts) {
			t.Fatalf("%d text records, want %d", len(recs), len(cfg.Inputs.Texts))
		}
		for _, r := range recs {
			line, err := strconv.Atoi(r.ID)
			if err != nil || line < 1 || line > len(cfg.Inputs.Texts) {
				t.Fatalf("record id %q is not a line number", r.ID)
			}
			checkClose(t, "text line "+r.ID, r.Embedding, txtWant[(line-1)*d:line*d])
		}
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func checkClose(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d values, want %d", what, len(got), len(want))
		return
	}
	for i := range want {
		if d := math.Abs(float64(got[i] - want[i])); d > 1e-4 {
			t.Errorf("%s: value %d is %v, want %v", what, i, got[i], want[i])
			return
		}
	}
}

func TestEmbedUsageErrors(t *testing.T) {
	cases := [][]string{
		{"embed", "--model", "m", "--out", "o.jsonl"},
		{"embed", "--model", "m", "--out", "o.jsonl", "--image", "a", "--text", "b"},
		{"embed", "--model", "m", "--out", "o.csv", "--image", "a"},
		{"embed", "--model", "m", "--out", "o.jsonl", "--image", "a", "--batch", "-1"},
		{"embed", "--model", "m", "--out", "o.jsonl", "--image", "a", "--dtype", "q3"},
		{"embed", "--model", "m", "--out", "o.jsonl", "--image", "a", "--shard", "2/2"},
		{"embed", "--out", "o.jsonl", "--image", "a"},
	}
	for _, args := range cases {
		if code, _, stderr := runCLI(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d (%s)", args, code, exitUsage, stderr)
		}
	}
	model := writeTestModel(t)
	code, _, stderr := runCLI(t, "embed", "--model", model, "--out", filepath.Join(t.TempDir(), "o.jsonl"), "--text", "a, b")
	if code != exitUsage || !strings.Contains(stderr, "--vocab") {
		t.Errorf("texts without a vocabulary: exit %d, %s", code, stderr)
	}
}
