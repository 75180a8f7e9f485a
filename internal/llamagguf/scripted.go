package llamagguf

import (
	"fmt"
	"os"

	"synth/llm/llamacpp"
)

// WriteScripted writes to path a Tiny-shaped Llama that answers every chat prompt with
// text and ends its turn (see Config.Script): a model whose output a test can predict.
// The prompt must end with the assistant header's "\n\n", as every Llama 3 chat prompt
// does. text must tokenize into distinct tokens, at most Tiny.Embd - 1 of them: short
// English does, Hangul does not (the byte-level vocabulary splits a syllable into its
// three UTF-8 bytes, and syllables share lead bytes).
func WriteScripted(path, text string) error {
	// llama.cpp's own tokenizer says which tokens text is, on a random model with the
	// same vocabulary.
	random := path + ".vocab.gguf"
	if err := Write(random, Tiny); err != nil {
		return err
	}
	defer os.Remove(random)
	m, err := llamacpp.LoadModel(random, llamacpp.ModelParams{})
	if err != nil {
		return err
	}
	defer m.Close()
	nl, err := m.Tokenize("\n\n", false, false)
	if err != nil {
		return err
	}
	toks, err := m.Tokenize(text, false, false)
	if err != nil {
		return err
	}
	cfg := Tiny
	cfg.Name, cfg.Script = "scripted", []int{int(nl[len(nl)-1])}
	for _, t := range toks {
		cfg.Script = append(cfg.Script, int(t))
	}
	if err := Write(path, cfg); err != nil {
		return fmt.Errorf("llamagguf: script %q: %w", text, err)
	}
	return nil
}
