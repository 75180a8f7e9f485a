package llamacpp_test

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"synth/internal/llamagguf"
	"synth/llm/llamacpp"
	"synth/weights"
)

// editedGGUF writes a tiny Llama GGUF whose metadata edit has changed (the tensors stay),
// to build the files llama.cpp aborts on.
func editedGGUF(t *testing.T, edit func(kv []weights.KV) []weights.KV) string {
	t.Helper()
	dir := t.TempDir()
	base := filepath.Join(dir, "base.gguf")
	if err := llamagguf.Write(base, llamagguf.Tiny); err != nil {
		t.Fatal(err)
	}
	src, err := weights.Open(base)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	w := weights.NewGGUFWriter()
	for _, kv := range edit(src.Metadata()) {
		if err := w.Add(kv.Key, kv.Value); err != nil {
			t.Fatal(err)
		}
	}
	for _, tn := range src.Tensors() {
		if err := w.AddTensor(tn); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "edited.gguf")
	if err := w.WriteFile(out); err != nil {
		t.Fatal(err)
	}
	return out
}

// set replaces (or appends) key's value; a nil value removes the key.
func set(key string, value any) func([]weights.KV) []weights.KV {
	return func(kv []weights.KV) []weights.KV {
		var out []weights.KV
		found := false
		for _, e := range kv {
			if e.Key == key {
				found = true
				if value == nil {
					continue
				}
				e.Value = value
			}
			out = append(out, e)
		}
		if !found && value != nil {
			out = append(out, weights.KV{Key: key, Value: value})
		}
		return out
	}
}

func tokens(t *testing.T, edit func([]string) []string) func([]weights.KV) []weights.KV {
	return func(kv []weights.KV) []weights.KV {
		for i, e := range kv {
			if e.Key == "tokenizer.ggml.tokens" {
				kv[i].Value = edit(append([]string(nil), e.Value.([]string)...))
			}
		}
		return kv
	}
}

// Each of these files made llama.cpp abort the process (SIGSEGV or GGML_ASSERT) during
// LoadModel or at the first decode; each is now an ErrLoad naming the key.
func TestLoadModelRefusesWhatLlamaCppAbortsOn(t *testing.T) {
	cases := []struct {
		name, want string
		edit       func([]weights.KV) []weights.KV
	}{
		{"empty token list", "tokenizer.ggml.tokens is empty", set("tokenizer.ggml.tokens", []string{})},
		{"tokens not strings", "tokenizer.ggml.tokens is a []int32", set("tokenizer.ggml.tokens", []int32{1, 2})},
		{"duplicate token", "are both", tokens(t, func(s []string) []string { s[5] = s[4]; return s })},
		{"short token types", "tokenizer.ggml.token_type", set("tokenizer.ggml.token_type", []int32{1, 1})},
		{"float token types", "tokenizer.ggml.token_type", set("tokenizer.ggml.token_type", []float32{1})},
		{"merges not strings", "tokenizer.ggml.merges", set("tokenizer.ggml.merges", []int32{1})},
		{"bos out of range", "bos_token_id", set("tokenizer.ggml.bos_token_id", uint32(1<<20))},
		{"gpt2 default out of range", "default", func(kv []weights.KV) []weights.KV {
			kv = set("tokenizer.ggml.bos_token_id", nil)(kv)
			return set("tokenizer.ggml.tokens", []string{"a", "b", "c"})(set("tokenizer.ggml.token_type", nil)(kv))
		}},
		{"block_count 0", "llama.block_count = 0", set("llama.block_count", uint32(0))},
		{"negative rms eps", "layer_norm_rms_epsilon", set("llama.attention.layer_norm_rms_epsilon", float32(-1e-5))},
		{"NaN rms eps", "layer_norm_rms_epsilon", set("llama.attention.layer_norm_rms_epsilon", float32(math.NaN()))},
		{"float head counts", "attention.head_count", set("llama.attention.head_count", []float32{1})},
		{"unknown rope scaling", "rope.scaling.type", set("llama.rope.scaling.type", "cubic")},
		{"experts used without experts", "expert_used_count", set("llama.expert_used_count", uint32(2))},
	}
	for _, c := range cases {
		path := editedGGUF(t, c.edit)
		_, err := llamacpp.LoadModel(path, llamacpp.ModelParams{})
		if !errors.Is(err, llamacpp.ErrLoad) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrLoad mentioning %q", c.name, err, c.want)
		}
	}
	// general.alignment as a u64: ggml's gguf_get_val_u32 asserts. The writer refuses it,
	// so a same-length key is renamed in the bytes.
	path := editedGGUF(t, set("general.alignmenX", uint64(32)))
	data, _ := os.ReadFile(path)
	os.WriteFile(path, bytes.Replace(data, []byte("general.alignmenX"), []byte("general.alignment"), 1), 0o644)
	if _, err := llamacpp.LoadModel(path, llamacpp.ModelParams{}); !errors.Is(err, llamacpp.ErrLoad) || !strings.Contains(err.Error(), "general.alignment") {
		t.Errorf("u64 alignment: %v", err)
	}
	// The unedited file loads, and a vocabulary-only load skips the hyperparameters.
	m, err := llamacpp.LoadModel(editedGGUF(t, func(kv []weights.KV) []weights.KV { return kv }), llamacpp.ModelParams{})
	if err != nil {
		t.Fatalf("the unedited tiny model: %v", err)
	}
	m.Close()
	v, err := llamacpp.LoadModel(editedGGUF(t, set("llama.block_count", uint32(0))), llamacpp.ModelParams{VocabOnly: true})
	if err != nil {
		t.Errorf("vocabulary-only load of a model with block_count 0: %v", err)
	} else {
		v.Close()
	}
}
