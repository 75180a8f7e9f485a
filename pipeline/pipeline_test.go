package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"synth/dataset"
	"synth/internal/demo"
	"synth/internal/llamagguf"
)

// world is a small product set and tiny random-weight models in the real formats, made
// once per test binary (read-only for the tests).
type world struct {
	dir                          string
	data                         demo.Data
	blip2, lora, longclip, llama string
}

var (
	worldOnce sync.Once
	theWorld  world
	worldErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if theWorld.dir != "" {
		os.RemoveAll(theWorld.dir)
	}
	os.Exit(code)
}

func testWorld(t *testing.T) world {
	t.Helper()
	worldOnce.Do(func() {
		dir, err := os.MkdirTemp("", "synth-pipeline-test-")
		if err != nil {
			worldErr = err
			return
		}
		w := world{dir: dir, blip2: filepath.Join(dir, "blip2"), lora: filepath.Join(dir, "lora"),
			longclip: filepath.Join(dir, "longclip", "LongCLIP-test.pt"), llama: filepath.Join(dir, "llama.gguf")}
		if w.data, err = demo.WriteData(filepath.Join(dir, "data"), demo.Sizes{Source: 6, Unlabeled: 3, Foreign: 3, ImagesPerProduct: 2}, 7); err != nil {
			worldErr = err
			return
		}
		if err = demo.WriteBLIP2(w.blip2, w.lora, demo.DemoBLIP2, 7); err != nil {
			worldErr = err
			return
		}
		os.MkdirAll(filepath.Dir(w.longclip), 0o755)
		if err = demo.WriteLongCLIP(w.longclip, filepath.Join(filepath.Dir(w.longclip), ClipVocabName), demo.DemoLongCLIP, 7); err != nil {
			worldErr = err
			return
		}
		llama := llamagguf.Tiny
		llama.Seed = 7
		if err = llamagguf.Write(w.llama, llama); err != nil {
			worldErr = err
			return
		}
		theWorld = w
	})
	if worldErr != nil {
		t.Fatal(worldErr)
	}
	return theWorld
}

