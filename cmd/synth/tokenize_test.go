package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"synth/internal/fixtures"
	"synth/vision/cliptok"
)

func TestTokenizeCommand(t *testing.T) {
	vocab := filepath.Join(fixtures.Dir(t, "longclip"), clipVocabName)
	if _, err := os.Stat(vocab); err != nil {
		t.Skipf("no vocabulary: %v", err)
	}
	code, out, errOut := runCLI(t, "tokenize", "--vocab", vocab, "--text", "a photo of a cat", "--text", "Tom &amp; Jerry")
	if code != exitOK {
		t.Fatalf("code %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), out)
	}
	var first tokenizeLine
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	// tokenizer.json's "a photo of a cat"
	if want := []int32{49406, 320, 1125, 539, 320, 2368, 49407}; !slices.Equal(first.IDs, want) || first.EOTIndex != 6 {
		t.Errorf("ids %v eot %d, want %v 6", first.IDs, first.EOTIndex, want)
	}

	// --texts: one line each, empty lines included; --pad; --model finds the vocabulary.
	texts := filepath.Join(t.TempDir(), "texts.txt")
	if err := os.WriteFile(texts, []byte("a photo of a cat\r\n\n"+strings.Repeat("a ", 300)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runCLI(t, "tokenize", "--model", filepath.Dir(vocab), "--texts", texts, "--context", "8", "--pad")
	if code != exitOK {
		t.Fatalf("code %d: %s", code, errOut)
	}
	lines = strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), out)
	}
	var got []tokenizeLine
	for _, l := range lines {
		var tl tokenizeLine
		if err := json.Unmarshal([]byte(l), &tl); err != nil {
			t.Fatal(err)
		}
		got = append(got, tl)
	}
	if !slices.Equal(got[0].IDs, []int32{49406, 320, 1125, 539, 320, 2368, 49407, 0}) || got[0].Length != 7 {
		t.Errorf("line 1: %+v", got[0])
	}
	if !slices.Equal(got[1].IDs[:3], []int32{cliptok.SOT, cliptok.EOT, 0}) {
		t.Errorf("empty line: %+v", got[1])
	}
	if !got[2].Truncated || got[2].IDs[7] != cliptok.EOT || got[2].EOTIndex != 7 {
		t.Errorf("long line: %+v", got[2])
	}

	// .jsonl: a JSON string a line, so a text may hold a newline (whitespace to the
	// tokenizer, like the space it replaces)
	js := filepath.Join(t.TempDir(), "texts.jsonl")
	os.WriteFile(js, []byte(`"a photo\nof a cat"`+"\n"), 0o644)
	code, out, errOut = runCLI(t, "tokenize", "--model", filepath.Dir(vocab), "--texts", js, "--context", "8", "--pad")
	var nl tokenizeLine
	if code != exitOK || json.Unmarshal([]byte(out), &nl) != nil || !slices.Equal(nl.IDs, got[0].IDs) {
		t.Errorf("text with a newline from .jsonl: code %d, %s %s; want the ids of line 1", code, out, errOut)
	}
}

func TestTokenizeUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"tokenize", "--text", "x"},
		{"tokenize", "--vocab", "v.gz"},
		{"tokenize", "--vocab", "v.gz", "--text", "x", "--texts", "f"},
		{"tokenize", "--vocab", "v.gz", "--model", "m", "--text", "x"},
		{"tokenize", "--vocab", "v.gz", "--text", "x", "--context", "1"},
		{"tokenize", "--vocab", "v.gz", "stray"},
	} {
		if code, _, errOut := runCLI(t, args...); code != exitUsage {
			t.Errorf("%v: code %d (%s), want %d", args, code, errOut, exitUsage)
		}
	}
	code, _, errOut := runCLI(t, "tokenize", "--vocab", filepath.Join(t.TempDir(), "absent.gz"), "--text", "x")
	if code != exitRuntime || !strings.Contains(errOut, "absent.gz") {
		t.Errorf("missing vocabulary: code %d, %q", code, errOut)
	}
}
