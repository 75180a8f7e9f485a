package eval

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"synth/internal/atomicfile"
)

// Report is everything an evaluation found; report.json is its JSON form.
type Report struct {
	Params   Params          `json:"params"`
	Model    ModelInfo       `json:"model"`
	Datasets []DatasetReport `json:"datasets"` // the first is the reference
	// Histogram bins shared by every dataset's same and diff counts.
	Histogram Histogram `json:"histogram"`
	// Warnings about the inputs, e.g. texts Long-CLIP cannot read (every dataset's).
	Warnings []string `json:"warnings,omitempty"`
	// Fingerprint and Version identify what made the report (set by synth pipeline:
	// the model's hash, every parameter and synth's version; see docs/provenance.md).
	Fingerprint string `json:"fingerprint,omitempty"`
	Version     string `json:"version,omitempty"`
}

// Params are the exact parameters of the run.
type Params struct {
	Products         int    `json:"products"`
	ImagesPerProduct int    `json:"images_per_product"`
	Seed             uint64 `json:"seed"`
	Bootstrap        int    `json:"bootstrap_replicates"`
	Strict           bool   `json:"strict"`
	Sampler          string `json:"sampler"`
}

// DatasetReport is one dataset's results.
type DatasetReport struct {
	Name           string `json:"name"`
	Manifest       string `json:"manifest"`
	ManifestSHA256 string `json:"manifest_sha256"`
	Products       int    `json:"products_in_manifest"`
	Eligible       int    `json:"eligible"`
	Ineligible     struct {
		FewImages int `json:"too_few_images"`
		NoText    int `json:"no_text"`
		// Products lists every ineligible product with its reason, in manifest order.
		Products []Excluded `json:"products"`
	} `json:"ineligible"`
	Requested int      `json:"requested"`
	Used      int      `json:"used"`
	Notes     []string `json:"notes,omitempty"`
	// Scripts are the writing systems of the eligible texts; Warnings say when they are
	// mostly not the Latin script Long-CLIP's English tokenizer reads.
	Scripts  Scripts          `json:"scripts"`
	Warnings []string         `json:"warnings,omitempty"`
	Excluded []Excluded       `json:"excluded"`
	Sampled  []SampledProduct `json:"sampled"`

	// The paper's Table 1: cos(I_pk, T_p) and cos(I_pk, T_q), q != p.
	Same MeanStat `json:"same"`
	Diff MeanStat `json:"diff"`
	// AUC is P(same > diff), ties counting 1/2.
	AUC    float64 `json:"auc"`
	Recall struct {
		ImageToText Recall `json:"image_to_text"`
		TextToImage Recall `json:"text_to_image"`
	} `json:"recall"`
	ImageImage struct {
		Same *Summary `json:"same"` // null with one image per product
		Diff Summary  `json:"diff"`
	} `json:"image_image"`
	VsReference *Distances `json:"vs_reference,omitempty"` // absent for the reference
	// Counts per Report.Histogram bin.
	HistogramSame []int `json:"histogram_same"`
	HistogramDiff []int `json:"histogram_diff"`

	Embedding EmbeddingStats `json:"embedding"`
	Seconds   struct {
		Embed   float64 `json:"embed"`
		Analyze float64 `json:"analyze"`
	} `json:"seconds"`
}

// MeanStat is a Summary with a bootstrap 95% interval of the mean.
type MeanStat struct {
	Summary
	CI95 Interval `json:"ci95"`
}

// Excluded is a product left out, and why: a sampled one that failed to embed
// (DatasetReport.Excluded), or one the protocol cannot use (Ineligible.Products).
type Excluded struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

// SampledProduct is a product in the sample and the images chosen from it.
type SampledProduct struct {
	ID     string   `json:"id"`
	Images []string `json:"images"`
}

// Distances compare a dataset's distributions with the reference's.
type Distances struct {
	Reference string   `json:"reference"`
	Same      Distance `json:"same"`
	Diff      Distance `json:"diff"`
}

// Distance between two empirical distributions.
type Distance struct {
	KS float64 `json:"ks"` // Kolmogorov-Smirnov statistic
	W1 float64 `json:"w1"` // Wasserstein-1 distance
}

// EmbeddingStats counts the inputs embedded and those found in the cache.
type EmbeddingStats struct {
	ImagesEmbedded int `json:"images_embedded"`
	ImagesCached   int `json:"images_cached"`
	TextsEmbedded  int `json:"texts_embedded"`
	TextsCached    int `json:"texts_cached"`
}

// Files written by WriteFiles.
const (
	ReportMarkdown = "report.md"
	ReportJSON     = "report.json"
	SimilarityPNG  = "similarity.png"
)

