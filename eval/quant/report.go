package quant

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"synth/eval"
	"synth/internal/atomicfile"
)

// Roles of the models a Report compares, as `synth bench quant` names their flags.
const (
	RoleCaption = "caption" // BLIP-2
	RoleRewrite = "rewrite" // Llama through llama.cpp
	RoleEval    = "eval"    // Long-CLIP
)

// Report is what a quantization comparison found; report.json is its JSON form.
type Report struct {
	Sample       string   `json:"sample"`
	SampleSHA256 string   `json:"sample_sha256"`
	Products     int      `json:"products"` // n asked for; each model says how many items it used
	Levels       []string `json:"levels"`   // as asked for
	Device       string   `json:"device"`   // where the vision models ran
	Threads      int      `json:"threads"`
	Seconds      float64  `json:"seconds"`
	Models       []Model  `json:"models"`
	Notes        []string `json:"notes,omitempty"`
}

// Model is one model's comparison: its reference and every level asked for.
type Model struct {
	Role  string `json:"role"` // RoleCaption, RoleRewrite or RoleEval
	Name  string `json:"name"`
	Path  string `json:"path"`
	Items int    `json:"items"` // images, prompts or products measured
	// What the items are, e.g. "images, one per product" (for the report's text).
	ItemsAre  string   `json:"items_are"`
	Reference Level    `json:"reference"`
	Levels    []Level  `json:"levels"`
	Seconds   float64  `json:"seconds"` // the whole comparison of this model
	Notes     []string `json:"notes,omitempty"`
}

// Level is a model at one quantization level (or the reference). A level the model could
// not take has Skipped set and nothing else measured.
type Level struct {
	Level   string `json:"level"`
	Skipped string `json:"skipped,omitempty"`
	File    string `json:"file,omitempty"`
	// Stored counts the tensors of the file by stored type ("q4_0": 96, "f32": 120), when
	// synth wrote it.
	Stored map[string]int `json:"stored_tensors,omitempty"`
	// RunsAs is the type the weights have in memory when it is not the stored one (a type
	// the kernels do not read is dequantized at load).
	RunsAs    string              `json:"runs_as,omitempty"`
	Cost      *Cost               `json:"cost,omitempty"`
	NextToken *NextToken          `json:"next_token,omitempty"` // caption, rewrite
	Text      *TextAgreement      `json:"text,omitempty"`       // caption, rewrite
	Coverage  *Coverage           `json:"coverage,omitempty"`   // rewrite
	Embedding *EmbeddingAgreement `json:"embedding,omitempty"`  // eval
}

// Cost is what a level costs to store, load and run.
type Cost struct {
	FileBytes      int64   `json:"file_bytes"`
	ConvertSeconds float64 `json:"convert_seconds,omitempty"` // writing the level's file
	LoadSeconds    float64 `json:"load_seconds"`
	// Speed is the work's rate in SpeedUnit over Seconds of work after loading.
	Speed     float64 `json:"speed"`
	SpeedUnit string  `json:"speed_unit"`
	Seconds   float64 `json:"seconds"`
	// PeakRSSBytes is the process's peak resident memory from before the load to the end
	// of the work (0 where the OS does not say).
	PeakRSSBytes uint64 `json:"peak_rss_bytes"`
	// DeviceBytes is the device memory in use at the end of the work beyond what was in
	// use before the load (GPU devices only).
	DeviceBytes uint64 `json:"device_bytes,omitempty"`
}

// TextAgreement compares a level's greedy outputs with the reference's.
type TextAgreement struct {
	Items      int     `json:"items"`
	ExactMatch float64 `json:"exact_match"` // share of outputs with the reference's exact tokens
	ChrF       float64 `json:"chrf"`        // corpus chrF of the texts against the reference's (ChrF)
}

// Coverage is the keyword coverage (llm's) of a level's rewrites next to the reference's.
type Coverage struct {
	Products  int     `json:"products"` // products with a keyword coverage can be computed for
	Reference float64 `json:"reference"`
	Level     float64 `json:"level"`
	Delta     float64 `json:"delta"` // Level - Reference
}

