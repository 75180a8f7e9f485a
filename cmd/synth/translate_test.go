package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"synth/dataset"
	"synth/internal/llamagguf"
)

// translateFixture is a Korean manifest with images in its folder, and a glossary.
type translateFixture struct {
	dir, model, manifest, glossary string
	products                       map[string]dataset.Product
	ids                            []string
}

// newTranslateFixture writes n Korean products (text with numbers and units, a title
// with a Latin-script size, keywords), one already in English, one with nothing to
// translate and one whose description is far longer than --ctx 1400.
func newTranslateFixture(t *testing.T, n int) translateFixture {
	t.Helper()
	dir := t.TempDir()
	fx := translateFixture{dir: dir, model: tinyLlamaGGUF(t), manifest: filepath.Join(dir, "data", "ko.jsonl"),
		glossary: filepath.Join(dir, "glossary.tsv"), products: map[string]dataset.Product{}}
	if err := os.MkdirAll(filepath.Join(dir, "data", "img"), 0o755); err != nil {
		t.Fatal(err)
	}
	colors := []string{"파란색", "검정색", "아이보리", "네이비"}
	items := []string{"청바지", "코트", "니트", "셔츠", "원피스"}
	var lines []string
	add := func(p dataset.Product) {
		lines = append(lines, mustJSON(t, p))
		fx.products[p.ID] = p
		fx.ids = append(fx.ids, p.ID)
	}
	for i := 0; i < n; i++ {
		c, it := colors[i%len(colors)], items[i%len(items)]
		img := fmt.Sprintf("img/k%02d.jpg", i)
		if err := os.WriteFile(filepath.Join(dir, "data", img), []byte("not read by translate"), 0o644); err != nil {
			t.Fatal(err)
		}
		add(dataset.Product{
			ID: fmt.Sprintf("k%02d", i), Images: []string{img}, Lang: "ko", Category: "의류",
			Text:     fmt.Sprintf("부드러운 기모 안감의 슬림핏 %s %s입니다. 총장 %dcm, 면 %d%%.", c, it, 60+i, 90+i%10),
			Title:    fmt.Sprintf("%s %s XL", c, it),
			Keywords: []string{c + " " + it, "슬림핏", fmt.Sprintf("면 %d%%", 90+i%10)},
		})
	}
	add(dataset.Product{ID: "en", Text: "Already English.", Lang: "en"})
	add(dataset.Product{ID: "empty", Lang: "ko"})
	add(dataset.Product{ID: "too-long", Lang: "ko", Text: strings.Repeat("아주 긴 설명입니다. ", 80)})
	if err := os.WriteFile(fx.manifest, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fx.glossary, []byte("# ko\ten\n슬림핏\tslim fit\n기모\tbrushed fleece\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return fx
}

func (fx translateFixture) args(out string, extra ...string) []string {
	return append([]string{"--threads", "1", "translate", "--quiet", "--model", fx.model, "--in", fx.manifest, "--out", out,
		"--from", "ko", "--to", "en", "--glossary", fx.glossary, "--ctx", "1400", "--max-tokens", "12"}, extra...)
}

// translated is what the tests read of a record: the manifest fields, the originals
// and the run's details.
type translated struct {
	dataset.Product
	TextKo      string                     `json:"text_ko"`
	TitleKo     string                     `json:"title_ko"`
	KeywordsKo  []string                   `json:"keywords_ko"`
	CategoryKo  *string                    `json:"category_ko"`
	Model       string                     `json:"model"`
	Params      map[string]any             `json:"params"`
	Translation map[string]json.RawMessage `json:"translation"`
	Faithful    *bool                      `json:"faithful"`
	Missing     []string                   `json:"missing"`
	Note        string                     `json:"note"`
	Error       string                     `json:"error"`
}

type fieldInfo struct {
	Attempts        int      `json:"attempts"`
	GenTokens       int      `json:"gen_tokens"`
	FinishReason    string   `json:"finish_reason"`
	Faithfulness    *float64 `json:"faithfulness"`
	Missing         []string `json:"missing"`
	LowFaithfulness bool     `json:"low_faithfulness"`
}

func (r translated) field(t *testing.T, name string) fieldInfo {
	t.Helper()
	var f fieldInfo
	if err := json.Unmarshal(r.Translation[name], &f); err != nil {
		t.Fatalf("%s: translation.%s: %v", r.ID, name, err)
	}
	return f
}

// readTranslated reads an output file, failing on a duplicate id.
func readTranslated(t *testing.T, path string) map[string]translated {
	return readByID(t, path, func(r translated) string { return r.ID })
}

func TestTranslateWritesEveryProduct(t *testing.T) {
	fx := newTranslateFixture(t, 5)
	for _, parallel := range []string{"1", "3"} {
		t.Run("parallel="+parallel, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out", "en.jsonl")
			code, _, errOut := runCLI(t, fx.args(out, "--parallel", parallel, "--fields", "text,title,category")...)
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			recs := readTranslated(t, out)
			if got := slices.Sorted(maps.Keys(recs)); !slices.Equal(got, slices.Sorted(slices.Values(fx.ids))) {
				t.Fatalf("records for %v, want %v", got, fx.ids)
			}
			for id, r := range recs {
				src := fx.products[id]
				if r.Model != filepath.Base(fx.model) || r.Params["from"] != "ko" || r.Params["to"] != "en" || r.Params["max_tokens"] != 12.0 ||
					r.Params["glossary_terms"] != 2.0 || r.Params["shots"] != 3.0 || r.Params["ctx"] != 1400.0 {
					t.Errorf("%s: model %q, params %v", id, r.Model, r.Params)
				}
				switch id {
				case "en":
					if r.Text != src.Text || r.Lang != "en" || r.Translation != nil || r.Note != "already in en" || r.Error != "" {
						t.Errorf("%s: %+v", id, r)
					}
				case "empty":
					if r.Text != "" || r.Lang != "en" || r.Note != "nothing to translate" || r.Error != "" {
						t.Errorf("%s: %+v", id, r)
					}
				case "too-long":
					if !strings.Contains(r.Error, "prompt exceeds the context") || r.Text != "" || r.TextKo != strings.TrimSpace(src.Text) || r.Lang != "ko" || r.Faithful != nil {
						t.Errorf("%s: error %q, text %q, text_ko %q, lang %q, faithful %v", id, r.Error, r.Text, r.TextKo, r.Lang, r.Faithful)
					}
				default:
					// Keywords are not among --fields: they stay as they are.
					if r.Error != "" || r.Text == "" || r.Title == "" || r.Category == "" || r.Lang != "en" ||
						r.TextKo != src.Text || r.TitleKo != src.Title || r.CategoryKo == nil || *r.CategoryKo != src.Category ||
						!slices.Equal(r.Keywords, src.Keywords) || r.KeywordsKo != nil || r.Faithful == nil {
						t.Errorf("%s: incomplete record %+v", id, r)
					}
					for _, f := range []string{"text", "title"} {
						if fi := r.field(t, f); fi.Attempts != 1 || fi.GenTokens < 1 || fi.GenTokens > 12 || fi.FinishReason == "" || fi.Faithfulness == nil {
							t.Errorf("%s: translation.%s %+v", id, f, fi)
						}
					}
					if *r.Faithful != (len(r.Missing) == 0) {
						t.Errorf("%s: faithful %v, missing %q", id, *r.Faithful, r.Missing)
					}
				}
			}
			// The output is a manifest: its images resolve to the source's files.
			m, err := dataset.ReadManifest(out)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range m.Products {
				for i, img := range p.Images {
					want, _ := filepath.Abs(filepath.Join(filepath.Dir(fx.manifest), fx.products[p.ID].Images[i]))
					if m.ImagePath(img) != want {
						t.Errorf("%s: image %s resolves to %s, want %s", p.ID, img, m.ImagePath(img), want)
					}
				}
			}
			if !strings.Contains(errOut, fmt.Sprintf("products=%d ", len(fx.ids))) || !strings.Contains(errOut, "prefix_tokens_avoided=") {
				t.Errorf("summary:\n%s", errOut)
			}
		})
	}
}

func TestTranslateSameSeedSameOutput(t *testing.T) {
	fx := newTranslateFixture(t, 4)
	texts := func(parallel, seed string) map[string]string {
		out := filepath.Join(t.TempDir(), "out.jsonl")
		if code, _, errOut := runCLI(t, fx.args(out, "--parallel", parallel, "--seed", seed, "--temperature", "1", "--fields", "text,title")...); code != exitOK {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		m := map[string]string{}
		for id, r := range readTranslated(t, out) {
			m[id] = r.Text + "|" + r.Title + "|" + strings.Join(r.Keywords, "|") + r.Error
		}
		return m
	}
	for _, parallel := range []string{"1", "3"} {
		a, b, other := texts(parallel, "11"), texts(parallel, "11"), texts(parallel, "12")
		if !maps.Equal(a, b) {
			t.Errorf("parallel %s: seed 11 twice gave different translations:\n%v\n%v", parallel, a, b)
		}
		if a["k00"] == other["k00"] && a["k01"] == other["k01"] {
			t.Errorf("parallel %s: seeds 11 and 12 gave the same translations %v", parallel, a)
		}
	}
}

func TestTranslateResumesAfterKill(t *testing.T) {
	fx := newTranslateFixture(t, 30)
	out := filepath.Join(t.TempDir(), "out.jsonl")
	resumeAfterKill(t, fx.args(out, "--parallel", "3", "--max-tokens", "60", "--fields", "text,title"), out, fx.ids, func(t *testing.T, path string) map[string]string {
		texts := map[string]string{}
		for id, r := range readTranslated(t, path) {
			texts[id] = r.Text + "\x00" + r.Title + "\x00" + strings.Join(r.Keywords, "\x00") + r.Error
		}
		return texts
	})
}

// A model that always answers "Waist 32 cm" makes every record predictable: a source
// with 32cm is translated faithfully, one with 101cm too loses that number, a keyword
// list of one comes back whole and a list of two does not.
func TestTranslateFlagsADroppedNumber(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "scripted.gguf")
	if err := llamagguf.WriteScripted(model, "Waist 32 cm"); err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(dir, "ko.jsonl")
	lines := []string{
		`{"id": "kept", "text": "허리 32cm", "title": "허리 32cm 바지", "keywords": ["허리 32cm"], "lang": "ko"}`,
		`{"id": "dropped", "text": "허리 32cm, 총장 101cm"}`,
		`{"id": "list", "keywords": ["허리 32cm", "면"], "category": "바지"}`,
	}
	if err := os.WriteFile(manifest, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, minFaithful := range []string{"0", "1"} {
		out := filepath.Join(t.TempDir(), "out.jsonl")
		code, _, errOut := runCLI(t, "--threads", "1", "translate", "--quiet", "--model", model, "--in", manifest, "--out", out,
			"--fields", "text,title,keywords,category", "--parallel", "2", "--temperature", "0.8", "--min-faithful", minFaithful)
		if code != exitOK {
			t.Fatalf("--min-faithful %s: exit %d: %s", minFaithful, code, errOut)
		}
		recs := readTranslated(t, out)
		kept, dropped, list := recs["kept"], recs["dropped"], recs["list"]
		if kept.Text != "Waist 32 cm" || kept.Title != "Waist 32 cm" || !slices.Equal(kept.Keywords, []string{"Waist 32 cm"}) ||
			kept.Faithful == nil || !*kept.Faithful || kept.Missing != nil || kept.TextKo != "허리 32cm" || kept.Error != "" {
			t.Errorf("--min-faithful %s: faithful translation recorded as %+v", minFaithful, kept)
		}
		for _, f := range []string{"text", "title", "keywords"} {
			if fi := kept.field(t, f); *fi.Faithfulness != 1 || fi.Attempts != 1 || fi.FinishReason != "stop" {
				t.Errorf("--min-faithful %s: kept.%s %+v", minFaithful, f, fi)
			}
		}
		fi := dropped.field(t, "text")
		wantAttempts := map[string]int{"0": 1, "1": 2}[minFaithful]
		if dropped.Text != "Waist 32 cm" || dropped.Faithful == nil || *dropped.Faithful || !slices.Equal(dropped.Missing, []string{"text: 101"}) ||
			!slices.Equal(fi.Missing, []string{"101"}) || *fi.Faithfulness != 2.0/3 || fi.Attempts != wantAttempts || fi.LowFaithfulness != (minFaithful == "1") {
			t.Errorf("--min-faithful %s: dropped number recorded as %+v, text %+v", minFaithful, dropped, fi)
		}
		if !strings.Contains(list.Error, "keywords: keyword list: 1 keywords came back for 2") || list.Keywords != nil ||
			list.Category != "" || list.CategoryKo == nil || *list.CategoryKo != "바지" || !slices.Equal(list.KeywordsKo, []string{"허리 32cm", "면"}) {
			t.Errorf("--min-faithful %s: short keyword list recorded as %+v", minFaithful, list)
		}
		if minFaithful == "1" && !strings.Contains(errOut, " low=1") {
			t.Errorf("summary:\n%s", errOut)
		}
	}
}

// The translated manifest is what the other commands read: rewrite takes its English
// keywords, and its images resolve from the output's folder.
func TestTranslatedManifestFeedsRewrite(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "scripted.gguf")
	if err := llamagguf.WriteScripted(model, "blue jeans"); err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(dir, "ko.jsonl")
	if err := os.WriteFile(manifest, []byte(`{"id": "a", "images": ["a.jpg"], "keywords": ["파란색 청바지"], "lang": "ko"}
{"id": "b", "images": ["b.jpg"], "keywords": ["청바지"], "text": "청바지"}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	en := filepath.Join(dir, "en", "en.jsonl")
	if code, _, errOut := runCLI(t, "--threads", "1", "translate", "--quiet", "--model", model, "--in", manifest, "--out", en); code != exitOK {
		t.Fatalf("translate: exit %d: %s", code, errOut)
	}
	out := filepath.Join(dir, "rewritten.jsonl")
	if code, _, errOut := runCLI(t, "--threads", "1", "rewrite", "--quiet", "--model", model, "--in", en, "--out", out, "--max-tokens", "8"); code != exitOK {
		t.Fatalf("rewrite: exit %d: %s", code, errOut)
	}
	recs := readRewrite(t, out)
	for _, id := range []string{"a", "b"} {
		r := recs[id]
		if r.Error != "" || !slices.Equal(r.Keywords, []string{"blue jeans"}) || r.Text == nil || *r.Text != "blue jeans" || r.Coverage == nil || *r.Coverage != 1 {
			t.Errorf("%s: rewrite of the translated product: %+v", id, r)
		}
	}
	m, err := dataset.ReadManifest(en)
	if err != nil {
		t.Fatal(err)
	}
	if img := m.ImagePath(m.Products[0].Images[0]); img != filepath.Join(dir, "a.jpg") || m.Products[1].Text != "blue jeans" {
		t.Errorf("translated manifest: image %s, products %+v", img, m.Products)
	}
}

func TestTranslateUsageErrors(t *testing.T) {
	fx := newTranslateFixture(t, 1)
	out := filepath.Join(t.TempDir(), "out.jsonl")
	for _, extra := range [][]string{
		{"--from", "xx"},
		{"--to", "ko"},
		{"--fields", "text,colour"},
		{"--fields", " , "},
		{"--min-faithful", "1.5"},
		{"--parallel", "0"},
		{"--temperature", "-1"},
		{"stray-argument"},
	} {
		if code, _, errOut := runCLI(t, fx.args(out, extra...)...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d: %s", extra, code, exitUsage, errOut)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.tsv")
	os.WriteFile(bad, []byte("슬림핏 slim fit\n"), 0o644)
	if code, _, errOut := runCLI(t, fx.args(out, "--glossary", bad)...); code != exitRuntime || !strings.Contains(errOut, bad+":1") {
		t.Errorf("bad glossary: exit %d: %s", code, errOut)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("output written by a failed command")
	}
}
