package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/parquet-go/parquet-go"

	"synth/dataset"
	"synth/internal/atomicfile"
	"synth/internal/filehash"
)

// evalSet is one dataset handed to synth eval.
type evalSet struct {
	name, manifest string
	products       int
}

// evalManifests writes the product manifests synth eval reads for the synthetic sets:
// the unlabeled products with a caption as their text (the first image's caption, in
// manifest order, that did not fail) and the keyword products with their rewritten text.
// Products whose step failed are left out; the card counts them.
func (p *pipeline) evalManifests() ([]evalSet, error) {
	cfg := p.cfg
	var sets []evalSet
	if source := p.source(); source != "" {
		m, err := dataset.ReadManifest(source)
		if err != nil {
			return nil, err
		}
		sets = append(sets, evalSet{"source", m.Path, len(m.Products)})
	}
	dir := filepath.Join(p.out, evalDataDir)
	build := func(name, manifest, outFile string, perImage bool, textField string) error {
		out := filepath.Join(p.out, outFile)
		if manifest == "" {
			return nil
		}
		if _, err := os.Stat(out); errors.Is(err, os.ErrNotExist) {
			return nil
		}
		m, err := dataset.ReadManifest(cfg.resolve(manifest))
		if err != nil {
			return err
		}
		texts := map[string]string{}
		err = dataset.ReadRecords(out, func(_ int, raw json.RawMessage) error {
			var rec map[string]any
			if json.Unmarshal(raw, &rec) != nil || rec["error"] != nil {
				return nil
			}
			id, _ := rec["id"].(string)
			text, _ := rec[textField].(string)
			if text = strings.TrimSpace(text); id == "" || text == "" {
				return nil
			}
			key := id
			if perImage {
				img, _ := rec["image"].(string)
				key = dataset.JoinKey(id, img)
			}
			texts[key] = text
			return nil
		})
		if err != nil {
			return err
		}
		var lines bytes.Buffer
		n := 0
		for _, pr := range m.Products {
			text := texts[pr.ID]
			if perImage {
				for _, img := range pr.Images {
					if t := texts[dataset.JoinKey(pr.ID, img)]; t != "" {
						text = t
						break
					}
				}
			}
			if text == "" {
				continue
			}
			q := dataset.Product{ID: pr.ID, Text: text, Category: pr.Category, Title: pr.Title, Lang: pr.Lang}
			for _, img := range pr.Images {
				q.Images = append(q.Images, m.ImagePath(img)) // absolute: the manifest moves folders
			}
			js, err := json.Marshal(q)
			if err != nil {
				return fmt.Errorf("pipeline: %w", err)
			}
			lines.Write(js)
			lines.WriteByte('\n')
			n++
		}
		path := filepath.Join(dir, name+".jsonl")
		if err := writeIfChanged(path, lines.Bytes()); err != nil {
			return err
		}
		sets = append(sets, evalSet{name, path, n})
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	if err := build("captioned", cfg.Data.Unlabeled, captionedFile, true, "caption"); err != nil {
		return nil, err
	}
	if err := build("rewritten", cfg.Data.Foreign, rewrittenFile, false, "text"); err != nil {
		return nil, err
	}
	return sets, nil
}

// source is the manifest of the source set: the translation of data.source when the
// pipeline translates it, data.source otherwise ("" when there is none yet).
func (p *pipeline) source() string {
	if p.cfg.Translate.values != nil {
		out := filepath.Join(p.out, translatedFile)
		if _, err := os.Stat(out); err != nil {
			return ""
		}
		return out
	}
	return p.cfg.resolve(p.cfg.Data.Source)
}

// writeIfChanged leaves an identical file alone, so reruns keep timestamps and hashes.
func writeIfChanged(path string, data []byte) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	if err := atomicfile.WriteFile(path, data); err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	return nil
}

