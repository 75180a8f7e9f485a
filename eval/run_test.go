package eval

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"gonum.org/v1/gonum/stat"

	"synth/dataset/embcache"
	"synth/internal/faults"
)

// fakeDim is Long-CLIP's embedding width.
const fakeDim = 768

// fakeEmbedder is deterministic: an image file holding "product P image J" embeds to
// 0.8*dir(P) + noise(file bytes), a text "P: words" to 0.5*dir(P) + noise(text), where
// dir and noise are Gaussian vectors drawn from a hash. So same-product cosines exceed
// different-product ones, as with a real model. Files holding "corrupt" and texts
// starting with "reject" fail.
type fakeEmbedder struct {
	images, texts atomic.Int64 // inputs embedded
	cancelAfter   int64        // cancel after this many EmbedImages calls, 0: never
	calls         atomic.Int64
	cancel        context.CancelFunc
	textWeight    float64 // weight of dir(P) in texts; 0.5 when zero
}

func (f *fakeEmbedder) Model() ModelInfo {
	return ModelInfo{Name: "FAKE", SHA256: "fakehash", ImagePreprocessing: "bytes", TextPreprocessing: "text"}
}

func gaussian(label string, d int) []float64 {
	h := sha256.Sum256([]byte(label))
	r := rand.New(rand.NewPCG(binary.LittleEndian.Uint64(h[:8]), binary.LittleEndian.Uint64(h[8:16])))
	v := make([]float64, d)
	for i := range v {
		v[i] = r.NormFloat64()
	}
	return v
}

func mix(dirWeight float64, product, noise string) []float32 {
	dir, nz := gaussian("dir:"+product, fakeDim), gaussian("noise:"+noise, fakeDim)
	v := make([]float32, fakeDim)
	for i := range v {
		// Unnormalised on purpose: Run must normalise.
		v[i] = float32(3 * (dirWeight*dir[i] + nz[i]))
	}
	return v
}

func fakeImageVector(content []byte) ([]float32, error) {
	var p string
	var j int
	if _, err := fmt.Sscanf(string(content), "product %s image %d", &p, &j); err != nil {
		return nil, errors.New("decode: not an image")
	}
	return mix(0.8, p, string(content)), nil
}

func (f *fakeEmbedder) fakeTextVector(text string) ([]float32, error) {
	if strings.HasPrefix(text, "reject") {
		return nil, errors.New("tokenize: rejected")
	}
	p, _, _ := strings.Cut(text, ":")
	w := f.textWeight
	if w == 0 {
		w = 0.5
	}
	return mix(w, p, text), nil
}

func (f *fakeEmbedder) EmbedImages(ctx context.Context, paths []string) ([][]float32, []error) {
	if n := f.calls.Add(1); f.cancelAfter > 0 && n > f.cancelAfter {
		f.cancel()
	}
	vecs, errs := make([][]float32, len(paths)), make([]error, len(paths))
	for i, p := range paths {
		if err := ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		f.images.Add(1)
		b, err := os.ReadFile(p)
		if err != nil {
			errs[i] = err
			continue
		}
		vecs[i], errs[i] = fakeImageVector(b)
	}
	return vecs, errs
}

func (f *fakeEmbedder) EmbedTexts(ctx context.Context, texts []string) ([][]float32, []error) {
	vecs, errs := make([][]float32, len(texts)), make([]error, len(texts))
	for i, t := range texts {
		if err := ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		f.texts.Add(1)
		vecs[i], errs[i] = f.fakeTextVector(t)
	}
	return vecs, errs
}

// testProduct describes a manifest line and its image files.
type testProduct struct {
	id      string
	images  []string // file contents; "" means the file is missing
	text    string
	noImage bool
}

