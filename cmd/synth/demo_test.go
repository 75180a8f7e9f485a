package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"synth/dataset"
	"synth/pipeline"
)

// TestDemoKilledResumedAndRerun is issue 9's acceptance: the demo pipeline killed part way
// and run again completes with no duplicate or missing records, its report has the
// Table 1 rows of all three datasets, and a third run recomputes nothing.
func TestDemoKilledResumedAndRerun(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the demo pipeline takes about 20 s")
	}
	bin := filepath.Join(t.TempDir(), "synth")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := filepath.Join(t.TempDir(), "demo")

	// First run: kill it as soon as the first captions are on disk.
	first := exec.Command(bin, "--threads", "2", "demo", "--out", dir)
	var firstErr bytes.Buffer
	first.Stderr = &firstErr
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- first.Wait() }()
	captions := filepath.Join(dir, "out", pipeline.CaptionedFile)
	killed := false
	// The first run must be over (killed or finished) before the second starts: two runs
	// appending to one output would write each record twice.
	deadline := time.After(10 * time.Minute)
poll:
	for {
		select {
		case <-done:
			break poll
		case <-deadline:
			first.Process.Kill()
			<-done
			t.Fatalf("the first run wrote no caption in 10 minutes:\n%s", firstErr.String())
		case <-time.After(5 * time.Millisecond):
		}
		if data, err := os.ReadFile(captions); err == nil && bytes.Count(data, []byte("\n")) >= 1 {
			first.Process.Kill()
			<-done
			killed = true
			break
		}
	}
	if !killed {
		t.Logf("the first run finished before it could be killed:\n%s", firstErr.String())
	}

	// Second run: completes.
	second := exec.Command(bin, "--threads", "2", "demo", "--out", dir)
	out, err := second.CombinedOutput()
	if err != nil {
		t.Fatalf("second run: %v\n%s", err, out)
	}
	checkComplete(t, filepath.Join(dir, "data", "source_ko.jsonl"), filepath.Join(dir, "out", pipeline.TranslatedFile), false)
	checkComplete(t, filepath.Join(dir, "data", "unlabeled.jsonl"), captions, true)
	if data, _ := os.ReadFile(captions); !bytes.Contains(data, []byte(`"lora":"`+pipeline.AdapterDir+`"`)) {
		t.Errorf("the captions were not made with the adapter the finetune step trained")
	}
	checkComplete(t, filepath.Join(dir, "data", "foreign.jsonl"), filepath.Join(dir, "out", pipeline.RewrittenFile), false)
	report, err := os.ReadFile(filepath.Join(dir, "out", "eval", "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range []string{"| translated |", "| captioned |", "| rewritten |"} {
		if !strings.Contains(string(report), row) {
			t.Errorf("report.md has no Table 1 row %q", row)
		}
	}
	// The evaluation's reference set is the translation of the Korean descriptions.
	if !strings.Contains(string(report), "| translated |") || strings.Contains(string(report), "| source |") {
		t.Errorf("report.md does not evaluate the translated source:\n%s", report)
	}
	for _, f := range []string{"README.md", "parquet/translated.parquet", "parquet/captioned.parquet", "parquet/rewritten.parquet",
		"source/metadata.jsonl", "translated/metadata.jsonl", "captioned/metadata.jsonl", "index.html", "eval/similarity.png", "eval/report.json"} {
		if st, err := os.Stat(filepath.Join(dir, "out", f)); err != nil || st.Size() == 0 {
			t.Errorf("%s missing or empty", f)
		}
	}

	// Third run: every step is found complete; no output changes.
	before := map[string]time.Time{}
	for _, f := range []string{pipeline.TranslatedFile, pipeline.CaptionedFile, pipeline.RewrittenFile, "eval/report.json", "parquet/captioned.parquet", "README.md", "index.html",
		"adapter/adapter_model.safetensors", "adapter/train_log.jsonl"} {
		st, _ := os.Stat(filepath.Join(dir, "out", f))
		before[f] = st.ModTime()
	}
	third := exec.Command(bin, "demo", "--out", dir)
	out, err = third.CombinedOutput()
	if err != nil {
		t.Fatalf("third run: %v\n%s", err, out)
	}
	for _, step := range []string{"translate: complete", "finetune: complete", "caption: complete", "rewrite: complete", "eval: the report for these inputs and settings exists"} {
		if !strings.Contains(string(out), step) {
			t.Errorf("third run did not skip (%q missing):\n%s", step, out)
		}
	}
	for f, mt := range before {
		st, _ := os.Stat(filepath.Join(dir, "out", f))
		if !st.ModTime().Equal(mt) {
			t.Errorf("third run rewrote %s", f)
		}
	}

	// After an upgrade: another synth version stops at the first step, saying how to go
	// on, and --force recomputes.
	next := filepath.Join(t.TempDir(), "synth-next")
	build = exec.Command("go", "build", "-ldflags", "-X main.version=next", "-o", next, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err = exec.Command(next, "demo", "--out", dir).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "-> next") || !strings.Contains(string(out), "--force") {
		t.Fatalf("a run by another version: err %v, want a stop that names the version and --force:\n%s", err, out)
	}
	out, err = exec.Command(next, "demo", "--out", dir, "--force").CombinedOutput()
	if err != nil {
		t.Fatalf("demo --force by another version: %v\n%s", err, out)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "out", pipeline.TranslatedFile)); !bytes.Contains(data, []byte(`"next"`)) {
		t.Errorf("demo --force did not recompute the translations with the new version")
	}
	checkComplete(t, filepath.Join(dir, "data", "source_ko.jsonl"), filepath.Join(dir, "out", pipeline.TranslatedFile), false)
}

// checkComplete asserts that out holds exactly one record per item of the manifest.
func checkComplete(t *testing.T, manifest, out string, perImage bool) {
	t.Helper()
	m, err := dataset.ReadManifest(manifest)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, p := range m.Products {
		if !perImage {
			want[p.ID] = true
		}
		for _, img := range p.Images {
			if perImage {
				want[dataset.JoinKey(p.ID, img)] = true
			}
		}
	}
	seen := map[string]bool{}
	err = dataset.ReadRecords(out, func(line int, raw json.RawMessage) error {
		var r struct{ ID, Image string }
		if err := json.Unmarshal(raw, &r); err != nil {
			return err
		}
		k := r.ID
		if perImage {
			k = dataset.JoinKey(r.ID, r.Image)
		}
		if seen[k] {
			t.Errorf("%s:%d: duplicate record %q", out, line, k)
		}
		if !want[k] {
			t.Errorf("%s:%d: record %q is not an item of %s", out, line, k, manifest)
		}
		seen[k] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != len(want) {
		t.Errorf("%s has %d of %d items", out, len(seen), len(want))
	}
}
