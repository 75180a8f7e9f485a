package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"synth/internal/fixtures"
	"synth/internal/parity"
)

// TestFinetuneGolden runs synth finetune with each fixture set's own flags, from its
// starting adapter, and compares the written adapter with HF transformers + peft's.
func TestFinetuneGolden(t *testing.T) {
	for _, set := range fixtures.Sets(t, "finetune", "expected.json") {
		t.Run(filepath.Base(set), func(t *testing.T) {
			var g struct {
				Losses []float64 `json:"losses"`
				Flags  []string  `json:"flags"`
			}
			b, err := os.ReadFile(filepath.Join(set, "expected.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &g); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "adapter")
			args := append([]string{"--quiet", "finetune", "--model", filepath.Join(set, "model"), "--data", filepath.Join(set, "products.jsonl"),
				"--from-adapter", filepath.Join(set, "init_adapter"), "--out", out, "--dtype", "f32"}, g.Flags...)
			code, stdout, stderr := runCLI(t, args...)
			if code != exitOK {
				t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
			}
			if !strings.Contains(stdout, "loss:") {
				t.Errorf("no summary on stdout: %q", stdout)
			}
			want := parity.Load(t, filepath.Join(set, "expected_adapter", "adapter_model.safetensors"))
			got := parity.Load(t, filepath.Join(out, "adapter_model.safetensors"))
			for name := range want {
				w, _ := want.F32(t, name)
				v, _ := got.F32(t, name)
				if e := parity.RelErr(v, w, nil); e > 1e-4 {
					t.Errorf("%s: rel err %.3g", name, e)
				}
			}
			log, err := os.ReadFile(filepath.Join(out, "train_log.jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			var losses []float64
			for _, line := range strings.Split(strings.TrimSpace(string(log)), "\n") {
				var l struct{ Loss *float64 }
				if err := json.Unmarshal([]byte(line), &l); err != nil {
					t.Fatal(err)
				}
				if l.Loss != nil {
					losses = append(losses, *l.Loss)
				}
			}
			if len(losses) != len(g.Losses) {
				t.Fatalf("%d losses logged, want %d", len(losses), len(g.Losses))
			}
			for i := range losses {
				if math.Abs(losses[i]-g.Losses[i]) > 1e-4*math.Abs(g.Losses[i]) {
					t.Errorf("step %d: loss %.7f, want %.7f", i+1, losses[i], g.Losses[i])
				}
			}
			// a finished run is kept with --resume, refused without it
			if code, stdout, _ := runCLI(t, append(args, "--resume")...); code != exitOK || !strings.Contains(stdout, "nothing to do") {
				t.Errorf("--resume of a finished run: exit %d, %q", code, stdout)
			}
			if code, _, stderr := runCLI(t, args...); code == exitOK || !strings.Contains(stderr, "--resume") {
				t.Errorf("a second run into a finished folder: exit %d, %q", code, stderr)
			}
			// other settings cannot resume this run
			other := append(append([]string{}, args...), "--seed", "9")
			for i, a := range other {
				if a == "--lr" {
					other[i+1] = "2e-3"
				}
			}
			if code, _, stderr := runCLI(t, append(other, "--resume")...); code == exitOK || !strings.Contains(stderr, "other settings") {
				t.Errorf("--resume with another --lr: exit %d, %q", code, stderr)
			}
		})
	}
}

// TestFinetuneBadInput: every bad setting or input is one line naming it, never a
// panic or a run.
func TestFinetuneBadInput(t *testing.T) {
	set := fixtures.Sets(t, "finetune", "expected.json")[0]
	dir := t.TempDir()
	model, data := filepath.Join(set, "model"), filepath.Join(set, "products.jsonl")
	broken := filepath.Join(dir, "broken.jsonl")
	os.WriteFile(broken, []byte("{\"id\": \"a\", \"images\": [\"x.png\"], \"text\": \"t\"}\nnot json\n"), 0o644)
	missingImage := filepath.Join(dir, "missing.jsonl")
	os.WriteFile(missingImage, []byte("{\"id\": \"a\", \"images\": [\"nope.png\"], \"text\": \"red dress\"}\n"), 0o644)
	noText := filepath.Join(dir, "notext.jsonl")
	os.WriteFile(noText, []byte("{\"id\": \"a\", \"images\": [\"nope.png\"]}\n"), 0o644)
	out := func() string { return filepath.Join(t.TempDir(), "a") }
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--model", model, "--data", data}, "out"},
		{[]string{"--model", model, "--data", data, "--out", out(), "--betas", "0.9"}, "--betas"},
		{[]string{"--model", model, "--data", data, "--out", out(), "--schedule", "steps"}, "--schedule"},
		{[]string{"--model", model, "--data", data, "--out", out(), "--text-field", "body"}, "--text-field"},
		{[]string{"--model", model, "--data", data, "--out", out(), "--lora-r", "0"}, "--lora-r"},
		{[]string{"--model", model, "--data", data, "--out", out(), "--base-dropout", "1.5"}, "--base-dropout"},
		{[]string{"--model", model, "--data", data, "--out", out(), "--batch", "0"}, "--batch"},
		{[]string{"--model", model, "--data", data, "--out", out(), "--val-fraction", "1"}, "--val-fraction"},
		{[]string{"--model", model, "--data", data, "--out", out(), "--target-modules", "no_such_layer"}, "no_such_layer"},
		{[]string{"--model", model, "--data", data, "--out", out(), "--dtype", "q3"}, "--dtype"},
		{[]string{"--model", model, "--data", data, "--out", out(), "--device", "tpu:7"}, "--device"},
		{[]string{"--model", filepath.Join(dir, "none"), "--data", data, "--out", out()}, "model"},
		{[]string{"--model", model, "--data", broken, "--out", out()}, "broken.jsonl:2"},
		{[]string{"--model", model, "--data", missingImage, "--out", out()}, "nope.png"},
		{[]string{"--model", model, "--data", noText, "--out", out()}, "no product has both images and a \"text\" text"},
		{[]string{"--model", model, "--data", data, "--out", out(), "--val-fraction", "0.9"}, "--val-fraction"},
		{[]string{"--model", model, "--data", data, "--out", out(), "--max-length", "1"}, "--max-length"},
	}
	for _, c := range cases {
		code, _, stderr := runCLI(t, append([]string{"--quiet", "finetune", "--max-steps", "1"}, c.args...)...)
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		last := lines[len(lines)-1]
		if code == exitOK || !strings.HasPrefix(last, "synth: ") || !strings.Contains(last, c.want) {
			t.Errorf("%v: exit %d, last line %q, want an error naming %q", c.args, code, last, c.want)
		}
	}
}
