package main

import (
	"path/filepath"
	"strings"
	"testing"

	"synth/internal/demo"
)

// TestDeviceFlag: caption and embed on ggml's CPU device give the cpu device's output
// (the same captions; embeddings within the f32 tolerance), and an unknown device is a
// one-line usage error that names the devices there are.
func TestDeviceFlag(t *testing.T) {
	dir, lora := filepath.Join(t.TempDir(), "blip2"), filepath.Join(t.TempDir(), "lora")
	if err := demo.WriteBLIP2(dir, lora, demo.DemoBLIP2, 5); err != nil {
		t.Fatal(err)
	}
	imgDir := t.TempDir()
	for i, name := range []string{"a.png", "b.png", "c.png"} {
		writeRandomPNG(t, filepath.Join(imgDir, name), 100+10*i, 90, uint64(i+1))
	}
	captions := map[string][]map[string]any{}
	for _, dev := range []string{"cpu", "ggml:CPU"} {
		out := filepath.Join(t.TempDir(), "c.jsonl")
		code, _, errOut := runCLI(t, "caption", "--model", dir, "--lora", lora, "--images", imgDir, "--out", out,
			"--max-new-tokens", "10", "--batch", "2", "--device", dev)
		if code != exitOK {
			t.Fatalf("%s: exit %d: %s", dev, code, errOut)
		}
		captions[dev] = readCaptionRecords(t, out)
	}
	if len(captions["cpu"]) != 3 || len(captions["ggml:CPU"]) != 3 {
		t.Fatalf("records: %d and %d", len(captions["cpu"]), len(captions["ggml:CPU"]))
	}
	for i, r := range captions["cpu"] {
		g := captions["ggml:CPU"][i]
		if r["caption"] != g["caption"] || r["image"] != g["image"] {
			t.Errorf("record %d: cpu %v %q, ggml:CPU %v %q", i, r["image"], r["caption"], g["image"], g["caption"])
		}
	}

	model := writeTestModel(t)
	var embs [][]jsonRecord
	for _, dev := range []string{"cpu", "ggml:CPU"} {
		out := filepath.Join(t.TempDir(), "e.jsonl")
		code, _, errOut := runCLI(t, "embed", "--model", model, "--image", filepath.Join(imgDir, "a.png"), "--image", filepath.Join(imgDir, "b.png"),
			"--out", out, "--device", dev)
		if code != exitOK {
			t.Fatalf("embed %s: exit %d: %s", dev, code, errOut)
		}
		embs = append(embs, readRecords(t, out))
	}
	for i := range embs[0] {
		checkClose(t, "ggml:CPU image embedding", embs[1][i].Embedding, embs[0][i].Embedding)
	}

	code, _, errOut := runCLI(t, "caption", "--model", dir, "--images", imgDir, "--out", filepath.Join(t.TempDir(), "x.jsonl"), "--device", "cuda:7")
	if code != exitUsage || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "cuda:7") || !strings.Contains(errOut, "CPU") {
		t.Errorf("unknown device: exit %d, %q", code, errOut)
	}
}