// config writes a synth.yaml into a new folder; %[n]s in body are the world's paths:
// 1 blip2, 2 lora, 3 longclip, 4 llama, 5 source, 6 unlabeled, 7 foreign, 8 examples.
func (w world) config(t *testing.T, dir, body string) string {
	t.Helper()
	text := fmt.Sprintf(body, w.blip2, w.lora, w.longclip, w.llama, w.data.Source, w.data.Unlabeled, w.data.Foreign, w.data.Examples)
	path := filepath.Join(dir, "synth.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const fullConfig = `output: out
data:
  source: %[5]s
  unlabeled: %[6]s
  foreign: %[7]s
card:
  title: test set
  license: cc-by-4.0
caption:
  model: %[1]s
  lora: %[2]s
  dtype: f32
  batch: 3
  max-new-tokens: 6
rewrite:
  model: %[4]s
  examples: %[8]s
  parallel: 3
  max-tokens: 8
eval:
  model: %[3]s
  products: 6
  bootstrap: 20
  cache: cache
`

func testEnv(force bool) *Env {
	return &Env{Threads: 2, Version: "test", Force: force, Hashes: OpenHashes("")}
}

func runConfig(t *testing.T, path string, force bool) (*Result, error) {
	t.Helper()
	cfg, err := ReadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	return NewPlan(cfg).Run(context.Background(), testEnv(force))
}

// The published folder is a Hugging Face imagefolder dataset as it stands: every
// file_name exists relative to its configuration folder, every Parquet file has the one
// documented schema, the card has YAML front matter and only relative links that
// resolve, every record with a text has a score and a rank, and a second run changes
// nothing.
func TestPipelinePublishesImagefolderDataset(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the pipeline runs three tiny models (about 20 s)")
	}
	w := testWorld(t)
	dir := t.TempDir()
	res, err := runConfig(t, w.config(t, dir, fullConfig), false)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	names, err := dataset.Configs(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"source", "captioned", "rewritten"}; !slices.Equal(names, want) {
		t.Fatalf("configurations %v, want %v", names, want)
	}
	want := dataset.ParquetSchema().String()
	for _, name := range names {
		rows, err := dataset.ReadMetadata(filepath.Join(out, name, dataset.MetadataFile))
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) == 0 || res.Rows[name] != len(rows) {
			t.Fatalf("%s: %d rows in metadata.jsonl, the run says %d", name, len(rows), res.Rows[name])
		}
		for _, r := range rows {
			if _, err := os.Stat(filepath.Join(out, name, filepath.FromSlash(r.FileName))); err != nil {
				t.Errorf("%s: file_name %s does not exist relative to the folder: %v", name, r.FileName, err)
			}
			if filepath.IsAbs(r.FileName) || strings.HasPrefix(r.FileName, "..") {
				t.Errorf("%s: file_name %s leaves the folder", name, r.FileName)
			}
			if r.Text != nil && (r.Score == nil || r.Rank == nil || *r.Rank < 1) {
				t.Errorf("%s %s %s: text without a score and rank", name, r.ID, r.Image)
			}
			if name != "source" && (r.Fingerprint == nil || r.Params == nil || r.Models == nil) {
				t.Errorf("%s %s: no provenance in the row", name, r.ID)
			}
		}
		// Every line of metadata.jsonl has every column, with the same JSON types.
		checkColumns(t, filepath.Join(out, name, dataset.MetadataFile))

		pq := filepath.Join(out, dataset.ParquetDir, name+".parquet")
		f, err := os.Open(pq)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := f.Stat()
		pf, err := parquet.OpenFile(f, st.Size())
		if err != nil {
			t.Fatalf("%s: %v", pq, err)
		}
		if got := pf.Schema().String(); got != want {
			t.Errorf("%s schema:\n%s\nwant the fixed schema:\n%s", pq, got, want)
		}
		if int(pf.NumRows()) != len(rows) {
			t.Errorf("%s: %d rows, metadata.jsonl %d", pq, pf.NumRows(), len(rows))
		}
		f.Close()
		back, err := dataset.ReadParquet(pq)
		if err != nil {
			t.Fatal(err)
		}
		if back[0].FileName != name+"/"+rows[0].FileName {
			t.Errorf("%s: parquet file_name %q, want %q relative to the dataset folder", pq, back[0].FileName, name+"/"+rows[0].FileName)
		}
	}

	card, err := os.ReadFile(res.Card)
	if err != nil {
		t.Fatal(err)
	}
	text := string(card)
	for _, s := range []string{"---\npretty_name: test set\nlicense: cc-by-4.0\n", "task_categories:", "config_name: captioned", "data_dir: rewritten", "## Format", "## Limitations", "## Provenance"} {
		if !strings.Contains(text, s) {
			t.Errorf("card lacks %q", s)
		}
	}
	if strings.Contains(text, dir) || strings.Contains(text, w.dir) {
		t.Errorf("card holds local absolute paths:\n%s", text)
	}
	for _, m := range regexp.MustCompile(`\]\(([^)]+)\)`).FindAllStringSubmatch(text, -1) {
		if _, err := os.Stat(filepath.Join(out, m[1])); err != nil {
			t.Errorf("card link %s does not resolve from the dataset folder", m[1])
		}
	}
	var rep struct {
		Datasets []struct{ Manifest string } `json:"datasets"`
	}
	data, _ := os.ReadFile(filepath.Join(out, EvalDir, "report.json"))
	json.Unmarshal(data, &rep)
	for _, d := range rep.Datasets {
		if filepath.IsAbs(d.Manifest) {
			t.Errorf("report.json names the manifest %s by an absolute path", d.Manifest)
		}
	}
	loadWithHFDatasets(t, out, names, res.Rows)

	// A second run recomputes and rewrites nothing.
	before := mtimes(t, out)
	res2, err := runConfig(t, filepath.Join(dir, "synth.yaml"), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range res2.Statuses {
		if st.Ran {
			t.Errorf("second run: %s ran again", st.Step)
		}
	}
	for f, mt := range mtimes(t, out) {
		if !before[f].Equal(mt) {
			t.Errorf("second run rewrote %s", f)
		}
	}
}

// checkColumns asserts that every line of a metadata.jsonl has the same keys with the
// same JSON types (null aside).
func checkColumns(t *testing.T, path string) {
	t.Helper()
	types := map[string]string{}
	var keys []string
	err := dataset.ReadRecords(path, func(line int, raw json.RawMessage) error {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			return err
		}
		if keys == nil {
			for k := range m {
				keys = append(keys, k)
			}
		}
		if len(m) != len(keys) {
			t.Errorf("%s:%d has %d columns, line 1 has %d", path, line, len(m), len(keys))
		}
		for k, v := range m {
			if v == nil {
				continue
			}
			ty := fmt.Sprintf("%T", v)
			if old, ok := types[k]; ok && old != ty {
				t.Errorf("%s:%d: column %s is %s, earlier %s", path, line, k, ty, old)
			}
			types[k] = ty
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// loadWithHFDatasets loads each configuration through Hugging Face datasets when python3
// has it.
func loadWithHFDatasets(t *testing.T, out string, names []string, rows map[string]int) {
	if err := exec.Command("python3", "-c", "import datasets").Run(); err != nil {
		t.Logf("not loaded through Hugging Face datasets: python3 cannot import datasets here (%v; Debian has no python3-datasets or python3-pyarrow); the imagefolder convention was checked above", err)
		return
	}
	for _, name := range names {
		script := fmt.Sprintf("import datasets; ds = datasets.load_dataset('imagefolder', data_dir=%q, split='train'); print(len(ds))", filepath.Join(out, name))
		got, err := exec.Command("python3", "-c", script).CombinedOutput()
		if err != nil {
			t.Errorf("datasets.load_dataset(imagefolder, %s): %v\n%s", name, err, got)
			continue
		}
		if n := strings.TrimSpace(string(got)); n != fmt.Sprint(rows[name]) {
			t.Errorf("datasets loaded %s rows of %s, want %d", n, name, rows[name])
		}
	}
}

func mtimes(t *testing.T, root string) map[string]time.Time {
	t.Helper()
	m := map[string]time.Time{}
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		// lock files hold the pid of the run that holds them
		if err == nil && d.Type().IsRegular() && !strings.HasSuffix(p, ".lock") && !strings.Contains(p, string(filepath.Separator)+"cache"+string(filepath.Separator)) {
			st, _ := d.Info()
			m[p] = st.ModTime()
		}
		return err
	})
	return m
}

const captionConfig = `output: out
data:
  unlabeled: %[6]s
