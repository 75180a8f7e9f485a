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
	for _, want := range []string{"plan for", "1. caption", "2. rewrite", "3. eval", "4. publish"} {
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
	if code != exitRuntime || !strings.Contains(errOut, "rewrite: model") || !strings.Contains(errOut, "not found") ||
		!strings.Contains(errOut, "synth.yaml") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Errorf("missing rewrite model: exit %d, stderr %q", code, errOut)
	}
}