// eval runs synth eval unless its report exists for exactly these inputs (arguments,
// manifest contents, the model file's size and time): the stamp is kept beside it.
func (p *pipeline) eval(sets []evalSet) error {
	out := filepath.Join(p.out, evalDir)
	args := []string{"synth", fmt.Sprintf("--threads=%d", p.threads), "eval"}
	for _, s := range sets {
		args = append(args, "--data="+s.name+"="+s.manifest)
	}
	args = append(args, "--out="+out)
	args = append(args, p.cfg.args(p.cfg.Eval)...)

	h := sha256.New()
	fmt.Fprintf(h, "%q\n", args)
	for _, s := range sets {
		if _, err := filehash.Add(h, s.manifest); err != nil {
			return fmt.Errorf("pipeline: %w", err)
		}
	}
	if st, err := os.Stat(p.cfg.resolve(p.cfg.Eval.values["model"])); err == nil {
		fmt.Fprintf(h, "%d %d\n", st.Size(), st.ModTime().UnixNano())
	}
	stamp := hex.EncodeToString(h.Sum(nil))
	stampFile := filepath.Join(out, evalStamp)
	if old, err := os.ReadFile(stampFile); err == nil && string(old) == stamp {
		if _, err := os.Stat(filepath.Join(out, "report.json")); err == nil {
			fmt.Fprintf(p.stderr, "pipeline: eval: report for these inputs exists in %s, skipped\n", out)
			return nil
		}
	}
	fmt.Fprintf(p.stderr, "pipeline: eval: running: %s\n", strings.Join(args, " "))
	if err := p.sub(args); err != nil {
		return fmt.Errorf("pipeline: eval: %w", err)
	}
	return writeIfChanged(stampFile, []byte(stamp))
}

// parquet writes a .parquet copy of each JSONL output (one column per record field:
// strings, numbers, lists of strings; anything else as its JSON text), so the dataset
// loads with Hugging Face datasets (load_dataset("parquet", data_files=...)).
func (p *pipeline) parquet() error {
	for _, name := range []string{translatedFile, captionedFile, rewrittenFile} {
		in := filepath.Join(p.out, name)
		if _, err := os.Stat(in); errors.Is(err, os.ErrNotExist) {
			continue
		}
		out := strings.TrimSuffix(in, ".jsonl") + ".parquet"
		if fresh(out, in) {
			continue
		}
		if err := jsonlToParquet(in, out); err != nil {
			return err
		}
	}
	return nil
}

// fresh reports whether out exists and is newer than in.
func fresh(out, in string) bool {
	so, err1 := os.Stat(out)
	si, err2 := os.Stat(in)
	return err1 == nil && err2 == nil && !so.ModTime().Before(si.ModTime())
}

type colKind int

const (
	colString colKind = iota
	colInt
	colFloat
	colStrings
	colJSON
)

func jsonlToParquet(in, out string) error {
	var recs []map[string]any
	var order []string
	kinds := map[string]colKind{}
	seen := map[string]bool{}
	err := dataset.ReadRecords(in, func(line int, raw json.RawMessage) error {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var rec map[string]any
		if err := dec.Decode(&rec); err != nil {
			return fmt.Errorf("pipeline: %s:%d: %v", in, line, err)
		}
		keys := make([]string, 0, len(rec))
		for k := range rec {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := rec[k]
			if v == nil {
				continue
			}
			kind := kindOf(v)
			if !seen[k] {
				seen[k] = true
				order = append(order, k)
				kinds[k] = kind
			} else if kinds[k] != kind {
				kinds[k] = widen(kinds[k], kind)
			}
		}
		recs = append(recs, rec)
		return nil
	})
	if err != nil {
		return err
	}
	group := parquet.Group{}
	for _, k := range order {
		switch kinds[k] {
		case colString, colJSON:
			group[k] = parquet.Optional(parquet.String())
		case colInt:
			group[k] = parquet.Optional(parquet.Int(64))
		case colFloat:
			group[k] = parquet.Optional(parquet.Leaf(parquet.DoubleType))
		case colStrings:
			group[k] = parquet.Optional(parquet.List(parquet.String()))
		}
	}
	var buf bytes.Buffer
	w := parquet.NewWriter(&buf, parquet.NewSchema("record", group))
	for _, rec := range recs {
		row := map[string]any{}
		for _, k := range order {
			v, ok := rec[k]
			if !ok || v == nil {
				row[k] = nil
				continue
			}
			row[k] = convert(v, kinds[k])
		}
		if err := w.Write(row); err != nil {
			return fmt.Errorf("pipeline: parquet %s: %w", out, err)
		}
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("pipeline: parquet %s: %w", out, err)
	}
	return writeIfChanged(out, buf.Bytes())
}