caption:
  model: %[1]s
  dtype: f32
  batch: 3
`

// The rerun cases of issue 17: a changed generation parameter, and a removed adapter,
// stop the run before any work with a message saying what changed; --force recomputes,
// and the card then describes what the records were made with.
func TestRerunWithOtherSettingsStopsOrRecomputes(t *testing.T) {
	w := testWorld(t)
	dir := t.TempDir()
	first := captionConfig + "  lora: %[2]s\n  max-new-tokens: 4\n"
	if _, err := runConfig(t, w.config(t, dir, first), false); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, body, want string }{
		{"max-new-tokens", captionConfig + "  lora: %[2]s\n  max-new-tokens: 3\n", "max_new_tokens 4 -> 3"},
		{"lora removed", captionConfig + "  max-new-tokens: 4\n", " -> none"},
		{"alias", captionConfig + "  lora: %[2]s\n  max-tokens: 3\n", "max_new_tokens 4 -> 3"},
	} {
		path := w.config(t, dir, c.body)
		cfg, err := ReadConfig(path)
		if err != nil {
			t.Fatal(err)
		}
		plan := NewPlan(cfg)
		err = plan.Check(testEnv(false))
		var stale *StaleError
		if !errors.As(err, &stale) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "--force") ||
			!strings.Contains(err.Error(), CaptionedFile) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: check: %v; want one line saying %q and --force", c.name, err, c.want)
		}
		if _, err := plan.Run(context.Background(), testEnv(false)); !errors.Is(err, ErrStale) {
			t.Errorf("%s: run: %v, want the stale output error", c.name, err)
		}
	}
	recs := readOutput(t, filepath.Join(dir, "out", CaptionedFile))
	for _, r := range recs {
		if r.Params.MaxNewTokens != 4 || r.LoRA == nil {
			t.Fatalf("a stopped run changed the output: %+v", r)
		}
	}

	// --force recomputes every record without the adapter and with 3 tokens.
	res, err := runConfig(t, w.config(t, dir, captionConfig+"  max-new-tokens: 3\n"), true)
	if err != nil {
		t.Fatal(err)
	}
	recs2 := readOutput(t, filepath.Join(dir, "out", CaptionedFile))
	if len(recs2) != len(recs) {
		t.Fatalf("%d records after --force, %d before", len(recs2), len(recs))
	}
	fp := recs2[0].Provenance.Fingerprint
	for _, r := range recs2 {
		if r.Params.MaxNewTokens != 3 || r.LoRA != nil || r.Provenance.Models["lora"] != "" || r.Provenance.Fingerprint != fp || fp == recs[0].Provenance.Fingerprint {
			t.Errorf("record after --force: %+v", r)
		}
	}
	card, _ := os.ReadFile(res.Card)
	if !strings.Contains(string(card), `"max_new_tokens":3`) || strings.Contains(string(card), `"max_new_tokens":4`) || strings.Contains(string(card), "lora `") {
		t.Errorf("the card does not describe what the records were made with:\n%s", card)
	}
}