// writeDataset writes the products' image files under dir/img and the manifest
// dir/manifest.jsonl, and returns the manifest path.
func writeDataset(t testing.TB, dir string, products []testProduct) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "img"), 0o755); err != nil {
		t.Fatal(err)
	}
	var lines bytes.Buffer
	for _, p := range products {
		var names []string
		for j, content := range p.images {
			name := fmt.Sprintf("img/%s_%d.jpg", p.id, j)
			names = append(names, name)
			if content == "" {
				continue
			}
			if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(name)), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		line, _ := json.Marshal(map[string]any{"id": p.id, "images": names, "text": p.text, "lang": "en"})
		lines.Write(append(line, '\n'))
	}
	path := filepath.Join(dir, "manifest.jsonl")
	if err := os.WriteFile(path, lines.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// goodProducts returns count products with imgs images each; text(i) gives the text.
func goodProducts(prefix string, count, imgs int, text func(id string) string) []testProduct {
	var out []testProduct
	for i := range count {
		id := fmt.Sprintf("%s%03d", prefix, i)
		var images []string
		for j := range imgs {
			images = append(images, fmt.Sprintf("product %s image %d", id, j))
		}
		out = append(out, testProduct{id: id, images: images, text: text(id)})
	}
	return out
}

// sourceProducts: 40 good products with 2-4 images, plus the bad cases.
func sourceProducts() []testProduct {
	ps := goodProducts("p", 40, 2, func(id string) string { return id + ": a long description of the garment" })
	for i := range ps {
		if i%3 == 0 { // more images than k: the sampler must choose
			ps[i].images = append(ps[i].images, fmt.Sprintf("product %s image 2", ps[i].id), fmt.Sprintf("product %s image 3", ps[i].id))
		}
	}
	return append(ps,
		testProduct{id: "one-image", images: []string{"product one-image image 0"}, text: "one-image: text"},
		testProduct{id: "no-text", images: []string{"product no-text image 0", "product no-text image 1"}, text: "  "},
		testProduct{id: "missing", images: []string{"product missing image 0", ""}, text: "missing: text"},
		testProduct{id: "corrupt", images: []string{"corrupt", "corrupt"}, text: "corrupt: text"},
		testProduct{id: "rejected", images: []string{"product rejected image 0", "product rejected image 1"}, text: "reject this"},
	)
}

func runEval(t *testing.T, cfg Config, f *fakeEmbedder) *Report {
	t.Helper()
	rep, err := Run(context.Background(), cfg, f)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// recomputed holds the headline numbers computed here from the report's sample, with
// plain float64 loops and no code of the package under test.
type recomputed struct {
	same, diff []float64
	auc        float64
	r1, tr1    float64 // image->text and text->image recall@1
}

func recompute(t *testing.T, f *fakeEmbedder, manifestDir string, d DatasetReport, texts map[string]string) recomputed {
	t.Helper()
	unit := func(v []float32) []float64 {
		out := make([]float64, len(v))
		var ss float64
		for _, x := range v {
			ss += float64(x) * float64(x)
		}
		for i, x := range v {
			out[i] = float64(x) / math.Sqrt(ss)
		}
		return out
	}
	dot := func(a, b []float64) (s float64) {
		for i := range a {
			s += a[i] * b[i]
		}
		return s
	}
	var imgs [][][]float64 // [product][image]
	var txts [][]float64
	for _, s := range d.Sampled {
		var pi [][]float64
		for _, name := range s.Images {
			b, err := os.ReadFile(filepath.Join(manifestDir, name))
			if err != nil {
				t.Fatal(err)
			}
			v, err := fakeImageVector(b)
			if err != nil {
				t.Fatal(err)
			}
			pi = append(pi, unit(v))
		}
		imgs = append(imgs, pi)
		v, err := f.fakeTextVector(texts[s.ID])
		if err != nil {
			t.Fatal(err)
		}
		txts = append(txts, unit(v))
	}
	var r recomputed
	n := len(txts)
	var hits, thits int
	for p := range n {
		for _, im := range imgs[p] {
			own := dot(im, txts[p])
			rank := 0
			for q := range n {
				c := dot(im, txts[q])
				if q == p {
					r.same = append(r.same, c)
				} else {
					r.diff = append(r.diff, c)
					if c >= own {
						rank++
					}
				}
			}
			if rank == 0 {
				hits++
			}
		}
		best := math.Inf(-1)
		for _, im := range imgs[p] {
			best = math.Max(best, dot(im, txts[p]))
		}
		rank := 0
		for q := range n {
			if q == p {
				continue
			}
			for _, im := range imgs[q] {
				if dot(im, txts[p]) >= best {
					rank++
				}
			}
		}
		if rank == 0 {
			thits++
		}
	}
	var u float64
	for _, s := range r.same {
		for _, x := range r.diff {
			switch {
			case s > x:
				u++
			case s == x:
				u += 0.5
			}
		}
	}
	r.auc = u / float64(len(r.same)*len(r.diff))
	r.r1 = float64(hits) / float64(len(r.same))
	r.tr1 = float64(thits) / float64(n)
	return r
}

func textsOf(ps []testProduct) map[string]string {
	m := map[string]string{}
	for _, p := range ps {
		m[p.id] = p.text
	}
	return m
}

func TestRunEndToEnd(t *testing.T) {
	root := t.TempDir()
	src := sourceProducts()
	// The captioned set: the source's products and images with new texts; the rewritten
	// set: other products whose texts match their images less well.
	captioned := slices.Clone(src)
	for i := range captioned {
		if captioned[i].text != "reject this" && strings.TrimSpace(captioned[i].text) != "" {
			captioned[i].text = captioned[i].id + ": a generated caption"
		}
	}
	rewritten := goodProducts("r", 30, 3, func(id string) string { return id + ": rewritten from keywords" })
	srcDir, capDir, rwDir := filepath.Join(root, "src"), filepath.Join(root, "cap"), filepath.Join(root, "rw")
	cfg := Config{
		Datasets: []Dataset{
			{Name: "source", Manifest: writeDataset(t, srcDir, src)},
			{Name: "captioned", Manifest: writeDataset(t, capDir, captioned)},
			{Name: "rewritten", Manifest: writeDataset(t, rwDir, rewritten)},
		},
		Products: 40, Seed: 3, Bootstrap: 200, Batch: 7,
	}
	var progress []Progress
	cfg.Progress = func(p Progress) { progress = append(progress, p) }
	cache, err := embcache.Open(filepath.Join(root, "cache"))
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	cfg.Cache = cache
	f := &fakeEmbedder{}
	rep := runEval(t, cfg, f)

	if len(rep.Datasets) != 3 {
		t.Fatalf("%d datasets in the report", len(rep.Datasets))
	}
	s := rep.Datasets[0]
	if s.Products != 45 || s.Eligible != 43 || s.Ineligible.FewImages != 1 || s.Ineligible.NoText != 1 {
		t.Errorf("source counts: %d products, %d eligible, ineligible %+v", s.Products, s.Eligible, s.Ineligible)
	}
	// Every product left out is listed by id and reason, the ineligible ones too.
	if got := s.Ineligible.Products; len(got) != 2 || got[0].ID != "one-image" || !strings.Contains(got[0].Reason, "1 of the 2 images the protocol needs") ||
		got[1].ID != "no-text" || got[1].Reason != "no text" {
		t.Errorf("ineligible products %+v", got)
	}
	if s.Used != 40 || len(s.Sampled) != 40 || s.Same.Count != 80 || s.Diff.Count != 80*39 || len(s.Notes) != 0 {
		t.Errorf("source: used %d, sampled %d, counts %d %d, notes %q", s.Used, len(s.Sampled), s.Same.Count, s.Diff.Count, s.Notes)
	}
	if len(progress) == 0 || progress[len(progress)-1].Done != 30 || progress[0].Dataset != "source" {
		t.Errorf("progress %+v", progress)
	}
	// Every bad product is excluded with its reason, and the sampler took the next
	// products instead: 40 of the 43 eligible were used.
	wantReason := map[string]string{"missing": "img/missing_1.jpg: stat: no such file", "corrupt": "not an image", "rejected": "text: tokenize: rejected"}
	if len(s.Excluded) != len(wantReason) {
		t.Errorf("excluded %+v", s.Excluded)
	}
	for _, x := range s.Excluded {
		want, ok := wantReason[x.ID]
		if !ok || !strings.Contains(x.Reason, want) {
			t.Errorf("excluded %q: %q, want %q", x.ID, x.Reason, want)
		}
	}
	if rw := rep.Datasets[2]; rw.Used != 30 || len(rw.Notes) != 1 || !strings.Contains(rw.Notes[0], "used all 30") {
		t.Errorf("rewritten: used %d of 30, notes %q", rw.Used, rw.Notes)
	}
	checkSample(t, s, src, 2)

	for i, ps := range [][]testProduct{src, captioned, rewritten} {
		d := rep.Datasets[i]
		dir := filepath.Dir(cfg.Datasets[i].Manifest)
		r := recompute(t, f, dir, d, textsOf(ps))
		mean, variance := stat.PopMeanVariance(r.same, nil)
		dmean, dvariance := stat.PopMeanVariance(r.diff, nil)
		// float32 cosines against float64: 1e-6.
		if !near(d.Same.Mean, mean, 1e-6) || !near(d.Same.Var, variance, 1e-6) ||
			!near(d.Diff.Mean, dmean, 1e-6) || !near(d.Diff.Var, dvariance, 1e-6) {
			t.Errorf("%s: Table 1 %v %v %v %v, recomputed %v %v %v %v", d.Name,
				d.Same.Mean, d.Same.Var, d.Diff.Mean, d.Diff.Var, mean, variance, dmean, dvariance)
		}
		if !near(d.AUC, r.auc, 1e-4) || !near(d.Recall.ImageToText.At1, r.r1, 1e-12) || !near(d.Recall.TextToImage.At1, r.tr1, 1e-12) {
			t.Errorf("%s: AUC %v r1 %v t2i r1 %v, recomputed %v %v %v", d.Name, d.AUC,
				d.Recall.ImageToText.At1, d.Recall.TextToImage.At1, r.auc, r.r1, r.tr1)
		}
		if !(d.Same.CI95.Low < d.Same.Mean && d.Same.Mean < d.Same.CI95.High) {
			t.Errorf("%s: same CI %+v does not bracket %v", d.Name, d.Same.CI95, d.Same.Mean)
		}
		if d.Same.Mean <= d.Diff.Mean || d.AUC < 0.8 {
			t.Errorf("%s: same %v, diff %v, AUC %v: the fake model should separate them", d.Name, d.Same.Mean, d.Diff.Mean, d.AUC)
		}
		if i == 0 {
			if d.VsReference != nil {
				t.Error("the reference has distances to itself")
			}
			continue
		}
		ref := recompute(t, f, filepath.Dir(cfg.Datasets[0].Manifest), rep.Datasets[0], textsOf(src))
		slices.Sort(r.same)
		slices.Sort(ref.same)
		wantKS := stat.KolmogorovSmirnov(r.same, nil, ref.same, nil)
		if v := d.VsReference; v == nil || v.Reference != "source" || !near(v.Same.KS, wantKS, 1e-3) {
			t.Errorf("%s: vs reference %+v, KS recomputed %v", d.Name, v, wantKS)
		}
	}

	// The captioned set shares ids and images with the source: the same products and
	// images are sampled (paired), and its images come from the cache, except the two
	// undecodable ones (failures are not cached). Its texts are all new.
	c := rep.Datasets[1]
	if !slices.EqualFunc(c.Sampled, s.Sampled, func(a, b SampledProduct) bool {
		return a.ID == b.ID && slices.Equal(a.Images, b.Images)
	}) {
		t.Error("the captioned set, with the source's ids and images, was sampled differently")
	}
	// 40 used products and "rejected" have 2 cached images each, "missing" its readable one.
	if e := c.Embedding; e.ImagesEmbedded != 2 || e.ImagesCached != 83 || e.TextsCached != 0 {
		t.Errorf("captioned set embedding: %+v, want 83 images from the cache", e)
	}

	out := filepath.Join(root, "out")
	if d := os.Getenv("EVAL_KEEP"); d != "" {
		out = d
	}
	if err := rep.WriteFiles(out); err != nil {
		t.Fatal(err)
	}
	checkFiles(t, out, rep)

	// Rewriting the report on a disk that fills up keeps the finished files whole and
	// leaves no temporary file beside them.
	restore, child := faults.DiskFull(t, 4<<10)
	if !child {
		return
	}
	err = rep.WriteFiles(out)
	restore()
	if err == nil {
		t.Fatal("writing the report on a full disk gave no error")
	}
	checkFiles(t, out, rep)
	if ents, _ := os.ReadDir(out); len(ents) != 3 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("files in the report folder after a failed write: %v", names)
	}
}

// checkSample: distinct eligible products, k distinct images of each.
func checkSample(t *testing.T, d DatasetReport, ps []testProduct, k int) {
	t.Helper()
	byID := map[string]testProduct{}
	for _, p := range ps {
		byID[p.id] = p
	}
	seen := map[string]bool{}
	for _, s := range d.Sampled {
		p, ok := byID[s.ID]
		if !ok || seen[s.ID] || len(p.images) < 2 || strings.TrimSpace(p.text) == "" {
			t.Errorf("sampled %q: unknown, repeated or ineligible", s.ID)
		}
		seen[s.ID] = true
		imgs := slices.Clone(s.Images)
		slices.Sort(imgs)
		if len(imgs) != k || len(slices.Compact(imgs)) != k {
			t.Errorf("product %s: images %v, want %d distinct", s.ID, s.Images, k)
		}
		for _, im := range s.Images {
			if !strings.HasPrefix(im, "img/"+s.ID+"_") {
				t.Errorf("product %s: image %s is not its own", s.ID, im)
			}
		}
	}
}

func checkFiles(t *testing.T, dir string, rep *Report) {
	t.Helper()
	var back Report
	js, err := os.ReadFile(filepath.Join(dir, ReportJSON))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatalf("report.json: %v", err)
	}
	if back.Datasets[0].Same.Mean != rep.Datasets[0].Same.Mean || back.Datasets[0].ManifestSHA256 == "" || back.Model.SHA256 != "fakehash" {
		t.Error("report.json does not carry the report")
	}
	md, err := os.ReadFile(filepath.Join(dir, ReportMarkdown))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range rep.Datasets {
		row := fmt.Sprintf("| %s | %.4f | %.6f | %.4f | %.6f |", d.Name, d.Same.Mean, d.Same.Var, d.Diff.Mean, d.Diff.Var)
		if !strings.Contains(string(md), row) {
			t.Errorf("report.md has no Table 1 row %q", row)
		}
		for _, x := range append(slices.Clone(d.Excluded), d.Ineligible.Products...) {
			if !strings.Contains(string(md), "`"+x.ID+"`: "+x.Reason) {
				t.Errorf("report.md does not list %s left out (%s)", x.ID, x.Reason)
			}
		}
		if len(back.Datasets) > 0 && len(back.Datasets[0].Ineligible.Products) != len(rep.Datasets[0].Ineligible.Products) {
			t.Error("report.json does not list the ineligible products")
		}
	}
	f, err := os.Open(filepath.Join(dir, SimilarityPNG))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("similarity.png: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 500 || b.Dy() < 250*len(rep.Datasets) {
		t.Errorf("similarity.png is %v", b)
	}
	for _, d := range rep.Datasets {
		total := 0
		for _, c := range d.HistogramDiff {
			total += c
		}
		if total != d.Diff.Count || len(d.HistogramSame) != len(rep.Histogram.Edges)-1 {
			t.Errorf("%s: histogram counts %d of %d values", d.Name, total, d.Diff.Count)
		}
	}
}

