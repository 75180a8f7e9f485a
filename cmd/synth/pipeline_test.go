package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The documented example config parses, and names only real flags of the commands.
func TestExampleConfigParses(t *testing.T) {
	cfg, err := readPipelineConfig(filepath.Join("..", "..", "synth.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Caption.values["model"] == "" || cfg.Rewrite.values["examples"] == "" || cfg.Eval.values["products"] != "1000" {
		t.Fatalf("example config read as %+v", cfg)
	}
	args := cfg.args(cfg.Caption)
	if !strings.HasPrefix(args[0], "--model="+cfg.dir) {
		t.Errorf("caption model path not resolved against the config's folder: %v", args)
	}
}

func TestPipelineConfigErrors(t *testing.T) {
	cases := map[string]string{
		"unknown flag":         "output: o\ndata: {source: s.jsonl}\neval:\n  model: m.pt\n  prodcts: 10\n",
		"reserved flag":        "output: o\ndata: {unlabeled: u.jsonl}\ncaption:\n  model: m\n  out: x.jsonl\n",
		"missing input":        "output: o\nrewrite:\n  model: m.gguf\n",
		"translate, no source": "output: o\ntranslate:\n  model: m.gguf\n",
		"translate in":         "output: o\ndata: {source: s.jsonl}\ntranslate:\n  model: m.gguf\n  in: x.jsonl\n",
		"translate flag":       "output: o\ndata: {source: s.jsonl}\ntranslate:\n  model: m.gguf\n  min-coverage: 1\n",
		"missing model":        "output: o\ndata: {source: s.jsonl}\neval:\n  seed: 1\n",
		"unknown key":          "output: o\nthreds: 2\n",
		"no output":            "data: {source: s.jsonl}\neval:\n  model: m\n",
		"no step":              "output: o\n",
		"duplicate flag":       "output: o\ndata: {source: s.jsonl}\neval:\n  model: m\n  model: n\n",
	}
	for name, text := range cases {
		p := filepath.Join(t.TempDir(), "synth.yaml")
		os.WriteFile(p, []byte(text), 0o644)
		code, _, errOut := runCLI(t, "pipeline", "--config", p)
		if code != exitUsage || !strings.Contains(errOut, "synth.yaml") {
			t.Errorf("%s: exit %d, stderr %q; want a usage error naming the file", name, code, errOut)
		}
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
	if _, err := os.Stat(filepath.Join(dir, "ds", captionedFile)); err == nil {
		t.Error("the caption step ran before the bad data.source was found")
	}
}