func readOutput(t *testing.T, path string) []CaptionRecord {
	t.Helper()
	var out []CaptionRecord
	err := dataset.ReadRecords(path, func(_ int, raw json.RawMessage) error {
		var r CaptionRecord
		err := json.Unmarshal(raw, &r)
		out = append(out, r)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Validation before work: a problem in any step, eval included, fails the check in one
// line naming the setting and the file, before the first step writes anything.
func TestCheckFindsEveryStepsProblemsFirst(t *testing.T) {
	w := testWorld(t)
	for _, c := range []struct{ name, edit, want string }{
		{"missing rewrite model", "  examples: %[8]s\n", "rewrite: model"},
		{"missing examples", "", "rewrite: examples"},
		{"missing eval model", "", "eval: model"},
		{"missing lora", "", "caption: lora"},
	} {
		dir := t.TempDir()
		body := fullConfig
		switch c.name {
		case "missing rewrite model":
			body = strings.Replace(body, "  model: %[4]s\n", "  model: models/nope.gguf\n", 1)
		case "missing examples":
			body = strings.Replace(body, "  examples: %[8]s\n", "  examples: nope.jsonl\n", 1)
		case "missing eval model":
			body = strings.Replace(body, "  model: %[3]s\n", "  model: nope.pt\n", 1)
		case "missing lora":
			body = strings.Replace(body, "  lora: %[2]s\n", "  lora: nope-lora\n", 1)
		}
		path := w.config(t, dir, body)
		cfg, err := ReadConfig(path)
		if err != nil {
			t.Fatal(err)
		}
		_, err = NewPlan(cfg).Run(context.Background(), testEnv(false))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v; want one line naming %q and %s", c.name, err, c.want, path)
		}
		if err != nil && c.name != "missing lora" && !strings.Contains(err.Error(), "not found") {
			t.Errorf("%s: %v; want 'not found'", c.name, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "out", CaptionedFile)); err == nil {
			t.Errorf("%s: the caption step ran before the check failed", c.name)
		}
	}
}

func TestReadConfig(t *testing.T) {
	cases := []struct{ text, want string }{
		{"output: o\ndata: {source: s.jsonl}\neval:\n  model: m.pt\n  prodcts: 10\n", ":5: unknown key eval.prodcts; did you mean products?"},
		{"output: o\ndata: {unlabeled: u.jsonl}\ncaption:\n  model: m\n  batch: four\n", `:5: caption.batch: "four" is not an integer`},
		{"output: o\ndata: {unlabeled: u.jsonl}\ncaption:\n  model: m\n  batch: -2\n", ":5: caption.batch -2: want 1 to 1024 (0: the device's default)"},
		{"output: o\ndata: {unlabeled: u.jsonl}\ncaption:\n  model: m\n  out: x.jsonl\n", ":5: caption.out is set by the pipeline"},
		{"output: o\nrewrite:\n  model: m.gguf\n  examples: e\n", ":2: the rewrite step needs data.foreign"},
		{"output: o\ndata: {source: s.jsonl}\neval:\n  seed: 1\n", "eval.model is required"},
		{"output: o\nthreds: 2\n", ":2: unknown key threds; did you mean threads?"},
		{"data: {source: s.jsonl}\neval:\n  model: m\n", "output: the dataset folder is required"},
		{"output: o\n", "no step configured"},
		{"output: o\ndata: {source: s.jsonl}\neval:\n  model: m\n  model: n\n", ":5: eval.model given twice"},
		{"output: o\ndata: {unlabeled: u.jsonl}\ncaption:\n  model: m\n  temperature: [1, 2]\n", ":5: want a single value"},
	}
	for _, c := range cases {
		p := filepath.Join(t.TempDir(), "synth.yaml")
		os.WriteFile(p, []byte(c.text), 0o644)
		_, err := ReadConfig(p)
		var ce *ConfigError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), p) {
			t.Errorf("%q: %v; want a ConfigError with %q", c.text, err, c.want)
		}
	}
	// Both names of a setting reach the same field, and paths resolve against the file.
	p := filepath.Join(t.TempDir(), "synth.yaml")
	os.WriteFile(p, []byte("output: o\ndata: {unlabeled: u.jsonl, foreign: f.jsonl}\ncaption:\n  model: m\n  max-tokens: 7\n  repeat-penalty: 1.3\nrewrite:\n  model: l.gguf\n  examples: e.jsonl\n  max-new-tokens: 9\n  repetition-penalty: 1.1\n"), 0o644)
	cfg, err := ReadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Caption.MaxNewTokens != 7 || cfg.Caption.RepetitionPenalty != 1.3 || cfg.Rewrite.MaxTokens != 9 || cfg.Rewrite.RepeatPen != 1.1 {
		t.Errorf("aliases: caption %+v, rewrite %+v", cfg.Caption, cfg.Rewrite)
	}
	if cfg.Caption.Model != filepath.Join(filepath.Dir(p), "m") || cfg.Output != filepath.Join(filepath.Dir(p), "o") {
		t.Errorf("paths not resolved against the config's folder: %s, %s", cfg.Caption.Model, cfg.Output)
	}
	if cfg.Caption.Batch != 0 || cfg.Caption.Device != "cpu" || cfg.Rewrite.Temperature != 0.6 {
		t.Errorf("defaults not applied: batch %d, temperature %g", cfg.Caption.Batch, cfg.Rewrite.Temperature)
	}
}

