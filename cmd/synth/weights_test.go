package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"synth/internal/fixtures"
	"synth/weights"
)

func TestInspectLongCLIP(t *testing.T) {
	for _, set := range fixtures.Sets(t, "longclip", "model.pt") {
		for _, p := range []string{set, filepath.Join(set, "model.pt")} {
			code, out, errOut := runCLI(t, "inspect", "--json", p)
			if code != exitOK {
				t.Fatalf("inspect %s: code %d, %s", p, code, errOut)
			}
			var r weights.Inspection
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatalf("inspect --json output: %v", err)
			}
			src, err := weights.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			if r.NumTensors != src.Len() || r.Params != src.ParamCount() || len(r.Tensors) != src.Len() || r.Format != string(src.Format()) {
				t.Errorf("%s: report %d tensors / %d params / %s, source %d / %d / %s", p, r.NumTensors, r.Params, r.Format, src.Len(), src.ParamCount(), src.Format())
			}
			if (p == set) != (len(r.Config) > 0) {
				t.Errorf("%s: config shown %v", p, len(r.Config) > 0)
			}
			src.Close()
		}
		code, out, _ := runCLI(t, "inspect", set)
		if code != exitOK || !strings.Contains(out, "visual.conv1.weight") || !strings.Contains(out, "parameters") {
			t.Errorf("text inspect: code %d\n%s", code, out)
		}
	}
}

func TestInspectAdapterAndGGUF(t *testing.T) {
	for _, set := range fixtures.Sets(t, "blip2", "adapter_config.json") {
		code, out, errOut := runCLI(t, "inspect", "--json", set)
		if code != exitOK {
			t.Fatalf("code %d: %s", code, errOut)
		}
		var r weights.Inspection
		json.Unmarshal([]byte(out), &r)
		if r.Adapter == nil || len(r.Adapter.Modules) == 0 || r.Adapter.R <= 0 {
			t.Errorf("%s: adapter not described: %+v", set, r.Adapter)
		}
	}
	llm := filepath.Join(fixtures.Dir(t, "llm"), "tiny-llama-a.gguf")
	code, out, errOut := runCLI(t, "inspect", "--json", llm)
	if code != exitOK {
		t.Fatalf("code %d: %s", code, errOut)
	}
	var r weights.Inspection
	json.Unmarshal([]byte(out), &r)
	for _, m := range r.Metadata {
		if m.Key == "tokenizer.ggml.tokens" && (m.Len != 747 || len(m.Value.([]any)) != weights.MaxArrayShown) {
			t.Errorf("tokens summarised as %d of %d", len(m.Value.([]any)), m.Len)
		}
	}
	if code, _, _ := runCLI(t, "inspect"); code != exitUsage {
		t.Errorf("inspect without PATH: code %d", code)
	}
	if code, _, errOut := runCLI(t, "inspect", filepath.Join(t.TempDir(), "nope")); code != exitRuntime || !strings.Contains(errOut, "nope") {
		t.Errorf("missing file: code %d %q", code, errOut)
	}
}

func TestConvertCLI(t *testing.T) {
	for _, set := range fixtures.Sets(t, "longclip", "model.pt") {
		out := filepath.Join(t.TempDir(), "lc.gguf")
		// a .pt file: the config.json beside it goes into the metadata
		code, stdout, errOut := runCLI(t, "convert", "--in", filepath.Join(set, "model.pt"), "--type", "q8_0", "--out", out, "--keep", "*c_proj*")
		if code != exitOK {
			t.Fatalf("convert: code %d: %s", code, errOut)
		}
		if !strings.Contains(stdout, "architecture longclip") {
			t.Errorf("convert output: %s", stdout)
		}
		src, err := weights.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		if len(src.Config()) == 0 {
			t.Error("config.json not stored")
		}
		for _, tn := range src.Tensors() {
			wantQ := strings.HasSuffix(tn.Name, "in_proj_weight") || strings.HasSuffix(tn.Name, "c_fc.weight") || strings.HasSuffix(tn.Name, "out_proj.weight")
			if (tn.DType == weights.Q8_0) != wantQ {
				t.Errorf("%s stored as %s", tn.Name, tn.DType)
			}
		}
		src.Close()
		// an existing output is replaced only with --force
		code, _, errOut = runCLI(t, "convert", "--in", filepath.Join(set, "model.pt"), "--type", "f16", "--out", out)
		if code != exitUsage || !strings.Contains(errOut, "exists") || !strings.Contains(errOut, "--force") {
			t.Errorf("convert over an existing file: code %d: %s", code, errOut)
		}
		if code, _, errOut = runCLI(t, "convert", "--in", filepath.Join(set, "model.pt"), "--type", "f16", "--out", out, "--force"); code != exitOK {
			t.Errorf("convert --force: code %d: %s", code, errOut)
		}
		if st, err := os.Stat(out); err != nil || st.Mode().Perm() != 0o644 {
			t.Errorf("converted file mode: %v %v", st.Mode(), err)
		}
	}
	for _, args := range [][]string{
		{"convert", "--in", "x", "--out", "y.gguf"},                            // no --type
		{"convert", "--in", "x", "--type", "q3_k", "--out", "y.gguf"},          // not writable
		{"convert", "--in", "x", "--type", "f16"},                              // no --out
		{"convert", "--in", "x", "--type", "f16", "--out", "y", "--lora", "d"}, // --lora without --merge
		{"convert", "--in", "x", "--type", "f16", "--out", "y", "--merge"},
		{"convert", "--in", "x", "--type", "f16", "--out", "y", "--keep", "["},
	} {
		if code, _, errOut := runCLI(t, args...); code != exitUsage {
			t.Errorf("%v: code %d (%s), want usage error", args, code, errOut)
		}
	}
}

func TestConvertDryRunWithLoRA(t *testing.T) {
	for _, set := range fixtures.Sets(t, "blip2", "adapter_config.json") {
		code, out, errOut := runCLI(t, "convert", "--in", set, "--lora", set, "--merge", "--type", "q4_0", "--dry-run")
		if code != exitOK {
			t.Fatalf("code %d: %s", code, errOut)
		}
		if !strings.Contains(out, "+lora") || !strings.Contains(out, "with LoRA merged") {
			t.Errorf("dry run does not show merges:\n%s", out)
		}
	}
}
