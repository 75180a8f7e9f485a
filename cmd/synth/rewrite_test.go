package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"synth/dataset"
	"synth/internal/llamagguf"
	"synth/llm"
)

// rewriteFixture is a run's inputs: a tiny Llama GGUF, a style file and a manifest.
type rewriteFixture struct {
	model, examples, manifest string
	ids                       []string
}

// newRewriteFixture writes n products with keywords (some with category and title), one
// without keywords and one whose keywords make a prompt far longer than --ctx 600.
func newRewriteFixture(t *testing.T, n int) rewriteFixture {
	t.Helper()
	dir := t.TempDir()
	fx := rewriteFixture{model: tinyLlamaGGUF(t), examples: filepath.Join(dir, "style.jsonl"), manifest: filepath.Join(dir, "manifest.jsonl")}
	style := `{"keywords": ["blue jeans", "cotton", "slim fit"], "text": "These slim-fit blue jeans are cut from soft cotton denim with a clean, modern line."}
{"keywords": "wool, coat, double breasted", "text": "A double-breasted coat in warm wool, tailored for cold city days."}
`
	if err := os.WriteFile(fx.examples, []byte(style), 0o644); err != nil {
		t.Fatal(err)
	}
	words := []string{"red", "linen", "midi dress", "black", "leather", "ankle boots", "white", "cotton", "t-shirt", "navy", "wool", "coat", "puff sleeves", "v-neck"}
	var lines []string
	for i := 0; i < n; i++ {
		p := dataset.Product{ID: fmt.Sprintf("p%02d", i), Keywords: []string{words[i%len(words)], words[(i+3)%len(words)], words[(i+7)%len(words)]}}
		if i%3 == 0 {
			p.Category, p.Title = "dress", fmt.Sprintf("Model %d", i)
		}
		lines = append(lines, mustJSON(t, p))
		fx.ids = append(fx.ids, p.ID)
	}
	lines = append(lines, mustJSON(t, dataset.Product{ID: "no-keywords", Text: "only text"}))
	long := dataset.Product{ID: "too-long"}
	for i := 0; i < 300; i++ {
		long.Keywords = append(long.Keywords, words[i%len(words)])
	}
	lines = append(lines, mustJSON(t, long))
	fx.ids = append(fx.ids, "no-keywords", "too-long")
	if err := os.WriteFile(fx.manifest, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return fx
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (fx rewriteFixture) args(out string, extra ...string) []string {
	return append([]string{"--threads", "1", "rewrite", "--quiet", "--model", fx.model, "--examples", fx.examples,
		"--in", fx.manifest, "--out", out, "--ctx", "600", "--max-tokens", "24"}, extra...)
}

// readRewrite reads an output file, failing on a duplicate id.
func readRewrite(t *testing.T, path string) map[string]llm.RewriteRecord {
	return readByID(t, path, func(r llm.RewriteRecord) string { return r.ID })
}

// readByID reads the records of an output file by their id, failing on a duplicate.
func readByID[R any](t *testing.T, path string, id func(R) string) map[string]R {
	t.Helper()
	recs := map[string]R{}
	err := dataset.ReadRecords(path, func(line int, raw json.RawMessage) error {
		var r R
		if err := json.Unmarshal(raw, &r); err != nil {
			return err
		}
		if _, dup := recs[id(r)]; dup {
			return fmt.Errorf("%s:%d: duplicate record for %s", path, line, id(r))
		}
		recs[id(r)] = r
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func TestRewriteWritesEveryProduct(t *testing.T) {
	fx := newRewriteFixture(t, 7)
	for _, parallel := range []string{"1", "3"} {
		t.Run("parallel="+parallel, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.jsonl")
			code, _, errOut := runCLI(t, fx.args(out, "--parallel", parallel)...)
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			recs := readRewrite(t, out)
			if got := slices.Sorted(maps.Keys(recs)); !slices.Equal(got, slices.Sorted(slices.Values(fx.ids))) {
				t.Fatalf("records for %v, want %v", got, fx.ids)
			}
			for id, r := range recs {
				switch id {
				case "no-keywords":
					if !strings.Contains(r.Error, "no keywords") || r.Text != nil {
						t.Errorf("%s: error %q", id, r.Error)
					}
				case "too-long":
					if !strings.Contains(r.Error, "prompt exceeds the context") || !strings.Contains(r.Error, "600") || r.PromptTokens <= 600 || r.Text != nil {
						t.Errorf("%s: error %q, prompt tokens %d", id, r.Error, r.PromptTokens)
					}
				default:
					if r.Error != "" || r.Text == nil || *r.Text == "" || r.GenTokens < 1 || r.GenTokens > 24 || r.PromptTokens < 100 ||
						r.FinishReason == "" || r.Coverage == nil || r.Model != filepath.Base(fx.model) ||
						r.Params.MaxTokens != 24 || r.Params.Examples != 2 || r.Params.Ctx != 600 || len(r.Keywords) != 3 {
						t.Errorf("%s: incomplete record %+v", id, r)
					}
				}
			}
			if !strings.Contains(errOut, "products=9 failed=2") || !strings.Contains(errOut, "prefix_tokens_avoided=") {
				t.Errorf("summary:\n%s", errOut)
			}
		})
	}
}

func TestRewriteSameSeedSameText(t *testing.T) {
	fx := newRewriteFixture(t, 5)
	texts := func(parallel, seed string) map[string]string {
		out := filepath.Join(t.TempDir(), "out.jsonl")
		if code, _, errOut := runCLI(t, fx.args(out, "--parallel", parallel, "--seed", seed, "--temperature", "1")...); code != exitOK {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		m := map[string]string{}
		for id, r := range readRewrite(t, out) {
			if r.Text != nil {
				m[id] = *r.Text
			}
		}
		return m
	}
	for _, parallel := range []string{"1", "3"} {
		a, b, other := texts(parallel, "11"), texts(parallel, "11"), texts(parallel, "12")
		if !maps.Equal(a, b) {
			t.Errorf("parallel %s: seed 11 twice gave different texts:\n%v\n%v", parallel, a, b)
		}
		if a["p00"] == other["p00"] && a["p01"] == other["p01"] {
			t.Errorf("parallel %s: seeds 11 and 12 gave the same texts %v", parallel, a)
		}
	}
}

// TestRewriteHelperProcess is not a test: resumeAfterKill runs the test binary as
// `synth` through it, so that it can SIGKILL a real process.
func TestRewriteHelperProcess(t *testing.T) {
	args := os.Getenv("SYNTH_REWRITE_HELPER_ARGS")
	if args == "" {
		t.Skip("helper process for the kill-and-resume tests")
	}
	os.Exit(run(append([]string{"synth"}, strings.Split(args, "\x1f")...), os.Stdout, os.Stderr))
}

// resumeAfterKill runs synth args in a child process, SIGKILLs it once out holds 5
// records, reruns args in-process and checks that every id of ids is in out exactly
// once (read fails on a duplicate), that what was written before the kill stayed as it
// was, and that a third run finds nothing to do. read returns each record's text by id
// ("" for error records).
func resumeAfterKill(t *testing.T, args []string, out string, ids []string, read func(*testing.T, string) map[string]string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestRewriteHelperProcess$")
	cmd.Env = append(os.Environ(), "SYNTH_REWRITE_HELPER_ARGS="+strings.Join(args, "\x1f"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	killed := false
	deadline := time.After(2 * time.Minute)
poll:
	for {
		select {
		case <-exited:
			break poll
		case <-deadline:
			cmd.Process.Kill()
			t.Fatal("helper run did not finish")
		case <-time.After(2 * time.Millisecond):
			if data, _ := os.ReadFile(out); strings.Count(string(data), "\n") >= 5 {
				cmd.Process.Signal(syscall.SIGKILL)
				<-exited
				killed = true
				break poll
			}
		}
	}
	before := read(t, out)
	if !killed || len(before) == len(ids) {
		// The machine finished the run before the kill landed: make the state a kill
		// leaves (complete records, then a torn one) by hand.
		t.Logf("run finished before the kill; truncating its output instead")
		data, _ := os.ReadFile(out)
		lines := strings.SplitAfter(string(data), "\n")
		if err := os.WriteFile(out, []byte(strings.Join(lines[:5], "")+lines[5][:len(lines[5])/2]), 0o644); err != nil {
			t.Fatal(err)
		}
		before = read(t, out)
	}
	t.Logf("%d of %d records before resuming", len(before), len(ids))

	code, _, errOut := runCLI(t, args...)
	if code != exitOK {
		t.Fatalf("resume: exit %d: %s", code, errOut)
	}
	after := read(t, out)
	if got := slices.Sorted(maps.Keys(after)); !slices.Equal(got, slices.Sorted(slices.Values(ids))) {
		t.Fatalf("after resume: records for %v, want %v", got, ids)
	}
	for id, text := range before {
		if after[id] != text {
			t.Errorf("%s rewritten on resume", id)
		}
	}
	// A third run finds nothing to do.
	code, _, errOut = runCLI(t, args...)
	if code != exitOK || !strings.Contains(errOut, "nothing to do") {
		t.Errorf("third run: exit %d: %s", code, errOut)
	}
	if len(read(t, out)) != len(ids) {
		t.Error("third run changed the output")
	}
}

func TestRewriteResumesAfterKill(t *testing.T) {
	fx := newRewriteFixture(t, 40)
	out := filepath.Join(t.TempDir(), "out.jsonl")
	resumeAfterKill(t, fx.args(out, "--parallel", "3", "--max-tokens", "120"), out, fx.ids, func(t *testing.T, path string) map[string]string {
		texts := map[string]string{}
		for id, r := range readRewrite(t, path) {
			if r.Text != nil {
				texts[id] = *r.Text
			} else {
				texts[id] = ""
			}
		}
		return texts
	})
}

func TestRewriteMinCoverageRetriesThenFlags(t *testing.T) {
	fx := newRewriteFixture(t, 3)
	out := filepath.Join(t.TempDir(), "out.jsonl")
	// Random weights never write the keywords: every product is retried once and flagged.
	code, _, errOut := runCLI(t, fx.args(out, "--parallel", "2", "--min-coverage", "0.9")...)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for id, r := range readRewrite(t, out) {
		if r.Error != "" {
			continue
		}
		if r.Attempts != 2 || !r.LowCoverage || r.Coverage == nil || *r.Coverage >= 0.9 {
			t.Errorf("%s: attempts %d, low_coverage %v, coverage %v", id, r.Attempts, r.LowCoverage, r.Coverage)
		}
	}
	if !strings.Contains(errOut, "retried=3 low=3") {
		t.Errorf("summary:\n%s", errOut)
	}
}

func TestRewriteShardsSplitTheManifest(t *testing.T) {
	fx := newRewriteFixture(t, 6)
	seen := map[string]int{}
	for _, shard := range []string{"0/2", "1/2"} {
		out := filepath.Join(t.TempDir(), "out.jsonl")
		if code, _, errOut := runCLI(t, fx.args(out, "--shard", shard, "--max-tokens", "4")...); code != exitOK {
			t.Fatalf("shard %s: exit %d: %s", shard, code, errOut)
		}
		for id := range readRewrite(t, out) {
			seen[id]++
		}
	}
	for _, id := range fx.ids {
		if seen[id] != 1 {
			t.Errorf("%s is in %d shards", id, seen[id])
		}
	}
}

func TestRewriteFailFastAndRetryErrors(t *testing.T) {
	fx := newRewriteFixture(t, 2)
	out := filepath.Join(t.TempDir(), "out.jsonl")
	code, _, errOut := runCLI(t, fx.args(out, "--fail-fast")...)
	if code != exitRuntime || !strings.Contains(errOut, "fail-fast") {
		t.Fatalf("--fail-fast: exit %d: %s", code, errOut)
	}
	// Without --fail-fast the run completes with the failures recorded; --retry-errors
	// then redoes exactly the failed products (which fail again, alone).
	if code, _, errOut = runCLI(t, fx.args(out)...); code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	code, _, errOut = runCLI(t, fx.args(out, "--retry-errors")...)
	if code != exitOK || !strings.Contains(errOut, "products=2 failed=2") {
		t.Errorf("--retry-errors: exit %d: %s", code, errOut)
	}
	if len(readRewrite(t, out)) != len(fx.ids) {
		t.Error("records lost")
	}
}

func TestRewriteUsageErrors(t *testing.T) {
	fx := newRewriteFixture(t, 1)
	out := filepath.Join(t.TempDir(), "out.jsonl")
	for _, extra := range [][]string{
		{"--parallel", "0"},
		{"--parallel", "300"},
		{"--max-tokens", "0"},
		{"--temperature", "-1"},
		{"--top-p", "1.5"},
		{"--min-coverage", "2"},
		{"--shard", "2/2"},
		{"--batch", "2", "--parallel", "4"},
		{"stray-argument"},
	} {
		code, _, errOut := runCLI(t, fx.args(out, extra...)...)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want %d: %s", extra, code, exitUsage, errOut)
		}
	}
	if code, _, _ := runCLI(t, "rewrite", "--in", fx.manifest); code != exitUsage {
		t.Errorf("missing required flags: exit %d", code)
	}
	code, _, errOut := runCLI(t, "rewrite", "--model", filepath.Join(t.TempDir(), "absent.gguf"), "--examples", fx.examples, "--in", fx.manifest, "--out", out)
	if code != exitRuntime || !strings.Contains(errOut, "absent.gguf") {
		t.Errorf("absent model: exit %d: %s", code, errOut)
	}
	if _, err := os.Stat(out); err == nil && len(readRewrite(t, out)) != 0 {
		t.Error("records written without a model")
	}
}

// --examples-from draws the prompt's examples from a dataset: the same for a seed,
// recorded in the params, different for another seed.
func TestRewriteExamplesFromAreDeterministicPerSeed(t *testing.T) {
	fx := newRewriteFixture(t, 2)
	src := filepath.Join(t.TempDir(), "source.jsonl")
	var lines []string
	for i := 0; i < 30; i++ {
		lines = append(lines, mustJSON(t, dataset.Product{ID: fmt.Sprintf("s%02d", i), Text: fmt.Sprintf("A soft cotton shirt number %d.", i), Keywords: []string{"cotton", "shirt"}}))
	}
	if err := os.WriteFile(src, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	drawn := func(seed string) []string {
		out := filepath.Join(t.TempDir(), "out.jsonl")
		args := []string{"--threads", "1", "rewrite", "--quiet", "--model", fx.model, "--examples-from", src, "--shots", "3",
			"--in", fx.manifest, "--out", out, "--ctx", "900", "--max-tokens", "4", "--seed", seed}
		if code, _, errOut := runCLI(t, args...); code != exitOK {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var ids []string
		for id, r := range readRewrite(t, out) {
			if r.Params.ExamplesFrom != filepath.Base(src) || r.Params.Shots != 3 || r.Params.Examples != 3 || len(r.Params.ExampleIDs) != 3 {
				t.Errorf("%s: params %+v", id, r.Params)
			}
			if ids == nil {
				ids = r.Params.ExampleIDs
			} else if !slices.Equal(ids, r.Params.ExampleIDs) {
				t.Errorf("records of one run name different examples: %v, %v", ids, r.Params.ExampleIDs)
			}
		}
		return ids
	}
	a, b, c := drawn("5"), drawn("5"), drawn("6")
	if !slices.Equal(a, b) || slices.Equal(a, c) {
		t.Errorf("seed 5 drew %v then %v; seed 6 drew %v", a, b, c)
	}
	for _, extra := range [][]string{{"--examples", fx.examples}, {"--shots", "-1"}} {
		args := []string{"rewrite", "--model", fx.model, "--examples-from", src, "--in", fx.manifest, "--out", filepath.Join(t.TempDir(), "o.jsonl")}
		if code, _, errOut := runCLI(t, append(args, extra...)...); code != exitUsage {
			t.Errorf("%v: exit %d: %s", extra, code, errOut)
		}
	}
	if code, _, errOut := runCLI(t, "rewrite", "--model", fx.model, "--shots", "2", "--in", fx.manifest, "--out", filepath.Join(t.TempDir(), "o.jsonl")); code != exitUsage {
		t.Errorf("--shots without --examples-from: exit %d: %s", code, errOut)
	}
}

// --lang ko writes Korean prompts (built-in Korean examples when none are given), and a
// glossary matches Korean keywords against an English text, which the record notes.
// (Korean text against Korean keywords is TestCoverageKorean's: a scripted model can
// only write distinct tokens, and Hangul's UTF-8 lead bytes repeat.)
func TestRewriteKorean(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "scripted.gguf")
	if err := llamagguf.WriteScripted(model, "jeans in cotton"); err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(dir, "ko.jsonl")
	if err := os.WriteFile(manifest, []byte(`{"id": "ko", "keywords": ["청바지", "면", "울"]}
{"id": "en", "keywords": ["jeans", "cotton"]}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	glossary := filepath.Join(dir, "g.tsv")
	if err := os.WriteFile(glossary, []byte("청바지\tjeans\n면\tcotton\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.jsonl")
	code, _, errOut := runCLI(t, "--threads", "1", "rewrite", "--model", model, "--lang", "ko", "--glossary", glossary, "--in", manifest, "--out", out)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(errOut, "4 examples, ko") {
		t.Errorf("built-in Korean examples not used:\n%s", errOut)
	}
	recs := readRewrite(t, out)
	ko, en := recs["ko"], recs["en"]
	if ko.Text == nil || *ko.Text != "jeans in cotton" || ko.Coverage == nil || *ko.Coverage != 2.0/3 || !slices.Equal(ko.Missing, []string{"울"}) ||
		!slices.Equal(ko.GlossaryMatches, []string{"청바지 = jeans", "면 = cotton"}) || ko.Params.Lang != "ko" || ko.Params.Glossary != filepath.Base(glossary) || ko.Params.Examples != 4 {
		t.Errorf("Korean keywords against English text: %+v", ko)
	}
	if en.Coverage == nil || *en.Coverage != 1 || en.GlossaryMatches != nil {
		t.Errorf("English keywords: %+v", en)
	}
	if code, _, _ := runCLI(t, "rewrite", "--model", model, "--lang", "fr", "--in", manifest, "--out", filepath.Join(dir, "o.jsonl")); code != exitUsage {
		t.Errorf("--lang fr: exit %d", code)
	}
}

// The help says why the same seed gives other texts at another --parallel (issue 20).
func TestRewriteHelpDocumentsParallel(t *testing.T) {
	code, out, _ := runCLI(t, "rewrite", "--help")
	if code != exitOK || !strings.Contains(out, "--parallel 1 and --parallel 3 do") || !strings.Contains(out, "floating-point sums") {
		t.Errorf("rewrite --help does not explain --parallel and reproducibility:\n%s", out)
	}
}
