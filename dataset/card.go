package dataset

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Card is the dataset card (README.md of the published folder), written from what the
// rows record: their counts, failures, scores, and the provenance each row carries
// (model, parameters, model hashes, fingerprint, version), never from a config file.
type Card struct {
	Title   string
	License string // an SPDX id or "other"
	Version string // synth's version that wrote the card
	Configs []CardConfig
	// Eval is the Table 1 summary of the evaluation, when one ran.
	Eval *CardEval
	// Notes are paragraphs put after the introduction (e.g. how the set was filtered).
	Notes []string
}

// CardConfig is one configuration (folder) of the dataset.
type CardConfig struct {
	Name string
	Rows []Row
}

// configWhat says how each configuration's texts are made.
var configWhat = map[string]string{
	"source":     "the source products' own descriptions",
	"captioned":  "BLIP-2 (+ LoRA) captions, one per image",
	"rewritten":  "sentence descriptions an LLM wrote from each product's keywords",
	"translated": "the source descriptions machine-translated by an LLM",
}

// CardEval is the evaluation summary; links are relative to the dataset folder.
type CardEval struct {
	Report, Plot string
	Model        string
	Products     int
	Rows         []CardEvalRow
}

// CardEvalRow is one dataset's line of Table 1.
type CardEvalRow struct {
	Name                                 string
	SameMean, SameVar, DiffMean, DiffVar float64
	AUC                                  float64
}

// frontMatter is the YAML block the Hugging Face Hub reads.
type frontMatter struct {
	PrettyName     string        `yaml:"pretty_name"`
	License        string        `yaml:"license"`
	Language       []string      `yaml:"language"`
	TaskCategories []string      `yaml:"task_categories"`
	Tags           []string      `yaml:"tags"`
	SizeCategories []string      `yaml:"size_categories"`
	Configs        []configEntry `yaml:"configs"`
}

type configEntry struct {
	Name    string `yaml:"config_name"`
	DataDir string `yaml:"data_dir"`
	Default bool   `yaml:"default,omitempty"`
}

// ReadCardFrontMatter reads the title and license of an existing card (synth filter
// keeps them).
func ReadCardFrontMatter(path string) (title, license string, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", "", fmt.Errorf("dataset: card: %w", err)
	}
	s := string(data)
	if !strings.HasPrefix(s, "---\n") {
		return "", "", fmt.Errorf("dataset: card %s has no YAML front matter", path)
	}
	end := strings.Index(s[4:], "\n---\n")
	if end < 0 {
		return "", "", fmt.Errorf("dataset: card %s: front matter not closed", path)
	}
	var fm frontMatter
	if err := yaml.Unmarshal([]byte(s[4:4+end]), &fm); err != nil {
		return "", "", fmt.Errorf("dataset: card %s: %v", path, err)
	}
	return fm.PrettyName, fm.License, nil
}

