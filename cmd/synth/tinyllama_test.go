package main

import (
	"path/filepath"
	"testing"

	"synth/internal/llamagguf"
)

// tinyLlamaGGUF writes a tiny random-weight Llama 3.1-style GGUF (llama architecture
// metadata, byte-level BPE vocabulary, Llama 3 chat template) for command tests.
func tinyLlamaGGUF(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tiny-llama.gguf")
	if err := llamagguf.Write(path, llamagguf.Tiny); err != nil {
		t.Fatal(err)
	}
	return path
}