// WriteFiles writes report.md, report.json and similarity.png into dir, creating it.
// Each file is written to a temporary name and renamed, so a reader never sees half.
func (r *Report) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("eval: encode report: %w", err)
	}
	png, err := r.plot()
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
	}{
		{ReportJSON, append(js, '\n')},
		{ReportMarkdown, []byte(r.Markdown())},
		{SimilarityPNG, png},
	} {
		if err := atomicfile.WriteFile(filepath.Join(dir, f.name), f.data); err != nil {
			return fmt.Errorf("eval: %w", err)
		}
	}
	return nil
}

// maxExcludedListed bounds the products listed per section of report.md; report.json has
// them all.
const maxExcludedListed = 50

// Markdown renders the report: Table 1 laid out like the paper's, then what the paper
// left out.
func (r *Report) Markdown() string {
	var b bytes.Buffer
	p := r.Params
	fmt.Fprintf(&b, "# Image-text similarity (Long-CLIP protocol, Table 1)\n\n")
	fmt.Fprintf(&b, "%d products per dataset (those with >= %d images and a text), %d images each, seed %d; model %s (sha256 %s).\n\n",
		p.Products, max(2, p.ImagesPerProduct), p.ImagesPerProduct, p.Seed, r.Model.Name, short(r.Model.SHA256))
	if len(r.Warnings) > 0 {
		fmt.Fprintf(&b, "## Warnings\n\n")
		for _, w := range r.Warnings {
			fmt.Fprintf(&b, "- **warning**: %s.\n", oneLine(w))
		}
		fmt.Fprintln(&b)
	}

	fmt.Fprintf(&b, "## Table 1\n\n")
	fmt.Fprintf(&b, "| Dataset | Same product: mean | Same product: variance | Different product: mean | Different product: variance |\n")
	fmt.Fprintf(&b, "|---|---:|---:|---:|---:|\n")
	for _, d := range r.Datasets {
		fmt.Fprintf(&b, "| %s | %.4f | %.6f | %.4f | %.6f |\n", mdCell(d.Name), d.Same.Mean, d.Same.Var, d.Diff.Mean, d.Diff.Var)
	}
	fmt.Fprintf(&b, "\nCosine similarity of L2-normalised embeddings; same = cos(image, its product's text), "+
		"different = cos(image, another sampled product's text); variance is the population variance.\n")

	var notes []string
	for _, d := range r.Datasets {
		for _, n := range d.Notes {
			notes = append(notes, fmt.Sprintf("**%s**: %s.", d.Name, n))
		}
	}
	if len(notes) > 0 {
		fmt.Fprintf(&b, "\n%s\n", strings.Join(notes, "\n"))
	}

	fmt.Fprintf(&b, "\n## Counts\n\n")
	fmt.Fprintf(&b, "| Dataset | products used / requested | eligible / in manifest | excluded | same values | different values |\n")
	fmt.Fprintf(&b, "|---|---:|---:|---:|---:|---:|\n")
	for _, d := range r.Datasets {
		fmt.Fprintf(&b, "| %s | %d / %d | %d / %d | %d | %d | %d |\n", mdCell(d.Name), d.Used, d.Requested,
			d.Eligible, d.Products, len(d.Excluded), d.Same.Count, d.Diff.Count)
	}

	fmt.Fprintf(&b, "\n## Spread of the means\n\n")
	fmt.Fprintf(&b, "Bootstrap: %d replicates resampling products, percentile 95%% intervals.\n\n", p.Bootstrap)
	fmt.Fprintf(&b, "| Dataset | same: std | same: mean 95%% CI | different: std | different: mean 95%% CI | same - different |\n")
	fmt.Fprintf(&b, "|---|---:|---:|---:|---:|---:|\n")
	for _, d := range r.Datasets {
		fmt.Fprintf(&b, "| %s | %.4f | [%.4f, %.4f] | %.4f | [%.4f, %.4f] | %+.4f |\n", mdCell(d.Name),
			d.Same.Std, d.Same.CI95.Low, d.Same.CI95.High, d.Diff.Std, d.Diff.CI95.Low, d.Diff.CI95.High,
			d.Same.Mean-d.Diff.Mean)
	}

	fmt.Fprintf(&b, "\n## Separation and retrieval\n\n")
	fmt.Fprintf(&b, "AUC = P(same > different), ties 1/2 (0.5 = no separation). Recall@K among the sampled products: "+
		"image->text ranks the product's text among all sampled texts; text->image ranks the product's images among all sampled images; ties count against.\n\n")
	fmt.Fprintf(&b, "| Dataset | AUC | i->t R@1 | i->t R@5 | i->t R@10 | t->i R@1 | t->i R@5 | t->i R@10 |\n")
	fmt.Fprintf(&b, "|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, d := range r.Datasets {
		it, ti := d.Recall.ImageToText, d.Recall.TextToImage
		fmt.Fprintf(&b, "| %s | %.4f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f |\n", mdCell(d.Name), d.AUC,
			it.At1, it.At5, it.At10, ti.At1, ti.At5, ti.At10)
	}
	if len(r.Datasets) > 0 {
		n := r.Datasets[0].Used
		fmt.Fprintf(&b, "\nChance image->text recall@K is K/n (%.4f at K = 1 for n = %d).\n", 1/float64(n), n)
	}

	fmt.Fprintf(&b, "\n## Image-image similarity\n\n")
	fmt.Fprintf(&b, "| Dataset | same product: mean | same product: variance | different product: mean | different product: variance |\n")
	fmt.Fprintf(&b, "|---|---:|---:|---:|---:|\n")
	for _, d := range r.Datasets {
		same := "| - | - "
		if s := d.ImageImage.Same; s != nil {
			same = fmt.Sprintf("| %.4f | %.6f ", s.Mean, s.Var)
		}
		fmt.Fprintf(&b, "| %s %s| %.4f | %.6f |\n", mdCell(d.Name), same, d.ImageImage.Diff.Mean, d.ImageImage.Diff.Var)
	}

	if len(r.Datasets) > 1 {
		fmt.Fprintf(&b, "\n## Distributions against the reference (%s)\n\n", r.Datasets[0].Name)
		fmt.Fprintf(&b, "Kolmogorov-Smirnov statistic (0 = same distribution, 1 = disjoint) and Wasserstein-1 distance (in cosine units).\n\n")
		fmt.Fprintf(&b, "| Dataset | same: KS | same: W1 | different: KS | different: W1 |\n")
		fmt.Fprintf(&b, "|---|---:|---:|---:|---:|\n")
		for _, d := range r.Datasets[1:] {
			v := d.VsReference
			fmt.Fprintf(&b, "| %s | %.4f | %.4f | %.4f | %.4f |\n", mdCell(d.Name), v.Same.KS, v.Same.W1, v.Diff.KS, v.Diff.W1)
		}
	}

	fmt.Fprintf(&b, "\n## Histograms\n\n![same and different product similarity per dataset](%s)\n", SimilarityPNG)

	list := func(title string, xs []Excluded) {
		if len(xs) == 0 {
			return
		}
		fmt.Fprintf(&b, "\n## %s (%d)\n\n", title, len(xs))
		for i, x := range xs {
			if i == maxExcludedListed {
				fmt.Fprintf(&b, "- ... %d more in %s\n", len(xs)-i, ReportJSON)
				break
			}
			fmt.Fprintf(&b, "- `%s`: %s\n", mdCode(x.ID), oneLine(x.Reason))
		}
	}
	for _, d := range r.Datasets {
		list("Excluded from "+d.Name, d.Excluded)
		list("Not eligible in "+d.Name, d.Ineligible.Products)
	}

	fmt.Fprintf(&b, "\n## Parameters\n\n")
	fmt.Fprintf(&b, "- products %d, images per product %d, seed %d, bootstrap replicates %d, strict %v\n",
		p.Products, p.ImagesPerProduct, p.Seed, p.Bootstrap, p.Strict)
	fmt.Fprintf(&b, "- sampler: %s\n", p.Sampler)
	file := ""
	if r.Model.File != "" {
		file = ", file " + r.Model.File
	}
	fmt.Fprintf(&b, "- model: %s%s, sha256 %s, width %d, image preprocessing %q, text preprocessing %q\n", r.Model.Name, file,
		r.Model.SHA256, r.Model.Dim, r.Model.ImagePreprocessing, r.Model.TextPreprocessing)
	for _, d := range r.Datasets {
		e := d.Embedding
		fmt.Fprintf(&b, "- %s: %s, sha256 %s; images embedded %d, from cache %d; texts embedded %d, from cache %d\n",
			d.Name, d.Manifest, d.ManifestSHA256, e.ImagesEmbedded, e.ImagesCached, e.TextsEmbedded, e.TextsCached)
	}
	fmt.Fprintf(&b, "\nSampled product ids and images, and every number above at full precision: %s.\n", ReportJSON)
	return b.String()
}

func short(hash string) string {
	if len(hash) > 12 {
		return hash[:12]
	}
	return hash
}

// mdCell keeps a name from breaking a Markdown table.
func mdCell(s string) string {
	return strings.ReplaceAll(oneLine(s), "|", "\\|")
}

// mdCode keeps an id inside its code span.
func mdCode(s string) string { return strings.ReplaceAll(oneLine(s), "`", "'") }

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