// CosineStats summarise the cosines of a level's embeddings to the reference's.
type CosineStats struct {
	Count int     `json:"count"`
	Mean  float64 `json:"mean"`
	Min   float64 `json:"min"`
}

// Change is one number of the reference's evaluation next to the level's.
type Change struct {
	Name      string  `json:"name"`
	Reference float64 `json:"reference"`
	Level     float64 `json:"level"`
	Delta     float64 `json:"delta"` // Level - Reference
}

// EmbeddingAgreement compares an embedding model's outputs with the reference's.
type EmbeddingAgreement struct {
	Images CosineStats `json:"image_cosine"`
	Texts  CosineStats `json:"text_cosine"`
	All    CosineStats `json:"cosine"` // images and texts together
	// Table1 is every number of the paper's Table 1 (and AUC and recall@1) from the
	// reference's evaluation and the level's (package eval), on the same sample.
	Table1 []Change `json:"table1"`
	// Records is the number of per-record scores (same-product cosines, one per sampled
	// image) ranked; Spearman and KendallTauB their rank agreement with the reference's.
	Records     int `json:"records"`
	Spearman    Num `json:"spearman_rho"`
	KendallTauB Num `json:"kendall_tau_b"`
}

// Num is a float64 that is written to JSON as null when it is not finite (a rank
// correlation of tied scores, a divergence to a zero probability).
type Num float64

// MarshalJSON writes n, or null when it is NaN or infinite.
func (n Num) MarshalJSON() ([]byte, error) {
	if math.IsNaN(float64(n)) || math.IsInf(float64(n), 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, float64(n), 'g', -1, 64), nil
}

// UnmarshalJSON reads a number, or null as NaN.
func (n *Num) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = Num(math.NaN())
		return nil
	}
	v, err := strconv.ParseFloat(string(b), 64)
	*n = Num(v)
	return err
}

// Table1Changes lists the paper's Table 1 numbers (same and different product: mean and
// population variance), AUC and recall@1 both ways, of a level's evaluation next to the
// reference's.
func Table1Changes(ref, level *eval.DatasetReport) []Change {
	pairs := []struct {
		name string
		r, l float64
	}{
		{"same: mean", ref.Same.Mean, level.Same.Mean},
		{"same: variance", ref.Same.Var, level.Same.Var},
		{"different: mean", ref.Diff.Mean, level.Diff.Mean},
		{"different: variance", ref.Diff.Var, level.Diff.Var},
		{"AUC", ref.AUC, level.AUC},
		{"image->text R@1", ref.Recall.ImageToText.At1, level.Recall.ImageToText.At1},
		{"text->image R@1", ref.Recall.TextToImage.At1, level.Recall.TextToImage.At1},
	}
	out := make([]Change, len(pairs))
	for i, p := range pairs {
		out[i] = Change{Name: p.name, Reference: p.r, Level: p.l, Delta: p.l - p.r}
	}
	return out
}

// Fidelity is the number the Pareto plot puts on its y axis for a level of a model with
// this role (1 for a perfect copy of the reference), and its name.
func Fidelity(role string, l *Level) (float64, bool) {
	switch {
	case role == RoleEval && l.Embedding != nil:
		return l.Embedding.All.Mean, true
	case l.NextToken != nil && l.NextToken.Positions > 0:
		return l.NextToken.Top1, true
	}
	return 0, false
}

// FidelityName names Fidelity's number for a role.
func FidelityName(role string) string {
	if role == RoleEval {
		return "mean cosine to the reference's embeddings"
	}
	return "teacher-forced top-1 agreement with the reference"
}

// Files written by WriteFiles; ParetoPNG(role) names each model's plot.
const (
	ReportMarkdown = "report.md"
	ReportJSON     = "report.json"
)

// ParetoPNG is the file name of a model's Pareto plot.
func ParetoPNG(role string) string { return "pareto-" + role + ".png" }