func TestRunUsesAllWhenFewerEligible(t *testing.T) {
	dir := t.TempDir()
	ps := goodProducts("p", 6, 2, func(id string) string { return id + ": text" })
	ps = append(ps, testProduct{id: "corrupt", images: []string{"corrupt", "corrupt"}, text: "corrupt: x"})
	cfg := Config{Datasets: []Dataset{{Name: "small", Manifest: writeDataset(t, dir, ps)}}, Bootstrap: 50}
	rep := runEval(t, cfg, &fakeEmbedder{})
	d := rep.Datasets[0]
	if d.Requested != 1000 || d.Eligible != 7 || d.Used != 6 || len(d.Excluded) != 1 {
		t.Errorf("requested %d, eligible %d, used %d, excluded %v", d.Requested, d.Eligible, d.Used, d.Excluded)
	}
	if len(d.Notes) != 1 || !strings.Contains(d.Notes[0], "used all 6") {
		t.Errorf("notes %q", d.Notes)
	}
	if !strings.Contains(rep.Markdown(), "used all 6") {
		t.Error("report.md does not say that all products were used")
	}

	// One usable product has no different-product pairs: an error, not NaNs.
	one := writeDataset(t, t.TempDir(), goodProducts("p", 1, 2, func(id string) string { return id + ": t" }))
	if _, err := Run(context.Background(), Config{Datasets: []Dataset{{Name: "one", Manifest: one}}}, &fakeEmbedder{}); err == nil ||
		!strings.Contains(err.Error(), "at least 2") {
		t.Errorf("one product: %v", err)
	}
}

