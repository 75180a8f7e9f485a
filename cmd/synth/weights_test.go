package main

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"synth/internal/fixtures"
	"synth/internal/llamagguf"
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
	ggufs := fixtures.Files(t, "llm", "*.gguf")
	for _, llm := range ggufs {
		code, out, errOut := runCLI(t, "inspect", "--json", llm)
		if code != exitOK {
			t.Fatalf("code %d: %s", code, errOut)
		}
		var r weights.Inspection
		json.Unmarshal([]byte(out), &r)
		src, err := weights.Open(llm)
		if err != nil {
			t.Fatal(err)
		}
		toks, _ := src.Meta("tokenizer.ggml.tokens")
		src.Close()
		n := len(toks.([]string))
		for _, m := range r.Metadata {
			if m.Key == "tokenizer.ggml.tokens" && (m.Len != n || len(m.Value.([]any)) != min(n, weights.MaxArrayShown)) {
				t.Errorf("%s: tokens summarised as %d of %d, the file has %d", filepath.Base(llm), len(m.Value.([]any)), m.Len, n)
			}
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
			// the Linear weights not kept, where both dims fill whole Q8_0 blocks (a set's
			// widths need not be multiples of 32: those stay F32)
			linear := strings.HasSuffix(tn.Name, "in_proj_weight") || strings.HasSuffix(tn.Name, "c_fc.weight") || strings.HasSuffix(tn.Name, "out_proj.weight")
			wantQ := linear && tn.Shape[0]%32 == 0 && tn.Shape[1]%32 == 0
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

// Names from a checkpoint reach the terminal escaped: a tensor name, a GGUF key or a
// pickle global holding an escape sequence or a NUL byte used to be printed raw.
func TestInspectEscapesNames(t *testing.T) {
	dir := t.TempDir()
	const evil = "x\x1b]0;pwned\x07\x1b[2J\x00y"
	const shown = `x\x1b]0;pwned\x07\x1b[2J\x00y`
	st := filepath.Join(dir, "m.safetensors")
	if err := weights.WriteSafetensors(st, []weights.Tensor{{Name: "w." + evil, DType: weights.F32, Shape: []int{1}, Data: make([]byte, 4)}}, nil); err != nil {
		t.Fatal(err)
	}
	gw := weights.NewGGUFWriter()
	gw.Add("general."+evil, uint32(1))
	gw.AddF32("t."+evil, weights.F32, []int{1}, []float32{1})
	gg := filepath.Join(dir, "m.gguf")
	if err := gw.WriteFile(gg); err != nil {
		t.Fatal(err)
	}
	var zbuf bytes.Buffer
	zw := zip.NewWriter(&zbuf)
	w, _ := zw.CreateHeader(&zip.FileHeader{Name: "archive/data.pkl", Method: zip.Store})
	w.Write([]byte("\x80\x02cos" + evil + "\nsystem\n."))
	zw.Close()
	pt := filepath.Join(dir, "m.pt")
	os.WriteFile(pt, zbuf.Bytes(), 0o644)

	for _, p := range []string{st, gg, pt} {
		code, out, errOut := runCLI(t, "inspect", p)
		all := out + errOut
		if strings.ContainsAny(all, "\x1b\x00\x07") {
			t.Errorf("inspect %s printed raw control characters: %q", filepath.Base(p), all)
		}
		if !strings.Contains(all, shown) {
			t.Errorf("inspect %s (exit %d) does not show the name escaped: %q", filepath.Base(p), code, all)
		}
	}
}

// caption and convert --merge load adapters through one function, so they agree: an
// adapter with fan_in_fan_out true (GPT-2's Conv1D layout, never peft's output for
// nn.Linear) is refused by both (convert used to merge it transposed).
func TestAdapterChecksAgree(t *testing.T) {
	for _, set := range fixtures.Sets(t, "blip2", "adapter_config.json") {
		dir := t.TempDir()
		cfg, err := os.ReadFile(filepath.Join(set, "adapter_config.json"))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(cfg, &m); err != nil {
			t.Fatal(err)
		}
		m["fan_in_fan_out"] = true
		cfg, _ = json.Marshal(m)
		os.WriteFile(filepath.Join(dir, "adapter_config.json"), cfg, 0o644)
		w, err := os.ReadFile(filepath.Join(set, "adapter_model.safetensors"))
		if err != nil {
			t.Skipf("%s: no adapter_model.safetensors: %v", set, err)
		}
		os.WriteFile(filepath.Join(dir, "adapter_model.safetensors"), w, 0o644)
		manifest := filepath.Join(dir, "m.jsonl")
		os.WriteFile(manifest, []byte(`{"id":"p","images":["a.png"]}`+"\n"), 0o644)
		tinyTokenizer(t, dir, textVocab(t, set))

		for _, args := range [][]string{
			{"convert", "--in", set, "--lora", dir, "--merge", "--type", "f32", "--out", filepath.Join(dir, "m.gguf")},
			{"caption", "--model", set, "--lora", dir, "--tokenizer", dir, "--images", manifest, "--out", filepath.Join(dir, "c.jsonl")},
		} {
			code, _, errOut := runCLI(t, args...)
			if code != exitRuntime || !strings.Contains(errOut, "fan_in_fan_out is true") {
				t.Errorf("%s: exit %d, %q; want the fan_in_fan_out refusal", args[0], code, errOut)
			}
		}
	}
}

// convert's summary counts the tensors per stored type and says how many 2-D weights
// stayed F32 because their shape cannot be quantized (a hidden size not a multiple of 32).
func TestConvertSummaryCountsFallbacks(t *testing.T) {
	dir := t.TempDir()
	var ts []weights.Tensor
	for name, shape := range map[string][]int{"a.weight": {64, 64}, "b.weight": {48, 64}, "c.weight": {64, 40}, "n.bias": {64}} {
		n := 1
		for _, d := range shape {
			n *= d
		}
		ts = append(ts, weights.Tensor{Name: name, DType: weights.F32, Shape: shape, Data: make([]byte, 4*n)})
	}
	in := filepath.Join(dir, "m.safetensors")
	if err := weights.WriteSafetensors(in, ts, nil); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "convert", "--in", in, "--type", "q8_0", "--out", filepath.Join(dir, "m.gguf"))
	if code != exitOK {
		t.Fatalf("convert: %d %s", code, errOut)
	}
	if !strings.Contains(out, "F32 x3") || !strings.Contains(out, "Q8_0 x1") || !strings.Contains(out, "2 2-D weights kept F32 (dims not multiples of 32)") {
		t.Errorf("summary does not count the fallbacks:\n%s", out)
	}
}

// TestConvertKQuants: --type q4_k/q5_k/q6_k stores 256-multiple weights as the K-quant
// (the bytes of ggml's quantizer, which decode close to the source) and the others as its
// fallback, and the Long-CLIP fixture converted so still embeds through synth embed.
func TestConvertKQuants(t *testing.T) {
	dir := t.TempDir()
	const rows, cols = 64, 512
	v := make([]float32, rows*cols)
	for i := range v {
		v[i] = float32(i%97)/97 - 0.5
	}
	raw, err := weights.Quantize(weights.F32, v)
	if err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(dir, "m.safetensors")
	if err := weights.WriteSafetensors(in, []weights.Tensor{
		{Name: "big.weight", DType: weights.F32, Shape: []int{rows, cols}, Data: raw},
		{Name: "small.weight", DType: weights.F32, Shape: []int{rows, 96}, Data: raw[:4*rows*96]},
	}, nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		typ      string
		big, fb  weights.DType
		maxError float64 // of the 256-multiple weight, whose values lie in [-0.5, 0.5]
	}{{"q4_k", weights.Q4_K, weights.Q4_0, 0.04}, {"q5_k", weights.Q5_K, weights.Q8_0, 0.02}, {"q6_k", weights.Q6_K, weights.Q8_0, 0.01}} {
		out := filepath.Join(dir, tc.typ+".gguf")
		if code, _, errOut := runCLI(t, "convert", "--in", in, "--type", tc.typ, "--out", out, "--config", writeJSON(t, dir)); code != exitOK {
			t.Fatalf("%s: code %d: %s", tc.typ, code, errOut)
		}
		src, err := weights.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		big, _ := src.Tensor("big.weight")
		small, _ := src.Tensor("small.weight")
		if big.DType != tc.big || small.DType != tc.fb {
			t.Errorf("%s: stored %s and %s, want %s and %s", tc.typ, big.DType, small.DType, tc.big, tc.fb)
		}
		back, err := big.F32()
		if err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		for i := range back {
			worst = max(worst, float64(abs32(back[i]-v[i])))
		}
		if worst > tc.maxError {
			t.Errorf("%s: largest error %.4f, want <= %g", tc.typ, worst, tc.maxError)
		}
		src.Close()
	}
	for _, set := range fixtures.Sets(t, "longclip", "model.safetensors") {
		out := filepath.Join(dir, "lc-q4k.gguf")
		if code, _, errOut := runCLI(t, "convert", "--in", filepath.Join(set, "model.safetensors"), "--config", filepath.Join(set, "config.json"), "--type", "q4_k", "--out", out); code != exitOK {
			t.Fatalf("convert: code %d: %s", code, errOut)
		}
		emb := filepath.Join(dir, "emb.jsonl")
		vocab := filepath.Join(filepath.Dir(set), "bpe_simple_vocab_16e6.txt.gz")
		if code, _, errOut := runCLI(t, "embed", "--model", out, "--vocab", vocab, "--text", "a red dress", "--out", emb); code != exitOK {
			t.Errorf("embed with the q4_k GGUF: code %d: %s", code, errOut)
		} else if b, err := os.ReadFile(emb); err != nil || !strings.Contains(string(b), "a red dress") {
			t.Errorf("embed output %q: %v", b, err)
		}
	}
}

func abs32(x float32) float32 {
	if x < 0 {
		return -x
	}
	return x
}

func writeJSON(t *testing.T, dir string) string {
	p := filepath.Join(dir, "config.json")
	if err := os.WriteFile(p, []byte(`{"model_type": "test"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestQuantizeCLI: synth quantize turns the tiny Llama's F16 GGUF into a Q4_K_M file
// llama.cpp-typed weights, and refuses bad requests as usage errors.
func TestQuantizeCLI(t *testing.T) {
	dir := t.TempDir()
	cfg := llamagguf.Tiny
	cfg.DType = weights.F16
	in := filepath.Join(dir, "tiny-f16.gguf")
	if err := llamagguf.Write(in, cfg); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "tiny-q4km.gguf")
	code, stdout, errOut := runCLI(t, "quantize", "--in", in, "--type", "Q4_K_M", "--out", out)
	if code != exitOK || !strings.Contains(stdout, "wrote") {
		t.Fatalf("quantize: code %d: %s %s", code, stdout, errOut)
	}
	src, err := weights.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if q, err := src.Tensor("blk.0.ffn_down.weight"); err != nil || !q.DType.IsQuantized() {
		t.Errorf("ffn_down: %v %v", q.DType, err)
	}
	for _, args := range [][]string{
		{"quantize", "--in", in, "--type", "Q9_K", "--out", out},
		{"quantize", "--in", in, "--out", out},
		{"quantize", "--in", in, "--type", "Q8_0", "--out", out, "extra"},
	} {
		if code, _, errOut := runCLI(t, args...); code != exitUsage {
			t.Errorf("%v: code %d (%s), want usage error", args, code, errOut)
		}
	}
	if code, _, _ := runCLI(t, "quantize", "--in", filepath.Join(dir, "none.gguf"), "--type", "Q8_0", "--out", out); code != exitRuntime {
		t.Errorf("missing input: code %d", code)
	}
}
