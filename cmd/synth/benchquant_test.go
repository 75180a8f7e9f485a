package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"synth/eval/quant"
	"synth/internal/demo"
	"synth/weights"
)

// synth bench quant on the tiny demo models at f16, q4_0 and q5_k (which a model takes
// where its rows are whole 256-value super-blocks, else says why): every model has its
// reference and every level, and f16 is nearer the reference than q4_0 on every measure
// where rounding to 11 bits instead of 4 must show.
func TestBenchQuantDemoModels(t *testing.T) {
	dir := t.TempDir()
	in, err := demo.WriteQuantBench(dir, 8, []weights.DType{weights.F16, weights.Q4_0}, 7)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "report")
	// One thread: llama.cpp's threads wait for each other by spinning, which on a
	// machine busy with other tests costs more than the tiny model's work.
	code, stdout, stderr := runCLI(t, "--threads", "1", "bench", "quant", "--caption-model", in.BLIP2, "--eval-model", in.LongCLIP,
		"--rewrite-model", in.Llama, "--rewrite-levels", "f16="+in.LlamaLevels["f16"]+",q4_0="+in.LlamaLevels["q4_0"],
		"--levels", "f16,q5_k,q4_0", "--sample", in.Sample, "--n", "8", "--caption-tokens", "12", "--rewrite-tokens", "16", "--out", out)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "# Quantization levels against their reference") {
		t.Errorf("stdout is not the report:\n%s", stdout)
	}
	for _, f := range []string{quant.ReportMarkdown, quant.ReportJSON, quant.ParetoPNG(quant.RoleCaption), quant.ParetoPNG(quant.RoleRewrite), quant.ParetoPNG(quant.RoleEval)} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(out, ".*")); len(left) > 0 {
		t.Errorf("level files or logits left behind: %v", left)
	}
	js, err := os.ReadFile(filepath.Join(out, quant.ReportJSON))
	if err != nil {
		t.Fatal(err)
	}
	var rep quant.Report
	if err := json.Unmarshal(js, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Models) != 3 || rep.Products != 8 || strings.Join(rep.Levels, ",") != "f16,q5_k,q4_0" {
		t.Fatalf("report: %d models, %d products, levels %v", len(rep.Models), rep.Products, rep.Levels)
	}
	for _, m := range rep.Models {
		t.Run(m.Role, func(t *testing.T) { checkQuantModel(t, &m) })
	}
}

func TestBenchQuantUsageErrors(t *testing.T) {
	sample := filepath.Join(t.TempDir(), "s.jsonl")
	if err := os.WriteFile(sample, []byte(`{"id": "a"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--sample", sample, "--out", "x"}, // no model
		{"--eval-model", "m.pt", "--levels", "q8", "--sample", sample, "--out", "x"},
		{"--eval-model", "m.pt", "--levels", "f16,f16", "--sample", sample, "--out", "x"},
		{"--eval-model", "m.pt", "--sample", sample + ".missing", "--out", "x"},
		{"--eval-model", "m.pt", "--rewrite-levels", "q4_0=a.gguf", "--sample", sample, "--out", "x"},
		{"--rewrite-model", "r.gguf", "--rewrite-levels", "q4_0", "--sample", sample, "--out", "x"},
		{"--eval-model", "m.pt", "--sample", sample}, // no --out
		{"--eval-model", "m.pt", "--n", "1", "--sample", sample, "--out", "x"},
		{"--eval-model", "m.pt", "--device", "nowhere", "--sample", sample, "--out", "x"},
	} {
		code, _, stderr := runCLI(t, append([]string{"bench", "quant"}, args...)...)
		if code != exitUsage || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("%v: exit %d, want %d with one line: %q", args, code, exitUsage, stderr)
		}
	}
}

func checkQuantModel(t *testing.T, m *quant.Model) {
	if m.Reference.Cost == nil || m.Reference.Cost.FileBytes <= 0 || m.Reference.Cost.Speed <= 0 {
		t.Errorf("reference costs: %+v", m.Reference.Cost)
	}
	levels := map[string]*quant.Level{}
	for i := range m.Levels {
		levels[m.Levels[i].Level] = &m.Levels[i]
	}
	if len(levels) != 3 {
		t.Fatalf("levels %v, want f16, q5_k, q4_0", m.Levels)
	}
	if l := levels["q5_k"]; (l.Skipped == "") == (l.Cost == nil) || (l.Cost != nil && l.Stored["q5_k"] == 0) {
		t.Errorf("q5_k: neither measured with Q5_K tensors nor skipped with a reason: %+v", l)
	}
	f16, q4 := levels["f16"], levels["q4_0"]
	for _, l := range []*quant.Level{f16, q4} {
		if l.Skipped != "" || l.Cost == nil || l.Cost.FileBytes <= 0 || l.Cost.LoadSeconds <= 0 || l.Cost.Speed <= 0 {
			t.Fatalf("%s not measured: %+v", l.Level, l)
		}
	}
	if !(q4.Cost.FileBytes < f16.Cost.FileBytes && f16.Cost.FileBytes < m.Reference.Cost.FileBytes) {
		t.Errorf("file sizes: reference %d, f16 %d, q4_0 %d", m.Reference.Cost.FileBytes, f16.Cost.FileBytes, q4.Cost.FileBytes)
	}
	closer := func(what string, f, q float64, higherBetter bool) {
		t.Helper()
		if math.IsNaN(f) || math.IsNaN(q) || (higherBetter && f < q) || (!higherBetter && f > q) {
			t.Errorf("%s: f16 %g, q4_0 %g: f16 is not nearer the reference", what, f, q)
		}
	}
	switch m.Role {
	case quant.RoleEval:
		f, q := f16.Embedding, q4.Embedding
		if f == nil || q == nil || f.Records == 0 || f.Images.Count == 0 || f.Texts.Count == 0 || len(f.Table1) == 0 {
			t.Fatalf("embedding agreement missing: %+v %+v", f, q)
		}
		closer("image cosine mean", f.Images.Mean, q.Images.Mean, true)
		closer("image cosine min", f.Images.Min, q.Images.Min, true)
		closer("text cosine mean", f.Texts.Mean, q.Texts.Mean, true)
		closer("text cosine min", f.Texts.Min, q.Texts.Min, true)
		closer("Spearman", float64(f.Spearman), float64(q.Spearman), true)
		closer("Kendall", float64(f.KendallTauB), float64(q.KendallTauB), true)
		for i, c := range f.Table1 {
			closer("|change| of "+c.Name, math.Abs(c.Delta), math.Abs(q.Table1[i].Delta), false)
		}
	default:
		f, q := f16.NextToken, q4.NextToken
		if f == nil || q == nil || f.Positions == 0 || f.Positions != q.Positions {
			t.Fatalf("next-token agreement: %+v %+v", f, q)
		}
		closer("KL mean", float64(f.KLMean), float64(q.KLMean), false)
		closer("KL max", float64(f.KLMax), float64(q.KLMax), false)
		closer("top-1", f.Top1, q.Top1, true)
		closer("exact match", f16.Text.ExactMatch, q4.Text.ExactMatch, true)
		closer("chrF", f16.Text.ChrF, q4.Text.ChrF, true)
		if m.Role == quant.RoleRewrite {
			closer("|coverage change|", math.Abs(f16.Coverage.Delta), math.Abs(q4.Coverage.Delta), false)
		}
	}
}