func TestRunStrict(t *testing.T) {
	dir := t.TempDir()
	ps := goodProducts("p", 5, 2, func(id string) string { return id + ": text" })
	ps = append(ps, testProduct{id: "bad", images: []string{"product bad image 0", ""}, text: "bad: x"})
	cfg := Config{Datasets: []Dataset{{Name: "s", Manifest: writeDataset(t, dir, ps)}}, Strict: true}
	_, err := Run(context.Background(), cfg, &fakeEmbedder{})
	if !errors.Is(err, ErrStrict) || !strings.Contains(err.Error(), `"bad"`) || !strings.Contains(err.Error(), "img/bad_1.jpg") {
		t.Errorf("strict: %v, want ErrStrict naming the product and the image", err)
	}
}

func TestRunIsDeterministicPerSeed(t *testing.T) {
	dir := t.TempDir()
	ps := goodProducts("p", 60, 3, func(id string) string { return id + ": text" })
	m := writeDataset(t, dir, ps)
	run := func(seed uint64) *Report {
		return runEval(t, Config{Datasets: []Dataset{{Name: "d", Manifest: m}}, Products: 20, Seed: seed, Bootstrap: 100}, &fakeEmbedder{})
	}
	a, b, c := run(9), run(9), run(10)
	strip := func(r *Report) string {
		for i := range r.Datasets {
			r.Datasets[i].Seconds.Embed, r.Datasets[i].Seconds.Analyze = 0, 0
		}
		js, _ := json.Marshal(r)
		return string(js)
	}
	if strip(a) != strip(b) {
		t.Error("two runs with one seed differ")
	}
	ids := func(r *Report) []string {
		var out []string
		for _, s := range r.Datasets[0].Sampled {
			out = append(out, s.ID)
		}
		slices.Sort(out)
		return out
	}
	if slices.Equal(ids(a), ids(c)) {
		t.Error("seeds 9 and 10 sample the same products")
	}
}