// Markdown renders the card.
func (c *Card) Markdown() (string, error) {
	fm := frontMatter{
		PrettyName: c.Title, License: c.License,
		TaskCategories: []string{"image-to-text", "text-to-image"},
		Tags:           []string{"synthetic", "fashion", "synth"},
	}
	total := 0
	langs := map[string]bool{}
	for i, cfg := range c.Configs {
		fm.Configs = append(fm.Configs, configEntry{Name: cfg.Name, DataDir: cfg.Name, Default: i == 0})
		total += len(cfg.Rows)
		for _, r := range cfg.Rows {
			if r.Lang != nil && *r.Lang != "" {
				langs[*r.Lang] = true
			}
		}
	}
	if len(langs) == 0 {
		langs["en"] = true
	}
	for l := range langs {
		fm.Language = append(fm.Language, l)
	}
	sort.Strings(fm.Language)
	fm.SizeCategories = []string{sizeCategory(total)}
	y, err := yaml.Marshal(fm)
	if err != nil {
		return "", fmt.Errorf("dataset: card: %w", err)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "---\n%s---\n\n# %s\n\n", y, c.Title)
	fmt.Fprintf(&b, "Synthetic fashion image-text data built by synth %s, following \"Construct Synthetic Text-Image Dataset on Korean Fashion Domain\": product images captioned by BLIP-2 + LoRA, keyword lists rewritten into sentence descriptions by an instruction-tuned LLM, each record scored by Long-CLIP image-text similarity.\n\n", c.Version)
	for _, n := range c.Notes {
		fmt.Fprintf(&b, "%s\n\n", n)
	}

	fmt.Fprintf(&b, "## Configurations\n\n| configuration | rows | products | failed | with score | mean score | how the text was made |\n|---|---:|---:|---:|---:|---:|---|\n")
	for _, cfg := range c.Configs {
		st := summarize(cfg.Rows)
		mean := "-"
		if st.scored > 0 {
			mean = fmt.Sprintf("%.4f", st.scoreSum/float64(st.scored))
		}
		fmt.Fprintf(&b, "| `%s` | %d | %d | %d | %d | %s | %s |\n", cfg.Name, len(cfg.Rows), st.products, st.failed, st.scored, mean, mdText(configWhat[cfg.Name]))
	}
	fmt.Fprintf(&b, "\nLoad a configuration with Hugging Face `datasets` (each folder is an imagefolder: its images and a `metadata.jsonl` whose `file_name` is relative to the folder):\n\n")
	fmt.Fprintf(&b, "```python\nfrom datasets import load_dataset\nds = load_dataset(\"imagefolder\", data_dir=\"%s\")\n```\n\n", firstName(c.Configs))
	fmt.Fprintf(&b, "The same rows, without images, are in `parquet/<configuration>.parquet` (one schema for every file; `file_name` there is relative to this folder). [index.html](index.html) shows the records with their images, texts and scores.\n\n")

	fmt.Fprintf(&b, "## Format\n\nEvery row has the same columns (`docs/dataset.md` in the synth sources describes each); a record of `%s`:\n\n", firstName(c.Configs))
	if ex := example(c.Configs); ex != "" {
		fmt.Fprintf(&b, "```json\n%s\n```\n\n", ex)
	}
	fmt.Fprintf(&b, "`score` is the Long-CLIP cosine of the row's image and text; `rank` is its rank among the rows of the same product (1 = best match). `params` and `models` are JSON objects stored as text.\n\n")

	fmt.Fprintf(&b, "## Provenance\n\nWhat the rows record about how their texts were made (`fingerprint` identifies model hashes, adapter, every generation parameter and synth's version together):\n\n")
	fmt.Fprintf(&b, "| configuration | rows | model | fingerprint | version | model files (sha256) | parameters |\n|---|---:|---|---|---|---|---|\n")
	for _, cfg := range c.Configs {
		for _, p := range provenances(cfg.Rows) {
			fmt.Fprintf(&b, "| `%s` | %d | %s | `%s` | %s | %s | `%s` |\n", cfg.Name, p.n, mdText(p.model), p.fingerprint, mdText(p.version), p.models, mdText(p.params))
		}
	}

	if c.Eval != nil {
		e := c.Eval
		fmt.Fprintf(&b, "\n## Evaluation\n\nLong-CLIP image-text similarity, %d products per dataset (the paper's Table 1; model %s). Full report: [%s](%s).\n\n", e.Products, mdText(e.Model), e.Report, e.Report)
		fmt.Fprintf(&b, "| dataset | same product: mean | variance | different product: mean | variance | AUC |\n|---|---:|---:|---:|---:|---:|\n")
		for _, r := range e.Rows {
			fmt.Fprintf(&b, "| %s | %.4f | %.6f | %.4f | %.6f | %.4f |\n", mdText(r.Name), r.SameMean, r.SameVar, r.DiffMean, r.DiffVar, r.AUC)
		}
		fmt.Fprintf(&b, "\n![similarity of same and different products per dataset](%s)\n", e.Plot)
	}

	fmt.Fprintf(&b, "\n## Failures\n\n")
	nf := 0
	for _, cfg := range c.Configs {
		for _, r := range cfg.Rows {
			if r.Error != nil && nf < 20 {
				fmt.Fprintf(&b, "- `%s` %s %s: %s\n", cfg.Name, mdText(r.ID), mdText(r.Image), mdText(*r.Error))
				nf++
			}
		}
	}
	if nf == 0 {
		fmt.Fprintf(&b, "None: every row has a text.\n")
	}

	fmt.Fprintf(&b, "\n## Limitations\n\n")
	fmt.Fprintf(&b, "- The texts are machine-made. Captions describe what a captioning model sees and can name colours, materials or garment types wrongly; rewritten descriptions can state details that the keywords do not support (`coverage` measures only whether the keywords' words appear).\n")
	fmt.Fprintf(&b, "- `score` is one model's judgement (Long-CLIP) and inherits its biases; a high score is not a verified description.\n")
	fmt.Fprintf(&b, "- Product images and source texts keep the licence and the biases of their origin; check them before redistributing.\n")
	return b.String(), nil
}