func kindOf(v any) colKind {
	switch x := v.(type) {
	case string:
		return colString
	case json.Number:
		if _, err := x.Int64(); err == nil {
			return colInt
		}
		return colFloat
	case []any:
		for _, e := range x {
			if _, ok := e.(string); !ok {
				return colJSON
			}
		}
		return colStrings
	}
	return colJSON
}

func widen(a, b colKind) colKind {
	if (a == colInt && b == colFloat) || (a == colFloat && b == colInt) {
		return colFloat
	}
	return colJSON
}

func convert(v any, k colKind) any {
	switch k {
	case colString:
		return v.(string)
	case colInt:
		n, _ := v.(json.Number).Int64()
		return n
	case colFloat:
		f, err := v.(json.Number).Float64()
		if err != nil {
			f = math.NaN()
		}
		return f
	case colStrings:
		var out []string
		for _, e := range v.([]any) {
			out = append(out, e.(string))
		}
		return out
	}
	if s, ok := v.(string); ok {
		return s
	}
	js, _ := json.Marshal(v)
	return string(js)
}

// writeCard writes OUTPUT/README.md, the dataset card: what the dataset is, where it
// came from (model files and hashes, adapter, every parameter), counts and failures, and
// the evaluation.
func (p *pipeline) writeCard(sum runSummary, sets []evalSet) (string, error) {
	cfg := p.cfg
	var b strings.Builder
	fmt.Fprintf(&b, "# Synthetic fashion text-image dataset\n\n")
	fmt.Fprintf(&b, "Built by `synth pipeline` (synth %s) following \"Construct Synthetic Text-Image Dataset on Korean Fashion Domain\": product images captioned by BLIP-2 + LoRA, keyword lists rewritten into sentence descriptions by an instruction-tuned LLM, both judged with Long-CLIP image-text similarity against the source data.\n\n", version)
	fmt.Fprintf(&b, "## Files\n\n| file | content |\n|---|---|\n")
	for _, f := range []struct{ name, what string }{
		{translatedFile, "the source products translated (a manifest): translated fields in place, originals as `<field>_<lang>`, model, parameters, faithfulness (or `error`)"},
		{"translated.parquet", "the same as Parquet"},
		{captionedFile, "one record per image: `id`, `image`, `caption`, model, parameters, tokens, time (or `error`)"},
		{"captioned.parquet", "the same as Parquet (`datasets.load_dataset(\"parquet\", data_files=...)`)"},
		{rewrittenFile, "one record per product: `id`, `keywords`, `text`, model, parameters, tokens, coverage (or `error`)"},
		{"rewritten.parquet", "the same as Parquet"},
		{evalDataDir + "/", "the product manifests the evaluation read (synthetic text per product)"},
		{evalDir + "/", "`report.md`, `report.json`, `similarity.png` from synth eval"},
	} {
		if _, err := os.Stat(filepath.Join(p.out, strings.TrimSuffix(f.name, "/"))); err == nil {
			fmt.Fprintf(&b, "| `%s` | %s |\n", f.name, f.what)
		}
	}
	fmt.Fprintf(&b, "\n## Counts\n\n| step | items | records | failed | missing |\n|---|---|---|---|---|\n")
	for _, s := range []struct {
		name string
		st   stepStatus
		on   bool
	}{{"translate (products)", sum.translate, cfg.Translate.values != nil}, {"caption (images)", sum.caption, cfg.Caption.values != nil}, {"rewrite (products)", sum.rewrite, cfg.Rewrite.values != nil}} {
		if s.on {
			fmt.Fprintf(&b, "| %s | %d | %d | %d | %d |\n", s.name, s.st.expected, s.st.records-s.st.errors, s.st.errors, s.st.expected-s.st.records)
		}
	}
	if len(sets) > 0 {
		fmt.Fprintf(&b, "\nProducts per evaluation set (with a text): ")
		var parts []string
		for _, s := range sets {
			parts = append(parts, fmt.Sprintf("%s %d", s.name, s.products))
		}
		fmt.Fprintf(&b, "%s.\n", strings.Join(parts, ", "))
	}
	fails := p.failures()
	if len(fails) > 0 {
		fmt.Fprintf(&b, "\n### Failures (first %d)\n\n", len(fails))
		for _, f := range fails {
			fmt.Fprintf(&b, "- %s\n", f)
		}
	}
	fmt.Fprintf(&b, "\n## Provenance\n\n| step | file | sha256 |\n|---|---|---|\n")
	for _, st := range []struct {
		name  string
		flags stepFlags
	}{{"translate", cfg.Translate}, {"caption", cfg.Caption}, {"rewrite", cfg.Rewrite}, {"eval", cfg.Eval}} {
		for _, k := range []string{"model", "lora", "tokenizer", "vocab", "examples", "examples-from", "glossary"} {
			if !st.flags.has(k) {
				continue
			}
			path := cfg.resolve(st.flags.values[k])
			sum, err := p.hashes.sum(path)
			if err != nil {
				sum = "unreadable: " + err.Error()
			}
			fmt.Fprintf(&b, "| %s %s | `%s` | `%s` |\n", st.name, k, path, sum)
		}
	}
	fmt.Fprintf(&b, "\nEvery parameter, as given to `synth pipeline` (`%s`):\n\n```yaml\n%s\n```\n", cfg.path, strings.TrimSpace(string(cfg.raw)))
	if data, err := os.ReadFile(filepath.Join(p.out, evalDir, "report.md")); err == nil {
		fmt.Fprintf(&b, "\n## Evaluation\n\n![similarity histograms](%s/similarity.png)\n\n", evalDir)
		report := string(data)
		// demote the report's headings under this section
		report = strings.ReplaceAll("\n"+report, "\n#", "\n##")
		fmt.Fprintf(&b, "%s\n", strings.TrimSpace(report))
	}
	path := filepath.Join(p.out, "README.md")
	if err := p.hashes.save(); err != nil {
		return "", err
	}
	return path, writeIfChanged(path, []byte(b.String()))
}