func TestRunCacheSkipsWorkDone(t *testing.T) {
	root := t.TempDir()
	ps := goodProducts("p", 30, 2, func(id string) string { return id + ": text" })
	m := writeDataset(t, filepath.Join(root, "d"), ps)
	cacheDir := filepath.Join(root, "cache")
	cfg := Config{Datasets: []Dataset{{Name: "d", Manifest: m}}, Products: 20, Batch: 4, Bootstrap: 100}

	// First run killed after 2 batches of images (8 products).
	c, err := embcache.Open(cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &fakeEmbedder{cancelAfter: 2, cancel: cancel}
	cfg.Cache = c
	if _, err := Run(ctx, cfg, f); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run: %v", err)
	}
	c.Close()

	c, err = embcache.Open(cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Cache = c
	f = &fakeEmbedder{}
	rep := runEval(t, cfg, f)
	e := rep.Datasets[0].Embedding
	if e.ImagesCached != 16 || e.ImagesEmbedded != 24 || e.TextsCached != 8 || e.TextsEmbedded != 12 {
		t.Errorf("after a run killed at 8 of 20 products: %+v, want 16 images and 8 texts from the cache", e)
	}
	if f.images.Load() != 24 {
		t.Errorf("embedder saw %d images", f.images.Load())
	}

	// A second run recomputes nothing, and gives the same numbers as without a cache.
	f = &fakeEmbedder{}
	again := runEval(t, cfg, f)
	if f.images.Load()+f.texts.Load() != 0 || again.Datasets[0].Embedding.ImagesCached != 40 {
		t.Errorf("second run embedded %d images and %d texts", f.images.Load(), f.texts.Load())
	}
	c.Close()
	cfg.Cache = nil
	plain := runEval(t, cfg, &fakeEmbedder{})
	if again.Datasets[0].Same != plain.Datasets[0].Same || again.Datasets[0].Diff != plain.Datasets[0].Diff {
		t.Error("cached and uncached runs give different numbers")
	}
}

func TestRunRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	good := writeDataset(t, dir, goodProducts("p", 3, 2, func(id string) string { return id + ": t" }))
	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte(`{"id": "a", "images": ["x", "y"], "text": "t"}`+"\n\n"+`{"id": "a"`+"\n"), 0o644)
	dup := filepath.Join(dir, "dup.jsonl")
	os.WriteFile(dup, []byte(`{"id": "a"}`+"\n"+`{"id": "a"}`+"\n"), 0o644)
	for _, c := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no datasets", Config{}, "no dataset"},
		{"one product", Config{Datasets: []Dataset{{"d", good}}, Products: 1}, "at least 2"},
		{"same name twice", Config{Datasets: []Dataset{{"d", good}, {"d", good}}}, "used twice"},
		{"no name", Config{Datasets: []Dataset{{"", good}}}, "no name"},
		{"missing manifest", Config{Datasets: []Dataset{{"d", filepath.Join(dir, "nope.jsonl")}}}, "nope.jsonl"},
		{"broken line", Config{Datasets: []Dataset{{"d", bad}}}, "bad.jsonl:3"},
		{"duplicate id", Config{Datasets: []Dataset{{"d", dup}}}, "duplicate id"},
	} {
		_, err := Run(context.Background(), c.cfg, &fakeEmbedder{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
		}
	}
}

