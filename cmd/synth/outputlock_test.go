package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"synth/dataset"
)

// Every command that writes a resumable output refuses to start while another run holds
// that output, naming the holder's pid, before it loads a model: two runs on one output
// used to both exit 0 with every record written twice. The holder here is this test
// process (flock conflicts between two opens of one file in one process too).
func TestSecondWriterOfAnOutputRefused(t *testing.T) {
	dir := t.TempDir()
	manifest := filepath.Join(dir, "products.jsonl")
	os.WriteFile(manifest, []byte(`{"id":"p1","images":["a.jpg"],"text":"blue jeans","keywords":["blue jeans"]}`+"\n"), 0o644)
	examples := filepath.Join(dir, "style.jsonl")
	os.WriteFile(examples, []byte(`{"keywords":["red coat"],"text":"A red coat."}`+"\n"), 0o644)
	absent := filepath.Join(dir, "no-model")
	config := filepath.Join(dir, "synth.yaml")
	os.WriteFile(config, []byte("output: ds\ndata: {foreign: products.jsonl, source: products.jsonl}\nrewrite:\n  model: no-model.gguf\n  examples: style.jsonl\n"), 0o644)

	cases := []struct {
		name string
		out  string
		args []string
	}{
		{"caption", "captioned.jsonl", []string{"caption", "--model", absent, "--images", manifest}},
		{"rewrite", "rewritten.jsonl", []string{"rewrite", "--model", absent, "--examples", examples, "--in", manifest}},
		{"embed jsonl", "emb.jsonl", []string{"embed", "--model", absent, "--texts", manifest}},
		{"embed npy", "emb.npy", []string{"embed", "--model", absent, "--images", manifest}},
		{"pipeline", "ds", []string{"pipeline", "--config", config}},
	}
	for _, tc := range cases {
		out := filepath.Join(dir, tc.out)
		if tc.name == "pipeline" {
			os.MkdirAll(out, 0o755)
		}
		lock, err := dataset.LockOutput(out)
		if err != nil {
			t.Fatal(err)
		}
		args := tc.args
		if tc.name != "pipeline" {
			args = append(args, "--out", out)
		}
		code, _, stderr := runCLI(t, args...)
		lock.Release()
		if code != exitRuntime || !strings.Contains(stderr, fmt.Sprintf("pid %d", os.Getpid())) || !strings.Contains(stderr, "another synth run") {
			t.Errorf("%s while its output is held: exit %d, %s; want exit 1 naming the holder's pid", tc.name, code, stderr)
		}
	}
}
