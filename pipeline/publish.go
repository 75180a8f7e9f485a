package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"synth/dataset"
	"synth/eval"
)

// A Publication is a configuration of the published dataset: a step's records joined
// with the images of its input, one row per image (docs/dataset.md).
type Publication struct {
	Name     string // configuration: source, captioned, rewritten, translated
	Input    string // the products (manifest) or images (folder) the step read
	Output   string // the step's JSONL output ("" for source: the manifest's own texts)
	PerImage bool   // records keyed by (id, image), else by id
	Text     string // the record field holding the text
}

// Publisher is a step whose output becomes a configuration of the published dataset
// (caption: captioned, rewrite: rewritten; a translate step: translated).
type Publisher interface {
	Publication() Publication
}

// published is a configuration's rows and the image file of each.
type published struct {
	pub  Publication
	rows []dataset.Row
	src  []string
}

// buildRows joins a Publication's input and records into rows. An item without a record
// yet (a step that was not run to the end) has no row.
func buildRows(pub Publication) (published, error) {
	out := published{pub: pub}
	items, err := dataset.ListImages(pub.Input, dataset.All)
	if err != nil {
		return out, err
	}
	products := map[string]dataset.Product{}
	if st, err := os.Stat(pub.Input); err == nil && !st.IsDir() {
		m, err := dataset.ReadManifest(pub.Input)
		if err != nil {
			return out, err
		}
		for _, p := range m.Products {
			products[p.ID] = p
		}
	}
	recs := map[string]map[string]json.RawMessage{}
	if pub.Output != "" {
		key := dataset.KeyFields("id")
		if pub.PerImage {
			key = dataset.KeyFields("id", "image")
		}
		err := dataset.ReadRecords(pub.Output, func(line int, raw json.RawMessage) error {
			var rec map[string]json.RawMessage
			if err := json.Unmarshal(raw, &rec); err != nil {
				return fmt.Errorf("pipeline: %s:%d: %v", pub.Output, line, err)
			}
			if k, err := key(rec); err == nil {
				recs[k] = rec
			}
			return nil
		})
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return out, err
		}
	}
	for _, it := range items {
		p := products[it.ID]
		row := dataset.Row{
			FileName: dataset.ImageName(it.Image), Dataset: pub.Name, ID: it.ID, Image: it.Image,
			Keywords: p.Keywords, Category: optional(p.Category), Title: optional(p.Title), Lang: optional(p.Lang),
		}
		if pub.Output == "" {
			if strings.TrimSpace(p.Text) == "" {
				continue // a source product without a text is no image-text record
			}
			row.Text = &p.Text
		} else {
			k := it.ID
			if pub.PerImage {
				k = dataset.JoinKey(it.ID, it.Image)
			}
			rec, ok := recs[k]
			if !ok {
				continue
			}
			fillRow(&row, rec, pub.Text)
		}
		out.rows = append(out.rows, row)
		out.src = append(out.src, it.Path)
	}
	return out, nil
}

// fillRow copies a step record's text and provenance into the row's fixed columns.
func fillRow(row *dataset.Row, rec map[string]json.RawMessage, textField string) {
	str := func(k string) *string {
		var s string
		if json.Unmarshal(rec[k], &s) != nil || s == "" {
			return nil
		}
		return &s
	}
	num := func(k string) *float64 {
		var f float64
		if json.Unmarshal(rec[k], &f) != nil || rec[k] == nil {
			return nil
		}
		return &f
	}
	row.Text, row.Error, row.Model = str(textField), str("error"), str("model")
	if row.Error != nil {
		row.Text = nil
	}
	if js, ok := rec["params"]; ok {
		s := compactJSON(js)
		row.Params = &s
	}
	var prov Provenance
	if json.Unmarshal(rec["provenance"], &prov) == nil && prov.Fingerprint != "" {
		models, _ := json.Marshal(prov.Models)
		ms := string(models)
		row.Models, row.Fingerprint, row.Version = &ms, &prov.Fingerprint, &prov.Version
	}
	for _, k := range []string{"tokens", "gen_tokens"} {
		if f := num(k); f != nil {
			n := int64(*f)
			row.Tokens = &n
		}
	}
	if f := num("ms"); f != nil {
		row.MS = f
	}
	row.Coverage = num("coverage")
	row.FinishReason = str("finish_reason")
	var low bool
	if json.Unmarshal(rec["low_coverage"], &low) == nil && low {
		row.LowCoverage = &low
	}
	if l := str("lang"); l != nil {
		row.Lang = l
	} else {
		en := "en" // the captioning and rewriting models write English
		row.Lang = &en
	}
	if kw, ok := rec["keywords"]; ok && len(row.Keywords) == 0 {
		_ = json.Unmarshal(kw, &row.Keywords)
	}
}

func compactJSON(js json.RawMessage) string {
	var b bytes.Buffer
	if json.Compact(&b, js) != nil {
		return string(js)
	}
	return b.String()
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// evalManifest writes the product manifest the evaluation reads for a configuration:
// each product whose rows have a text, with the text of its first row that has one
// (rows are in manifest order) and every published image, its path relative to the
// manifest's folder so the dataset folder can move.
func evalManifest(out, path string, p published) (int, error) {
	var order []string
	by := map[string]*dataset.Product{}
	for _, r := range p.rows {
		q := by[r.ID]
		if q == nil {
			q = &dataset.Product{ID: r.ID, Category: deref(r.Category), Title: deref(r.Title), Lang: deref(r.Lang)}
			by[r.ID] = q
			order = append(order, r.ID)
		}
		rel, err := filepath.Rel(filepath.Dir(path), filepath.Join(out, p.pub.Name, filepath.FromSlash(r.FileName)))
		if err != nil {
			return 0, fmt.Errorf("pipeline: %w", err)
		}
		q.Images = append(q.Images, filepath.ToSlash(rel))
		if q.Text == "" && r.Text != nil && r.Error == nil {
			q.Text = strings.TrimSpace(*r.Text)
		}
	}
	var b bytes.Buffer
	n := 0
	for _, id := range order {
		q := by[id]
		if q.Text == "" {
			continue
		}
		js, err := json.Marshal(q)
		if err != nil {
			return 0, fmt.Errorf("pipeline: %w", err)
		}
		b.Write(js)
		b.WriteByte('\n')
		n++
	}
	return n, dataset.WriteFileIfChanged(path, b.Bytes())
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// pairs lists the rows to score: (image in the published folder, text).
func pairs(out string, sets []published) (pairs []eval.Pair, at [][2]int) {
	for i, p := range sets {
		for j, r := range p.rows {
			if r.Text == nil || r.Error != nil {
				continue
			}
			pairs = append(pairs, eval.Pair{Image: filepath.Join(out, p.pub.Name, filepath.FromSlash(r.FileName)), Text: *r.Text})
			at = append(at, [2]int{i, j})
		}
	}
	return pairs, at
}

// setScores puts each scored pair's score on its row and ranks the rows of each product.
func setScores(sets []published, scores []float64, at [][2]int) {
	for k, ij := range at {
		if s := scores[k]; !math.IsNaN(s) {
			sets[ij[0]].rows[ij[1]].Score = &s
		}
	}
	for i := range sets {
		rows := sets[i].rows
		sc := make([]float64, len(rows))
		ids := make([]string, len(rows))
		for j, r := range rows {
			sc[j], ids[j] = math.NaN(), r.ID
			if r.Score != nil {
				sc[j] = *r.Score
			}
		}
		for j, rank := range eval.Ranks(sc, ids) {
			if rank > 0 {
				n := int64(rank)
				rows[j].Rank = &n
			}
		}
	}
}
