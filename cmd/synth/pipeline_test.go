package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"synth/internal/demo"
	"synth/pipeline"
)

// A bad synth.yaml is a usage error (exit 2) in one line naming the file, the line and
// the key, with a suggestion for a typo.
func TestPipelineConfigErrors(t *testing.T) {
	cases := map[string]struct{ text, want string }{
		"typo":          {"output: o\ndata: {source: s.jsonl}\neval:\n  model: m.pt\n  prodcts: 10\n", "synth.yaml:5: unknown key eval.prodcts; did you mean products?"},
		"bad value":     {"output: o\ndata: {unlabeled: u.jsonl}\ncaption:\n  model: m\n  batch: four\n", `synth.yaml:5: caption.batch: "four" is not an integer`},
		"reserved flag": {"output: o\ndata: {unlabeled: u.jsonl}\ncaption:\n  model: m\n  out: x.jsonl\n", "synth.yaml:5: caption.out is set by the pipeline"},
		"data typo":     {"output: o\ndata: {sorce: s.jsonl}\neval:\n  model: m\n", "unknown key data.sorce; did you mean source?"},
	}
	for name, text := range map[string]string{
		"missing input":        "output: o\nrewrite:\n  model: m.gguf\n",
		"translate, no source": "output: o\ntranslate:\n  model: m.gguf\n",
		"translate in":         "output: o\ndata: {source: s.jsonl}\ntranslate:\n  model: m.gguf\n  in: x.jsonl\n",
		"translate flag":       "output: o\ndata: {source: s.jsonl}\ntranslate:\n  model: m.gguf\n  min-coverage: 1\n",
		"missing model":        "output: o\ndata: {source: s.jsonl}\neval:\n  seed: 1\n",
		"no output":            "data: {source: s.jsonl}\neval:\n  model: m\n",
		"no step":              "output: o\n",
		"duplicate flag":       "output: o\ndata: {source: s.jsonl}\neval:\n  model: m\n  model: n\n",
	} {
		cases[name] = struct{ text, want string }{text, "synth.yaml"}
	}
	for name, c := range cases {
		p := filepath.Join(t.TempDir(), "synth.yaml")
		if err := os.WriteFile(p, []byte(c.text), 0o644); err != nil {
			t.Fatal(err)
		}
		code, _, errOut := runCLI(t, "pipeline", "--config", p)
		if code != exitUsage || !strings.Contains(errOut, c.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("%s: exit %d, stderr %q; want exit 2 and one line with %q", name, code, errOut, c.want)
		}
	}
}

// --dry-run opens and checks every step's models and data, prints the plan on stdout,
// runs nothing; a missing model of a later step fails it in one line.
func TestPipelineDryRun(t *testing.T) {
	l, _, err := demo.Build(filepath.Join(t.TempDir(), "demo"), 3)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "pipeline", "--dry-run", "--config", l.Config)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"plan for", "1. translate", "2. finetune", "3. caption", "4. rewrite", "5. eval", "6. publish"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(l.Dir, "out", pipeline.CaptionedFile)); err == nil {
		t.Error("--dry-run captioned")
	}
	cfg, _ := os.ReadFile(l.Config)
	broken := strings.Replace(string(cfg), "models/llama-3.1-demo.gguf", "models/nope.gguf", 1)
	if err := os.WriteFile(l.Config, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runCLI(t, "pipeline", "--dry-run", "--config", l.Config)
	if code != exitRuntime || !strings.Contains(errOut, ": model ") || !strings.Contains(errOut, "nope.gguf: not found") ||
		!strings.Contains(errOut, "synth.yaml") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Errorf("missing LLM model: exit %d, stderr %q", code, errOut)
	}
}

// A data manifest the steps cannot read stops the pipeline before any step runs (a
// missing data.source used to surface at eval, after captioning and rewriting).
func TestPipelineChecksDataBeforeWork(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "u.jsonl"), []byte(`{"id":"p1","images":["a.jpg"]}`+"\n"), 0o644)
	cfg := filepath.Join(dir, "synth.yaml")
	os.WriteFile(cfg, []byte("output: ds\ndata: {unlabeled: u.jsonl, source: missing.jsonl}\ncaption:\n  model: no-model\neval:\n  model: m.pt\n"), 0o644)
	code, _, errOut := runCLI(t, "pipeline", "--config", cfg)
	if code != exitRuntime || !strings.Contains(errOut, "missing.jsonl") {
		t.Errorf("exit %d, %q; want an error naming missing.jsonl", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "ds", pipeline.CaptionedFile)); err == nil {
		t.Error("the caption step ran before the bad data.source was found")
	}
}