// WriteCard writes the card as README.md into dir (unchanged files are left alone).
func WriteCard(dir string, c *Card) (string, error) {
	md, err := c.Markdown()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "README.md")
	return path, writeIfChanged(path, []byte(md))
}

type rowStats struct {
	products, failed, scored int
	scoreSum                 float64
}

func summarize(rows []Row) rowStats {
	var st rowStats
	ids := map[string]bool{}
	for _, r := range rows {
		ids[r.ID] = true
		if r.Error != nil {
			st.failed++
		}
		if r.Score != nil && !math.IsNaN(*r.Score) {
			st.scored++
			st.scoreSum += *r.Score
		}
	}
	st.products = len(ids)
	return st
}

type provenance struct {
	model, fingerprint, version, models, params string
	n                                           int
}

// provenances groups rows by what made them, most rows first.
func provenances(rows []Row) []provenance {
	by := map[string]*provenance{}
	var order []string
	for _, r := range rows {
		p := provenance{model: deref(r.Model), fingerprint: deref(r.Fingerprint), version: deref(r.Version), params: deref(r.Params), models: modelsCell(deref(r.Models))}
		if p.fingerprint == "" {
			p.fingerprint = "-"
		}
		k := strings.Join([]string{p.model, p.fingerprint, p.version, p.models, p.params}, "\x00")
		if by[k] == nil {
			by[k] = &p
			order = append(order, k)
		}
		by[k].n++
	}
	out := make([]provenance, len(order))
	for i, k := range order {
		out[i] = *by[k]
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].n > out[j].n })
	return out
}

func modelsCell(js string) string {
	var m map[string]string
	if js == "" || json.Unmarshal([]byte(js), &m) != nil || len(m) == 0 {
		return "-"
	}
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s `%s`", k, short(v)))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func short(h string) string {
	if len(h) > 16 {
		return h[:16]
	}
	return h
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func mdText(s string) string {
	if s == "" {
		return "-"
	}
	return strings.ReplaceAll(strings.Join(strings.Fields(s), " "), "|", "\\|")
}

func firstName(cfgs []CardConfig) string {
	if len(cfgs) == 0 {
		return "source"
	}
	return cfgs[0].Name
}

// example is the first row of the first configuration that has a text, as JSON.
func example(cfgs []CardConfig) string {
	for _, cfg := range cfgs {
		for _, r := range cfg.Rows {
			if r.Text == nil {
				continue
			}
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			if r.Keywords == nil {
				r.Keywords = []string{}
			}
			if enc.Encode(r) == nil {
				return strings.TrimSpace(buf.String())
			}
		}
	}
	return ""
}

func sizeCategory(n int) string {
	switch {
	case n < 1000:
		return "n<1K"
	case n < 10_000:
		return "1K<n<10K"
	case n < 100_000:
		return "10K<n<100K"
	case n < 1_000_000:
		return "100K<n<1M"
	}
	return "1M<n<10M"
}