// The documented example config parses and names only real settings.
func TestExampleConfigParses(t *testing.T) {
	cfg, err := ReadConfig(filepath.Join("..", "synth.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Caption == nil || cfg.Rewrite == nil || cfg.Eval == nil || cfg.Eval.Products != 1000 || cfg.Caption.DType != "q8_0" {
		t.Fatalf("example config read as %+v", cfg)
	}
}

// docs/parameters.md is the one place the two names of a setting are written down: every
// alias of every step is in it.
func TestParametersDocListsEveryAlias(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "parameters.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, params := range []any{&CaptionParams{}, &RewriteParams{}, &TranslateParams{}, &EvalParams{}, &LongCLIPParams{}} {
		for _, s := range Settings(params) {
			for _, a := range s.Aliases {
				if !strings.Contains(string(doc), "`--"+a+"`") || !strings.Contains(string(doc), "`--"+s.Name+"`") {
					t.Errorf("docs/parameters.md does not map --%s to --%s", a, s.Name)
				}
			}
		}
	}
}

// adapterStep stands for a finetune step: it writes the adapter that caption reads.
type adapterStep struct{ from, to string }

func (a *adapterStep) Name() string      { return "finetune" }
func (a *adapterStep) Check(*Env) error  { return nil }
func (a *adapterStep) Outputs() []string { return []string{a.to} }
func (a *adapterStep) Run(context.Context, *Env) (Status, error) {
	if err := os.MkdirAll(a.to, 0o755); err != nil {
		return Status{}, err
	}
	ents, err := os.ReadDir(a.from)
	if err != nil {
		return Status{}, err
	}
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(a.from, e.Name()))
		if err != nil {
			return Status{}, err
		}
		if err := os.WriteFile(filepath.Join(a.to, e.Name()), data, 0o644); err != nil {
			return Status{}, err
		}
	}
	return Status{Step: a.Name(), Output: a.to, Ran: true}, nil
}

// A step that makes the adapter slots in before caption: the plan's check accepts the
// adapter that does not exist yet, and caption's records carry the hash of the adapter
// the earlier step wrote.
func TestStepWritingTheAdapterSlotsInBeforeCaption(t *testing.T) {
	w := testWorld(t)
	dir := t.TempDir()
	adapter := filepath.Join(dir, "trained-lora")
	cfg, err := ReadConfig(w.config(t, dir, captionConfig+"  lora: trained-lora\n  max-new-tokens: 3\n"))
	if err != nil {
		t.Fatal(err)
	}
	plan := NewPlan(cfg)
	if err := plan.Check(testEnv(false)); err == nil {
		t.Fatal("caption's missing adapter passed the check without a step that makes it")
	}
	plan.Steps = append([]Step{&adapterStep{from: w.lora, to: adapter}}, plan.Steps...)
	if _, err := plan.Run(context.Background(), testEnv(false)); err != nil {
		t.Fatal(err)
	}
	sum, err := OpenHashes("").Sum(adapter)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range readOutput(t, filepath.Join(dir, "out", CaptionedFile)) {
		if r.Provenance.Models["lora"] != sum || r.LoRA == nil || *r.LoRA != "trained-lora" {
			t.Errorf("record %+v: not made with the adapter the earlier step wrote", r)
		}
	}
}