// Images that are not regular files are excluded, not read: a FIFO blocked eval forever
// in open (and it ignored SIGTERM then), /dev/zero was read until memory ran out, with
// or without the cache.
func TestNonRegularImagesExcluded(t *testing.T) {
	dir := t.TempDir()
	products := goodProducts("p", 4, 2, func(id string) string { return id + ": text" })
	products = append(products,
		testProduct{id: "fifo", images: []string{"product fifo image 0", ""}, text: "fifo: text"},
		testProduct{id: "zero", images: []string{"product zero image 0", ""}, text: "zero: text"},
	)
	m := writeDataset(t, dir, products)
	if err := syscall.Mkfifo(filepath.Join(dir, "img", "fifo_1.jpg"), 0o644); err != nil {
		t.Skipf("cannot make a FIFO here: %v", err)
	}
	if err := os.Symlink("/dev/zero", filepath.Join(dir, "img", "zero_1.jpg")); err != nil {
		t.Skipf("cannot link /dev/zero: %v", err)
	}
	type result struct {
		rep *Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := Run(context.Background(), Config{Datasets: []Dataset{{Name: "d", Manifest: m}}, Products: 6, Bootstrap: 10}, &fakeEmbedder{})
		done <- result{rep, err}
	}()
	var rep *Report
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatal(r.err)
		}
		rep = r.rep
	case <-time.After(time.Minute): // a watchdog for the hang, not a timing assertion
		t.Fatal("eval did not finish: blocked on the FIFO")
	}
	want := map[string]string{"fifo": "not a regular file (a FIFO)", "zero": "not a regular file (a character device)"}
	for _, x := range rep.Datasets[0].Excluded {
		if w, ok := want[x.ID]; ok && strings.Contains(x.Reason, w) {
			delete(want, x.ID)
		}
	}
	if len(want) > 0 {
		t.Errorf("not excluded with the reason: %v; excluded: %+v", want, rep.Datasets[0].Excluded)
	}
}
