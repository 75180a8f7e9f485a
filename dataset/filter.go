package dataset

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// FilterOptions choose the rows a filtered dataset keeps: exactly one of MinScore and
// DropBottom is set. Rows without a score (their text or image failed) are dropped.
type FilterOptions struct {
	// MinScore keeps rows whose score is at least this.
	MinScore *float64
	// DropBottom drops this percentage of each configuration's scored rows, the lowest
	// scores first.
	DropBottom *float64
	// Configs are the configurations filtered; the others are copied whole. Empty: every
	// configuration but source (the reference keeps its rows).
	Configs []string
}

// FilterResult says what filtering did to one configuration.
type FilterResult struct {
	Config                    string
	Rows, Kept, Low, Unscored int
	// Threshold is the lowest score kept (NaN when nothing was kept).
	Threshold float64
	Filtered  bool // false: copied whole
}

func (r FilterResult) String() string {
	if !r.Filtered {
		return fmt.Sprintf("%s: %d rows copied unfiltered", r.Config, r.Rows)
	}
	return fmt.Sprintf("%s: kept %d of %d rows, dropped %d below the threshold (lowest kept score %.4f) and %d without a score",
		r.Config, r.Kept, r.Rows, r.Low, r.Threshold, r.Unscored)
}

// Validate checks the options.
func (o FilterOptions) Validate() error {
	switch {
	case (o.MinScore == nil) == (o.DropBottom == nil):
		return errors.New("give exactly one of --min-score and --drop-bottom")
	case o.DropBottom != nil && (math.IsNaN(*o.DropBottom) || *o.DropBottom < 0 || *o.DropBottom >= 100):
		return fmt.Errorf("--drop-bottom %g: want a percentage in [0, 100)", *o.DropBottom)
	case o.MinScore != nil && (math.IsNaN(*o.MinScore) || math.IsInf(*o.MinScore, 0)):
		return fmt.Errorf("--min-score %g: want a number", *o.MinScore)
	}
	return nil
}

// FilterRows keeps the rows of one configuration that pass. DropBottom drops the
// floor(P% of the scored rows) lowest, ties broken by row order.
func FilterRows(name string, rows []Row, o FilterOptions) ([]Row, FilterResult) {
	res := FilterResult{Config: name, Rows: len(rows), Filtered: true, Threshold: math.NaN()}
	low := make([]bool, len(rows))
	var scored []int
	for i, r := range rows {
		if r.Score != nil && !math.IsNaN(*r.Score) {
			scored = append(scored, i)
			if o.MinScore != nil && *r.Score < *o.MinScore {
				low[i] = true
			}
		}
	}
	if o.DropBottom != nil {
		sort.SliceStable(scored, func(a, b int) bool { return *rows[scored[a]].Score < *rows[scored[b]].Score })
		for _, i := range scored[:int(math.Floor(*o.DropBottom/100*float64(len(scored))))] {
			low[i] = true
		}
	}
	var kept []Row
	for i, r := range rows {
		switch {
		case r.Score == nil || math.IsNaN(*r.Score):
			res.Unscored++
		case low[i]:
			res.Low++
		default:
			kept = append(kept, r)
			if math.IsNaN(res.Threshold) || *r.Score < res.Threshold {
				res.Threshold = *r.Score
			}
		}
	}
	res.Kept = len(kept)
	return kept, res
}

// Filter writes a filtered copy of the published dataset src into dst (which must not
// exist or be empty): every configuration's kept rows with their images, Parquet files,
// a card that says how it was filtered, and the viewer.
func Filter(src, dst string, o FilterOptions, version string) ([]FilterResult, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if abs1, abs2 := absPath(src), absPath(dst); abs1 == abs2 {
		return nil, fmt.Errorf("dataset: filter: the output is the input (%s)", src)
	}
	if ents, err := os.ReadDir(dst); err == nil && len(ents) > 0 {
		return nil, fmt.Errorf("dataset: filter: %s exists and is not empty; choose a new folder", dst)
	}
	title, license, err := ReadCardFrontMatter(filepath.Join(src, "README.md"))
	if err != nil {
		return nil, err
	}
	names, err := Configs(src)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("dataset: filter: %s holds no configuration folder with a %s", src, MetadataFile)
	}
	filtered := map[string]bool{}
	for _, n := range o.Configs {
		filtered[n] = true
	}
	var results []FilterResult
	card := &Card{Title: title, License: license, Version: version}
	for _, name := range names {
		rows, err := ReadMetadata(filepath.Join(src, name, MetadataFile))
		if err != nil {
			return nil, err
		}
		kept, res := rows, FilterResult{Config: name, Rows: len(rows), Kept: len(rows)}
		if filtered[name] || (len(o.Configs) == 0 && name != "source") {
			kept, res = FilterRows(name, rows, o)
		}
		srcs := make([]string, len(kept))
		for i, r := range kept {
			srcs[i] = filepath.Join(src, name, filepath.FromSlash(r.FileName))
		}
		if _, _, err := PublishConfig(dst, name, kept, srcs); err != nil {
			return nil, err
		}
		results = append(results, res)
		card.Configs = append(card.Configs, CardConfig{Name: name, Rows: kept})
	}
	rule := ""
	if o.MinScore != nil {
		rule = fmt.Sprintf("rows with a Long-CLIP score of at least %g", *o.MinScore)
	} else {
		rule = fmt.Sprintf("the rows above the bottom %g%% of each configuration's Long-CLIP scores", *o.DropBottom)
	}
	var lines []string
	for _, r := range results {
		lines = append(lines, "- "+r.String())
	}
	card.Notes = append(card.Notes, fmt.Sprintf("This is a filtered copy of another synth dataset (`synth filter`): it keeps %s; rows without a score were dropped. The evaluation of the unfiltered data is not repeated here.\n\n%s", rule, strings.Join(lines, "\n")))
	if _, err := WriteCard(dst, card); err != nil {
		return nil, err
	}
	if _, _, err := WriteView(dst, title); err != nil {
		return nil, err
	}
	return results, nil
}

func absPath(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return filepath.Clean(a)
}
