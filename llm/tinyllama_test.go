package llm

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"synth/internal/llamagguf"
	"synth/llm/llamacpp"
)

// The tiny GGUF the command tests build must be a Llama 3.1 to llama.cpp: its
// tokenizer, special tokens, chat template and generation.
func TestGeneratedTinyLlamaLoads(t *testing.T) {
	m := tinyModel(t)
	cfg := llamagguf.Tiny
	first := llamacpp.Token(cfg.Vocab - cfg.Specials)
	if m.NVocab() != cfg.Vocab || m.NLayer() != cfg.Layers || m.NEmbd() != cfg.Embd || m.NCtxTrain() != cfg.CtxTrain {
		t.Errorf("model: vocab %d, layers %d, embd %d, ctx %d", m.NVocab(), m.NLayer(), m.NEmbd(), m.NCtxTrain())
	}
	if m.BOS() != first || m.EOT() != first+9 || !slices.Equal(m.EOGTokens(), []llamacpp.Token{first + 1, first + 8, first + 9}) {
		t.Errorf("special tokens: bos %d, eot %d, eog %v", m.BOS(), m.EOT(), m.EOGTokens())
	}
	text := "A red linen midi dress, 100% cotton; ünïcödé 🙂\n\tKeywords: navy wool"
	ids, err := m.Tokenize(text, false, false)
	if err != nil {
		t.Fatal(err)
	}
	var joined []byte
	for _, id := range ids {
		p, _ := m.TokenPiece(id, false)
		joined = append(joined, p...)
	}
	if string(joined) != text {
		t.Errorf("pieces join to %q", joined)
	}
	// Words of the corpus the merges were learned from are one token each.
	words := " a red linen midi dress with puff sleeves and a leather belt"
	if ids, _ := m.Tokenize(words, false, false); len(ids) != len(strings.Fields(words)) {
		t.Errorf("%q is %d tokens, want one per word", words, len(ids))
	}

	p, err := NewPrompter(m, PromptConfig{DateLines: true, Examples: []Example{{Keywords: []string{"wool", "coat"}, Text: "A wool coat."}}})
	if err != nil {
		t.Fatal(err)
	}
	full, err := m.ApplyChatTemplate("", p.Messages(Item{Keywords: []string{"red", "dress"}}), true)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(full, "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n") ||
		!strings.HasSuffix(full, "Keywords: red, dress<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n") {
		t.Errorf("formatted chat:\n%s", full)
	}
	suffix, err := p.Suffix(Item{Keywords: []string{"red", "dress"}})
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewGenerator(m, p.Prefix(), Options{Parallel: 2, MaxTokens: 8, CtxPerSeq: 512, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	res := runAll(t, g, []Request{{ID: "a", Suffix: suffix}, {ID: "b", Suffix: suffix, Seed: 3}})
	if r := res["a"]; r.Err != nil || len(r.Tokens) == 0 {
		t.Errorf("generation: %+v", r)
	}
}

func TestScriptedTinyLlamaWritesItsScript(t *testing.T) {
	const text = "slim fit 32 cm"
	path := filepath.Join(t.TempDir(), "scripted.gguf")
	if err := llamagguf.WriteScripted(path, text); err != nil {
		t.Fatal(err)
	}
	m, err := llamacpp.LoadModel(path, llamacpp.ModelParams{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	p, err := NewChatPrompter(m, "Translate.", []Shot{{User: "a", Assistant: "b"}}, true)
	if err != nil {
		t.Fatal(err)
	}
	var reqs []Request
	for i, user := range []string{"허리 32cm", "something else entirely", "3"} {
		suffix, err := p.SuffixFor(user)
		if err != nil {
			t.Fatal(err)
		}
		reqs = append(reqs, Request{ID: fmt.Sprint(i), Suffix: suffix, Seed: uint32(i)})
	}
	for _, temp := range []float32{0, 1} {
		g, err := NewGenerator(m, p.Prefix(), Options{Parallel: 2, MaxTokens: 32, CtxPerSeq: 256, Threads: 1,
			Sampling: llamacpp.SamplerParams{Temperature: temp, TopK: 40, TopP: 0.9}})
		if err != nil {
			t.Fatal(err)
		}
		for id, r := range runAll(t, g, reqs) {
			if r.Err != nil || r.Text != text || r.Finish != FinishStop {
				t.Errorf("temperature %g, prompt %s: %q (%s, %v), want %q then the end of the turn", temp, id, r.Text, r.Finish, r.Err, text)
			}
		}
		g.Close()
	}
}

// tinyModel writes and loads llamagguf.Tiny, closed when the test ends.
func tinyModel(t *testing.T) *llamacpp.Model {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tiny.gguf")
	if err := llamagguf.Write(path, llamagguf.Tiny); err != nil {
		t.Fatal(err)
	}
	m, err := llamacpp.LoadModel(path, llamacpp.ModelParams{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}
