package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"synth/internal/fixtures"
)

// TestEvalRecomputedFromEmbed runs `synth eval` on a tiny manifest with every Long-CLIP
// fixture model and checks the report's Table 1 numbers against a recomputation from
// `synth embed` output, done here with plain float64 loops.
func TestEvalRecomputedFromEmbed(t *testing.T) {
	images := fixtures.Dir(t, "longclip/preprocess")
	vocab := filepath.Join(fixtures.Root(), "longclip", "bpe_simple_vocab_16e6.txt.gz")
	// the preprocessing fixture's images, as its manifest lists them: 3 products x 2
	var pm struct {
		Images []struct {
			File string `json:"file"`
		} `json:"images"`
	}
	if raw, err := os.ReadFile(filepath.Join(images, "manifest.json")); err != nil || json.Unmarshal(raw, &pm) != nil {
		t.Skipf("no readable manifest.json in %s: %v", images, err)
	}
	var files []string
	for _, im := range pm.Images {
		files = append(files, im.File)
	}
	if len(files) < 6 {
		t.Skipf("%s lists %d images; the test needs 6 (3 products of 2)", images, len(files))
	}
	texts := [][]string{
		{"blue jeans, cotton, slim fit", "a red dress with white polka dots", "한글 상품 설명: 오버핏 티셔츠"},
		{"a striped linen shirt", "black leather ankle boots with a block heel", "wool coat"},
	}
	for _, set := range fixtures.Sets(t, "longclip", "model.pt") {
		t.Run(filepath.Base(set), func(t *testing.T) {
			dir := t.TempDir()
			var manifests []string
			for d, ts := range texts {
				var lines []string
				for p, text := range ts {
					imgs := []string{filepath.Join(images, files[2*p]), filepath.Join(images, files[2*p+1])}
					js, _ := json.Marshal(map[string]any{"id": fmt.Sprintf("p%d", p), "images": imgs, "text": text})
					lines = append(lines, string(js))
				}
				m := filepath.Join(dir, fmt.Sprintf("set%d.jsonl", d))
				os.WriteFile(m, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
				manifests = append(manifests, m)
			}
			out := filepath.Join(dir, "eval")
			model := filepath.Join(set, "model.pt")
			args := []string{"eval", "--model", model, "--vocab", vocab, "--products", "3", "--out", out,
				"--cache", filepath.Join(dir, "cache"), "--data", "real=" + manifests[0], "--data", "synthetic=" + manifests[1]}
			if code, _, errOut := runCLI(t, args...); code != exitOK {
				t.Fatalf("eval: exit %d\n%s", code, errOut)
			}
			var rep struct {
				Datasets []struct {
					Name       string `json:"name"`
					Used       int    `json:"used"`
					Same, Diff struct {
						Count int     `json:"count"`
						Mean  float64 `json:"mean"`
						Var   float64 `json:"var"`
					}
					AUC         float64         `json:"auc"`
					VsReference json.RawMessage `json:"vs_reference"`
				} `json:"datasets"`
			}
			data, err := os.ReadFile(filepath.Join(out, "report.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(data, &rep); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{"report.md", "similarity.png"} {
				if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
					t.Fatalf("%s missing or empty", f)
				}
			}
			if len(rep.Datasets) != 2 || rep.Datasets[1].VsReference == nil {
				t.Fatalf("report datasets: %+v", rep.Datasets)
			}
			for d, m := range manifests {
				imgs := embedJSONL(t, dir, "--model", model, "--vocab", vocab, "--images", m)
				txts := embedJSONL(t, dir, "--model", model, "--vocab", vocab, "--texts", m)
				var same, diff []float64
				for p := 0; p < 3; p++ {
					for k := 0; k < 2; k++ {
						img := imgs[fmt.Sprintf("p%d/%s", p, filepath.Join(images, files[2*p+k]))]
						for q := 0; q < 3; q++ {
							c := cosine(img, txts[fmt.Sprintf("p%d", q)])
							if q == p {
								same = append(same, c)
							} else {
								diff = append(diff, c)
							}
						}
					}
				}
				got := rep.Datasets[d]
				if got.Used != 3 || got.Same.Count != 6 || got.Diff.Count != 12 {
					t.Fatalf("%s: used %d, counts %d/%d; want 3 products, 6 same, 12 diff", got.Name, got.Used, got.Same.Count, got.Diff.Count)
				}
				for _, c := range []struct {
					what      string
					got, want float64
				}{
					{"same mean", got.Same.Mean, mean(same)}, {"same var", got.Same.Var, variance(same)},
					{"diff mean", got.Diff.Mean, mean(diff)}, {"diff var", got.Diff.Var, variance(diff)},
					{"auc", got.AUC, auc(same, diff)},
				} {
					// the report computes from float32 embeddings; 1e-5 covers that rounding
					if math.Abs(c.got-c.want) > 1e-5 {
						t.Errorf("%s %s = %.7f, recomputed %.7f", got.Name, c.what, c.got, c.want)
					}
				}
			}
			// A second run finds every embedding in the cache and gives the same numbers.
			os.RemoveAll(out)
			if code, _, errOut := runCLI(t, args...); code != exitOK {
				t.Fatalf("second eval: exit %d\n%s", code, errOut)
			}
			var second struct {
				Datasets []struct {
					Embedding struct {
						ImagesEmbedded int `json:"images_embedded"`
						ImagesCached   int `json:"images_cached"`
						TextsEmbedded  int `json:"texts_embedded"`
						TextsCached    int `json:"texts_cached"`
					} `json:"embedding"`
				} `json:"datasets"`
			}
			again, _ := os.ReadFile(filepath.Join(out, "report.json"))
			if err := json.Unmarshal(again, &second); err != nil {
				t.Fatal(err)
			}
			for i, d := range second.Datasets {
				e := d.Embedding
				if e.ImagesEmbedded != 0 || e.TextsEmbedded != 0 || e.ImagesCached != 6 || e.TextsCached != 3 {
					t.Errorf("second run, dataset %d: %+v; want every embedding from the cache", i, e)
				}
			}
			if string(again) == "" || !strings.Contains(string(again), `"used": 3`) && !strings.Contains(string(again), `"used":3`) {
				t.Errorf("second report lost its results")
			}
		})
	}
}

// embedJSONL runs synth embed to a .jsonl file and returns the embeddings by "id/image"
// (images) or "id" (texts).
func embedJSONL(t *testing.T, dir string, args ...string) map[string][]float64 {
	t.Helper()
	out := filepath.Join(dir, fmt.Sprintf("embed-%d.jsonl", len(args)+int(randSuffix())))
	if code, _, errOut := runCLI(t, append(append([]string{"embed"}, args...), "--out", out)...); code != exitOK {
		t.Fatalf("embed %v: exit %d\n%s", args, code, errOut)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res := map[string][]float64{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var rec struct {
			ID        string    `json:"id"`
			Image     string    `json:"image"`
			Embedding []float64 `json:"embedding"`
			Error     string    `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Error != "" {
			t.Fatalf("embed error for %s %s: %s", rec.ID, rec.Image, rec.Error)
		}
		key := rec.ID
		if rec.Image != "" {
			key += "/" + rec.Image
		}
		res[key] = rec.Embedding
	}
	return res
}

var suffix int

func randSuffix() int { suffix++; return suffix }

func cosine(a, b []float64) float64 {
	if len(a) == 0 || len(a) != len(b) {
		panic(fmt.Sprintf("cosine of vectors of length %d and %d", len(a), len(b)))
	}
	var ab, aa, bb float64
	for i := range a {
		ab += a[i] * b[i]
		aa += a[i] * a[i]
		bb += b[i] * b[i]
	}
	return ab / math.Sqrt(aa*bb)
}

func mean(x []float64) float64 {
	s := 0.0
	for _, v := range x {
		s += v
	}
	return s / float64(len(x))
}

func variance(x []float64) float64 {
	m, s := mean(x), 0.0
	for _, v := range x {
		s += (v - m) * (v - m)
	}
	return s / float64(len(x))
}

// auc is P(same > diff) with ties counting 1/2, over every pair.
func auc(same, diff []float64) float64 {
	s := 0.0
	for _, a := range same {
		for _, b := range diff {
			switch {
			case a > b:
				s++
			case a == b:
				s += 0.5
			}
		}
	}
	return s / float64(len(same)*len(diff))
}
