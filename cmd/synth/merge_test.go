package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"synth/dataset"
	"synth/internal/faults"
)

func TestMergeShards(t *testing.T) {
	dir := t.TempDir()
	man := filepath.Join(dir, "m.jsonl")
	var lines []string
	for i := 0; i < 20; i++ {
		lines = append(lines, fmt.Sprintf(`{"id":"p%02d","images":["a.jpg","b.jpg"]}`, i))
	}
	os.WriteFile(man, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	const n = 3
	var shardFiles []string
	for s := 0; s < n; s++ {
		f := filepath.Join(dir, fmt.Sprintf("out.%d.jsonl", s))
		var recs []string
		sh := dataset.Shard{Index: s, Count: n}
		for i := 19; i >= 0; i-- { // shard order differs from manifest order
			id := fmt.Sprintf("p%02d", i)
			if !sh.Has(id) {
				continue
			}
			for _, img := range []string{"b.jpg", "a.jpg"} {
				recs = append(recs, fmt.Sprintf(`{"id":%q,"image":%q,"caption":"c"}`, id, img))
			}
		}
		os.WriteFile(f, []byte(strings.Join(recs, "\n")+"\n"), 0o644)
		shardFiles = append(shardFiles, f)
	}
	out := filepath.Join(dir, "merged.jsonl")
	args := append([]string{"merge", "--manifest", man, "--per", "image", "--shards", "3", "--out", out}, shardFiles...)
	if code, _, errOut := runCLI(t, args...); code != exitOK {
		t.Fatalf("merge: %d %s", code, errOut)
	}
	data, _ := os.ReadFile(out)
	got := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(got) != 40 || !strings.Contains(got[0], `"p00","image":"a.jpg"`) || !strings.Contains(got[39], `"p19","image":"b.jpg"`) {
		t.Fatalf("merged %d lines, first %s last %s", len(got), got[0], got[len(got)-1])
	}

	// A missing shard is reported with the shard that owns the items.
	os.Remove(out)
	args = append([]string{"merge", "--manifest", man, "--per", "image", "--shards", "3", "--out", out}, shardFiles[:2]...)
	code, _, errOut := runCLI(t, args...)
	if code != exitRuntime || !strings.Contains(errOut, "shard 2/3") {
		t.Fatalf("incomplete merge: code %d, %s", code, errOut)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("an incomplete merge wrote its output")
	}
	// A disk that fills up during the write leaves no partial file under --out and no
	// temporary file beside it.
	restore, child := faults.DiskFull(t, 512)
	if !child {
		return
	}
	args = append([]string{"merge", "--manifest", man, "--per", "image", "--out", out}, shardFiles...)
	code, _, errOut = runCLI(t, args...)
	restore()
	if code != exitRuntime || !strings.Contains(errOut, "file too large") {
		t.Errorf("merge on a full disk: code %d, %s", code, errOut)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a merge that failed to write left a file under --out")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".merged*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
	// The same shard twice is a duplicate.
	args = append([]string{"merge", "--manifest", man, "--per", "image", "--out", out}, append(shardFiles, shardFiles[0])...)
	if code, _, errOut := runCLI(t, args...); code != exitRuntime || !strings.Contains(errOut, "in both") {
		t.Fatalf("duplicate merge: code %d, %s", code, errOut)
	}
}
