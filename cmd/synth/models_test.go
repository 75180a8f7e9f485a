package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// lockedModels writes two small model folders under dir, locks them with
// `synth models lock` run from dir, and returns the lock file.
func lockedModels(t *testing.T, dir string) string {
	t.Helper()
	for name, data := range map[string]string{
		"models/blip2/config.json":       `{"model_type": "blip-2"}`,
		"models/blip2/model.safetensors": strings.Repeat("weights ", 512),
		"models/clip.pt":                 strings.Repeat("pt", 300),
	} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(dir)
	code, out, errOut := runCLI(t, "models", "lock", "models")
	if code != exitOK {
		t.Fatalf("models lock: exit %d, stderr %q", code, errOut)
	}
	if n := strings.Count(out, "  models/"); n != 3 {
		t.Fatalf("models lock listed %d files, want 3:\n%s", n, out)
	}
	lock := filepath.Join(dir, "models.lock")
	if err := os.WriteFile(lock, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	return lock
}

func TestModelsCheck(t *testing.T) {
	dir := t.TempDir()
	lock := lockedModels(t, dir)
	t.Chdir(t.TempDir()) // the lock's paths resolve against its folder, not the working directory

	code, out, errOut := runCLI(t, "models", "check", lock)
	if code != exitOK || !strings.Contains(out, "3 files") || strings.Count(out, "\n") != 1 {
		t.Fatalf("models check of a fresh lock: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	// a changed byte (same size) and a missing file
	weights := filepath.Join(dir, "models", "blip2", "model.safetensors")
	data, err := os.ReadFile(weights)
	if err != nil {
		t.Fatal(err)
	}
	data[100] = 'W'
	if err := os.WriteFile(weights, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "models", "clip.pt")); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runCLI(t, "models", "check", lock)
	if code != exitRuntime {
		t.Fatalf("models check after damage: exit %d, want %d (stderr %q)", code, exitRuntime, errOut)
	}
	if strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "2 of 3 files do not match") ||
		!strings.Contains(errOut, "models/blip2/model.safetensors content differs") || !strings.Contains(errOut, "models/clip.pt missing") {
		t.Errorf("models check report %q: want one line naming the changed and the missing file", errOut)
	}

	for _, args := range [][]string{{"models", "check"}, {"models", "check", lock, lock}, {"models", "lock"}} {
		if code, _, errOut := runCLI(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d (stderr %q)", args, code, exitUsage, errOut)
		}
	}
}

// TestPipelineRefusesModelsNotMatchingTheLock: with models-lock set, a changed or
// unlisted model stops the pipeline before it writes anything.
func TestPipelineRefusesModelsNotMatchingTheLock(t *testing.T) {
	dir := t.TempDir()
	lockedModels(t, dir)
	config := func(evalModel string) string {
		cfg := "output: out\nmodels-lock: models.lock\ndata:\n  unlabeled: data/unlabeled.jsonl\n  source: data/source.jsonl\n" +
			"caption:\n  model: models/blip2\neval:\n  model: " + evalModel + "\n"
		p := filepath.Join(dir, "synth.yaml")
		if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	outDir := filepath.Join(dir, "out")
	noOutput := func(what string) {
		t.Helper()
		if _, err := os.Stat(outDir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: the pipeline created %s before refusing", what, outDir)
		}
	}

	// matching models pass the check; the run then stops at the absent manifests
	code, _, errOut := runCLI(t, "pipeline", "--config", config("models/clip.pt"))
	if code == exitOK || !strings.Contains(errOut, "models.lock: 3 files (4.6 KiB) match") {
		t.Fatalf("pipeline with matching models: exit %d, stderr %q; want the lock reported as matching", code, errOut)
	}

	// a model the lock does not list
	if err := os.WriteFile(filepath.Join(dir, "other.pt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(outDir)
	code, _, errOut = runCLI(t, "pipeline", "--config", config("other.pt"))
	if code != exitRuntime || !strings.Contains(errOut, "does not list") || !strings.Contains(errOut, "other.pt") {
		t.Errorf("pipeline with an unlisted model: exit %d, stderr %q", code, errOut)
	}
	noOutput("unlisted model")

	// a changed byte in a listed model; --models-lock gives the same lock from the command line
	if err := os.WriteFile(filepath.Join(dir, "models", "blip2", "config.json"), []byte(`{"model_type": "blip-3"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"pipeline", "--config", config("models/clip.pt")},
		{"pipeline", "--models-lock", filepath.Join(dir, "models.lock"), "--config", config("models/clip.pt")},
	} {
		code, _, errOut = runCLI(t, args...)
		if code != exitRuntime || !strings.Contains(errOut, "models/blip2/config.json content differs") {
			t.Errorf("%v with a changed model: exit %d, stderr %q", args, code, errOut)
		}
		noOutput("changed model")
	}
}