// WriteFiles writes report.md, report.json and one Pareto plot per model into dir,
// creating it; each file is written whole or not at all.
func (r *Report) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("quant: %w", err)
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("quant: encode report: %w", err)
	}
	files := map[string][]byte{ReportJSON: append(js, '\n'), ReportMarkdown: []byte(r.Markdown())}
	for i := range r.Models {
		m := &r.Models[i]
		png, err := m.paretoPlot()
		if err != nil {
			return err
		}
		files[ParetoPNG(m.Role)] = png
	}
	for name, data := range files {
		if err := atomicfile.WriteFile(filepath.Join(dir, name), data); err != nil {
			return fmt.Errorf("quant: %w", err)
		}
	}
	return nil
}

// Markdown renders the report: per model a table of costs and one of fidelity, the
// levels not measured and why, and the definitions.
func (r *Report) Markdown() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Quantization levels against their reference\n\n")
	fmt.Fprintf(&b, "Sample %s (sha256 %s), up to %d products; levels %s; vision models on %s, threads %d; %.1f s in all.\n",
		r.Sample, short(r.SampleSHA256), r.Products, strings.Join(r.Levels, ", "), r.Device, r.Threads, r.Seconds)
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "\n- %s", oneLine(n))
	}
	if len(r.Notes) > 0 {
		fmt.Fprintln(&b)
	}
	for i := range r.Models {
		r.Models[i].markdown(&b)
	}
	fmt.Fprintf(&b, "\n## Definitions\n\n")
	fmt.Fprintf(&b, "- **reference**: the model as given (float weights computed in f32); every level is compared with it on the same items.\n")
	fmt.Fprintf(&b, "- **KL**: KL(P_ref || P_level) in nats per position, teacher-forced on the reference's greedy output (prompt, then its tokens); "+
		"**top-1**: share of those positions where both pick the same most likely token.\n")
	fmt.Fprintf(&b, "- **exact**: share of the level's greedy outputs with exactly the reference's tokens; "+
		"**chrF**: corpus chrF (character 1-6-grams without white space, beta 2, precision and recall averaged over the orders as in Popović 2015) of the level's texts against the reference's.\n")
	fmt.Fprintf(&b, "- **cosine**: of each embedding to the reference's embedding of the same input; "+
		"**Spearman** (rho, ties at average ranks) and **Kendall** (tau-b): rank agreement of the per-record scores, the cosine of each sampled image with its product's text.\n")
	fmt.Fprintf(&b, "- **peak RSS**: the process's peak resident memory from before the load to the end of the level's work (reset per level).\n")
	return b.String()
}

