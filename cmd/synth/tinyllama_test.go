package main

import (
	"testing"

	"synth/internal/fixtures"
)

// tinyLlamaGGUF returns a tiny Llama 3.1-style GGUF for command tests.
func tinyLlamaGGUF(t *testing.T) string {
	t.Helper()
	return fixtures.Files(t, "llm", "*.gguf")[0]
}