// hashCache remembers the sha256 of model files by path, size and modification time, so
// a rerun does not read tens of GB of weights again to write the card.
type hashCache struct {
	file    string
	entries map[string]hashEntry
	dirty   bool
}

type hashEntry struct {
	Size    int64  `json:"size"`
	ModTime int64  `json:"mtime_ns"`
	SHA256  string `json:"sha256"`
}

func loadHashCache(file string) *hashCache {
	h := &hashCache{file: file, entries: map[string]hashEntry{}}
	if data, err := os.ReadFile(file); err == nil {
		_ = json.Unmarshal(data, &h.entries) // a broken cache is only a slower run
	}
	return h
}

func (h *hashCache) sum(path string) (string, error) {
	size, mtime, err := treeStat(path)
	if err != nil {
		return "", err
	}
	if e, ok := h.entries[path]; ok && e.Size == size && e.ModTime == mtime {
		return e.SHA256, nil
	}
	sum, err := filehash.Tree(path)
	if err != nil {
		return "", err
	}
	h.entries[path] = hashEntry{Size: size, ModTime: mtime, SHA256: sum}
	h.dirty = true
	return sum, nil
}

func (h *hashCache) save() error {
	if !h.dirty {
		return nil
	}
	data, err := json.MarshalIndent(h.entries, "", "  ")
	if err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	return writeIfChanged(h.file, data)
}

// treeStat is the total size and latest modification time of a file or a folder's files.
func treeStat(path string) (size, mtime int64, err error) {
	err = filepath.WalkDir(path, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		st, err := d.Info()
		if err != nil {
			return err
		}
		size += st.Size()
		mtime = max(mtime, st.ModTime().UnixNano())
		return nil
	})
	return size, mtime, err
}

// failures lists the first records with an error from both outputs.
func (p *pipeline) failures() []string {
	const limit = 20
	var out []string
	for _, name := range []string{translatedFile, captionedFile, rewrittenFile} {
		path := filepath.Join(p.out, name)
		if _, err := os.Stat(path); err != nil {
			continue
		}
		_ = dataset.ReadRecords(path, func(_ int, raw json.RawMessage) error {
			var rec map[string]any
			if json.Unmarshal(raw, &rec) != nil || rec["error"] == nil || len(out) >= limit {
				return nil
			}
			item := fmt.Sprint(rec["id"])
			if img, ok := rec["image"].(string); ok {
				item += " " + img
			}
			out = append(out, fmt.Sprintf("%s: %s: %v", name, item, rec["error"]))
			return nil
		})
	}
	return out
}