func (m *Model) markdown(b *bytes.Buffer) {
	fmt.Fprintf(b, "\n## %s: %s\n\n", m.Role, m.Name)
	fmt.Fprintf(b, "`%s`; %d %s; %.1f s.\n\n", m.Path, m.Items, m.ItemsAre, m.Seconds)
	rows := append([]Level{m.Reference}, m.Levels...)
	fmt.Fprintf(b, "| level | stored | file MB | load s | speed | peak RSS MB |\n|---|---|---:|---:|---:|---:|\n")
	for i, l := range rows {
		if l.Skipped != "" {
			continue
		}
		name := l.Level
		if i == 0 {
			name += " (reference)"
		}
		c := l.Cost
		fmt.Fprintf(b, "| %s | %s | %.2f | %.2f | %.1f %s | %.0f |\n", name, storedCell(l), mb(c.FileBytes), c.LoadSeconds, c.Speed, c.SpeedUnit, mb(int64(c.PeakRSSBytes)))
	}
	fmt.Fprintln(b)
	switch m.Role {
	case RoleEval:
		fmt.Fprintf(b, "| level | image cosine mean | image cosine min | text cosine mean | text cosine min | Spearman | Kendall |\n|---|---:|---:|---:|---:|---:|---:|\n")
		for _, l := range m.Levels {
			if e := l.Embedding; e != nil {
				fmt.Fprintf(b, "| %s | %.6f | %.6f | %.6f | %.6f | %s | %s |\n", l.Level, e.Images.Mean, e.Images.Min, e.Texts.Mean, e.Texts.Min, num(e.Spearman), num(e.KendallTauB))
			}
		}
		var header []string
		for _, l := range m.Levels {
			if l.Embedding != nil {
				for _, c := range l.Embedding.Table1 {
					header = append(header, c.Name)
				}
				break
			}
		}
		if header != nil {
			fmt.Fprintf(b, "\nTable 1 and retrieval, change from the reference:\n\n| level | %s |\n|---|%s\n", strings.Join(header, " | "), strings.Repeat("---:|", len(header)))
			fmt.Fprintf(b, "| reference |")
			for _, l := range m.Levels {
				if l.Embedding != nil {
					for _, c := range l.Embedding.Table1 {
						fmt.Fprintf(b, " %.6f |", c.Reference)
					}
					break
				}
			}
			fmt.Fprintln(b)
			for _, l := range m.Levels {
				if e := l.Embedding; e != nil {
					fmt.Fprintf(b, "| %s |", l.Level)
					for _, c := range e.Table1 {
						fmt.Fprintf(b, " %+.6f |", c.Delta)
					}
					fmt.Fprintln(b)
				}
			}
		}
	default:
		cov := m.Role == RoleRewrite
		fmt.Fprintf(b, "| level | positions | KL mean | KL max | top-1 | exact | chrF |")
		if cov {
			fmt.Fprintf(b, " coverage | coverage change |")
		}
		fmt.Fprintf(b, "\n|---|---:|---:|---:|---:|---:|---:|")
		if cov {
			fmt.Fprintf(b, "---:|---:|")
		}
		fmt.Fprintln(b)
		for _, l := range m.Levels {
			if l.NextToken == nil {
				continue
			}
			t, x := l.NextToken, l.Text
			fmt.Fprintf(b, "| %s | %d | %s | %s | %.4f | %.3f | %.2f |", l.Level, t.Positions, num(t.KLMean), num(t.KLMax), t.Top1, x.ExactMatch, x.ChrF)
			if cov && l.Coverage != nil {
				fmt.Fprintf(b, " %.4f | %+.4f |", l.Coverage.Level, l.Coverage.Delta)
			}
			fmt.Fprintln(b)
		}
		if cov {
			for _, l := range m.Levels {
				if l.Coverage != nil {
					fmt.Fprintf(b, "\nThe reference's keyword coverage: %.4f over %d products.\n", l.Coverage.Reference, l.Coverage.Products)
					break
				}
			}
		}
	}
	var skipped []string
	for _, l := range m.Levels {
		if l.Skipped != "" {
			skipped = append(skipped, fmt.Sprintf("- **%s**: %s", l.Level, oneLine(l.Skipped)))
		}
		if l.RunsAs != "" {
			skipped = append(skipped, fmt.Sprintf("- **%s** runs as %s in memory (the kernels do not read it as stored).", l.Level, l.RunsAs))
		}
	}
	if len(skipped) > 0 {
		fmt.Fprintf(b, "\nLevels not measured or measured with a caveat:\n\n%s\n", strings.Join(skipped, "\n"))
	}
	for _, n := range m.Notes {
		fmt.Fprintf(b, "\n%s\n", oneLine(n))
	}
	fmt.Fprintf(b, "\n![%s: size and speed against %s](%s)\n", m.Role, FidelityName(m.Role), ParetoPNG(m.Role))
}

func storedCell(l Level) string {
	if len(l.Stored) == 0 {
		return l.Level
	}
	var parts []string
	for _, k := range sortedKeys(l.Stored) {
		parts = append(parts, fmt.Sprintf("%s x%d", k, l.Stored[k]))
	}
	return strings.Join(parts, ", ")
}

func num(n Num) string {
	if math.IsNaN(float64(n)) || math.IsInf(float64(n), 0) {
		return fmt.Sprint(float64(n))
	}
	return fmt.Sprintf("%.6g", float64(n))
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

func short(hash string) string {
	if len(hash) > 12 {
		return hash[:12]
	}
	return hash
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
