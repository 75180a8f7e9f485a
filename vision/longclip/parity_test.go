package longclip

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"synth/internal/fixtures"
	"synth/internal/parity"
	"synth/native"
	"synth/vision/cliptok"
	"synth/weights"
)

// Tolerances (docs/longclip.md): an independent float64 forward pass
// is within 8.5e-7 of the fixtures, so 1e-4 on raw embeddings of magnitude O(1) (relative
// above 1) and 1e-5 on cosines leave room for float32 reassociation only.
const (
	embedTol  = 1e-4
	cosineTol = 1e-5
	// q8CosMin is the bar for Q8_0 weights (synth convert) against float32.
	q8CosMin = 0.999
)

// set is one fixture set's inputs and expected outputs.
type set struct {
	dir      string
	pixels   native.Tensor // [N, 3, S, S]
	ids      [][]int32     // [M][248]
	texts    []string
	expected map[string]map[string]fixTensor // file -> name -> tensor
}

type fixTensor struct {
	shape []int
	f32   []float32
	ints  []int64
}

func readFixture(t *testing.T, path string) map[string]fixTensor {
	t.Helper()
	src, err := weights.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	out := map[string]fixTensor{}
	for _, tt := range src.Tensors() {
		ft := fixTensor{shape: tt.Shape}
		if tt.DType.IsFloat() {
			ft.f32, err = tt.F32()
		} else {
			ft.ints, err = tt.Ints()
		}
		if err != nil {
			t.Fatal(err)
		}
		out[tt.Name] = ft
	}
	return out
}

func loadSet(t *testing.T, dir string) *set {
	t.Helper()
	s := &set{dir: dir, expected: map[string]map[string]fixTensor{}}
	in := readFixture(t, filepath.Join(dir, "inputs.safetensors"))
	px := in["pixel_values"]
	s.pixels = native.FromF32(px.f32, px.shape...)
	ids := in["input_ids"]
	for r := 0; r < ids.shape[0]; r++ {
		row := make([]int32, ids.shape[1])
		for j := range row {
			row[j] = int32(ids.ints[r*ids.shape[1]+j])
		}
		s.ids = append(s.ids, row)
	}
	for _, f := range []string{"expected.safetensors", "expected_fp32.safetensors", "intermediates.safetensors"} {
		s.expected[f] = readFixture(t, filepath.Join(dir, f))
	}
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Inputs struct {
			Texts []string `json:"texts"`
		} `json:"inputs"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	s.texts = cfg.Inputs.Texts
	return s
}

// maxErr is the largest |got - want| / max(1, |want|).
func maxErr(got, want []float32) (float64, int) {
	worst, at := 0.0, -1
	for i := range want {
		d := math.Abs(float64(got[i])-float64(want[i])) / math.Max(1, math.Abs(float64(want[i])))
		if d > worst || math.IsNaN(d) {
			worst, at = d, i
			if math.IsNaN(d) {
				return math.Inf(1), i
			}
		}
	}
	return worst, at
}

func normalize(v []float32, d int) []float32 {
	out := make([]float32, len(v))
	for r := 0; r < len(v)/d; r++ {
		var s float64
		for _, x := range v[r*d : (r+1)*d] {
			s += float64(x) * float64(x)
		}
		n := math.Sqrt(s)
		for j := 0; j < d; j++ {
			out[r*d+j] = float32(float64(v[r*d+j]) / n)
		}
	}
	return out
}

// cosines is a [N, M] matrix of row cosines of a [N, d] and b [M, d].
func cosines(a, b []float32, d int) []float32 {
	na, nb := normalize(a, d), normalize(b, d)
	n, m := len(a)/d, len(b)/d
	out := make([]float32, n*m)
	for i := 0; i < n; i++ {
		for j := 0; j < m; j++ {
			var s float64
			for k := 0; k < d; k++ {
				s += float64(na[i*d+k]) * float64(nb[j*d+k])
			}
			out[i*m+j] = float32(s)
		}
	}
	return out
}

// rowCosines are the cosines between matching rows of a and b.
func rowCosines(a, b []float32, d int) []float64 {
	na, nb := normalize(a, d), normalize(b, d)
	out := make([]float64, len(a)/d)
	for i := range out {
		for k := 0; k < d; k++ {
			out[i] += float64(na[i*d+k]) * float64(nb[i*d+k])
		}
	}
	return out
}

func encodeAll(t *testing.T, m *Model, s *set) (img, txt []float32) {
	c := parity.Ctx(t, m.Device(), 2)
	img = c.ToHost(m.EncodeImage(c, s.pixels))
	txt = c.ToHost(m.EncodeText(c, s.ids))
	return img, txt
}

func openModel(t *testing.T, path string, opt Options) *Model {
	t.Helper()
	m, err := Open(path, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestFixtureParity: image and text embeddings, normalised embeddings, cosines and logits
// from model.pt and model.safetensors against expected_fp32 (stored float32 weights) and,
// with UpstreamFP16, against expected (upstream's load path).
func TestFixtureParity(t *testing.T) {
	for _, dev := range parity.Devices(t) {
		for _, dir := range fixtures.Sets(t, "longclip", "model.safetensors") {
			s := loadSet(t, dir)
			for _, file := range []string{"model.pt", "model.safetensors"} {
				for _, fp16 := range []bool{false, true} {
					want, exp := s.expected["expected_fp32.safetensors"], "expected_fp32"
					if fp16 {
						want, exp = s.expected["expected.safetensors"], "expected"
					}
					name := fmt.Sprintf("%s/%s/%s/vs=%s", dev.Name(), filepath.Base(dir), file, exp)
					t.Run(name, func(t *testing.T) {
						m := openModel(t, filepath.Join(dir, file), Options{UpstreamFP16: fp16, Device: dev})
						img, txt := encodeAll(t, m, s)
						d := m.Config.EmbedDim
						failed := false
						check := func(what string, got []float32, tol float64) {
							w := want[what]
							if len(got) != len(w.f32) {
								t.Fatalf("%s: %d values, want %d (%v)", what, len(got), len(w.f32), w.shape)
							}
							e, at := maxErr(got, w.f32)
							t.Logf("%s: max error %.3g", what, e)
							if e > tol {
								failed = true
								t.Errorf("%s: error %.3g at %d (got %v, want %v), tolerance %g", what, e, at, got[at], w.f32[at], tol)
							}
						}
						check("image_embeds", img, embedTol)
						check("text_embeds", txt, embedTol)
						check("image_embeds_normalized", normalize(img, d), embedTol)
						check("text_embeds_normalized", normalize(txt, d), embedTol)
						cos := cosines(img, txt, d)
						check("cosine_similarity", cos, cosineTol)
						logits := make([]float32, len(cos))
						for i, c := range cos {
							logits[i] = m.Scale() * c
						}
						check("logits_per_image", logits, embedTol*float64(m.Scale()))
						if got, w := m.LogitScale, want["logit_scale"].f32[0]; got != w {
							t.Errorf("logit_scale %v, want %v", got, w)
						}
						if got, w := float64(m.Scale()), float64(want["logit_scale_exp"].f32[0]); math.Abs(got-w) > 1e-6*w {
							t.Errorf("exp(logit_scale) %v, want %v", got, w)
						}
						for i, row := range s.ids {
							if got, w := cliptok.EOTIndex(row), want["eot_index"].ints[i]; int64(got) != w {
								t.Errorf("text %d: pooled position %d, want %d", i, got, w)
							}
						}
						if failed { // the intermediates follow the float16-rounded load
							m16 := openModel(t, filepath.Join(dir, file), Options{UpstreamFP16: true, Device: dev})
							t.Logf("first divergence from intermediates.safetensors: %s", firstDivergence(t, m16, s))
						}
					})
				}
			}
		}
	}
}

// stageTol is the tolerance for intermediate activations (O(1) after each LayerNorm,
// larger inside the residual stream; relative above 1).
const stageTol = 1e-4

// firstDivergence runs the model with Trace on the fixture's intermediate inputs and
// names the first stage that differs from intermediates.safetensors ("none" if all
// agree). The intermediates follow upstream's float16-rounded load, so m must be loaded
// with UpstreamFP16.
func firstDivergence(t *testing.T, m *Model, s *set) string {
	t.Helper()
	want := s.expected["intermediates.safetensors"]
	var first string
	var log []string
	eot := map[int]int{} // text batch row -> pooled position
	textRows := want["text.rows"].ints
	c := parity.Ctx(t, m.Device(), 2)
	m.Trace = func(name string, x native.Tensor) {
		if first != "" {
			return
		}
		rows, cols := x.Dims2()
		got := c.ToHost(x)
		var e float64
		var at int
		switch {
		case name == "vision.patch_embeds": // ours [B, G, W], upstream's conv output [B, W, g, g]
			w := want[name]
			b, wd, g := w.shape[0], w.shape[1], w.shape[2]*w.shape[3]
			tr := make([]float32, len(w.f32))
			for i := 0; i < b; i++ {
				for c := 0; c < wd; c++ {
					for p := 0; p < g; p++ {
						tr[(i*g+p)*wd+c] = w.f32[(i*wd+c)*g+p]
					}
				}
			}
			e, at = maxErr(got, tr)
		case strings.HasSuffix(name, ".pooled") && strings.Contains(name, ".block"):
			// the last block's output at the pooled rows: class token / end-of-text position
			w := want[strings.TrimSuffix(name, ".pooled")+".output"]
			tt, wd := w.shape[1], w.shape[2]
			sel := make([]float32, 0, rows*cols)
			for i := 0; i < rows; i++ {
				p := 0
				if strings.HasPrefix(name, "text.") {
					p = eot[i]
				}
				sel = append(sel, w.f32[(i*tt+p)*wd:(i*tt+p+1)*wd]...)
			}
			e, at = maxErr(got, sel)
		case x.Rank() == 3 && want[name].shape != nil && x.Dim(1) < want[name].shape[1]:
			// text stages computed for the first L positions only
			w := want[name]
			tt, l, wd := w.shape[1], x.Dim(1), w.shape[2]
			sel := make([]float32, 0, len(got))
			for i := 0; i < x.Dim(0); i++ {
				sel = append(sel, w.f32[i*tt*wd:(i*tt+l)*wd]...)
			}
			e, at = maxErr(got, sel)
		default:
			w, ok := want[name]
			if !ok {
				return
			}
			if len(w.f32) != len(got) {
				first = fmt.Sprintf("%s: shape %v, want %v", name, x.Shape(), w.shape)
				return
			}
			e, at = maxErr(got, w.f32)
		}
		log = append(log, fmt.Sprintf("%s %.2g", name, e))
		if e > stageTol {
			first = fmt.Sprintf("%s (error %.3g at flat index %d)", name, e, at)
		}
	}
	defer func() { m.Trace = nil }()
	m.EncodeImage(c, s.pixels)
	var ids [][]int32
	for i, r := range textRows {
		ids = append(ids, s.ids[r])
		eot[i] = cliptok.EOTIndex(s.ids[r])
	}
	if first == "" {
		m.EncodeText(c, ids)
	}
	t.Logf("stages: %s", strings.Join(log, ", "))
	if len(log) == 0 {
		return "no stage traced"
	}
	if first == "" {
		return "none"
	}
	return first
}

// TestIntermediates compares every traced stage with intermediates.safetensors and
// checks that each block of both towers was compared.
func TestIntermediates(t *testing.T) {
	for _, dev := range parity.Devices(t) {
		for _, dir := range fixtures.Sets(t, "longclip", "model.safetensors") {
			t.Run(dev.Name()+"/"+filepath.Base(dir), func(t *testing.T) {
				s := loadSet(t, dir)
				m := openModel(t, filepath.Join(dir, "model.safetensors"), Options{UpstreamFP16: true, Device: dev})
				var seen []string
				m.Trace = func(name string, _ native.Tensor) { seen = append(seen, name) }
				encodeAll(t, m, s)
				m.Trace = nil
				for i := 0; i < m.Config.Vision.Layers; i++ {
					if !slices.Contains(seen, fmt.Sprintf("vision.block%d.output", i)) && !slices.Contains(seen, fmt.Sprintf("vision.block%d.pooled", i)) {
						t.Errorf("vision block %d not traced (traced: %v)", i, seen)
					}
				}
				if d := firstDivergence(t, m, s); d != "none" {
					t.Errorf("first stage that diverges: %s", d)
				}
			})
		}
	}
}

// TestTokenizerMatchesInputs: the set's texts through our tokenizer give its input_ids.
func TestTokenizerMatchesInputs(t *testing.T) {
	vocab := filepath.Join(fixtures.Dir(t, "longclip"), "bpe_simple_vocab_16e6.txt.gz")
	tok, err := cliptok.Load(vocab)
	if err != nil {
		t.Skipf("no vocabulary: %v", err)
	}
	for _, dir := range fixtures.Sets(t, "longclip", "model.safetensors") {
		s := loadSet(t, dir)
		if len(s.texts) != len(s.ids) {
			t.Fatalf("%s: %d texts for %d id rows", dir, len(s.texts), len(s.ids))
		}
		for i, text := range s.texts {
			ids, _ := tok.Encode(text, cliptok.Context)
			if got := cliptok.Pad(ids, cliptok.Context); !slices.Equal(got, s.ids[i]) {
				t.Errorf("%s text %d: ids differ from input_ids", filepath.Base(dir), i)
			}
		}
	}
}

// TestRoundedParamsMatchFixture: the parameters we round for UpstreamFP16 are exactly the
// fixture's list of what upstream's load rounds.
func TestRoundedParamsMatchFixture(t *testing.T) {
	for _, dir := range fixtures.Sets(t, "longclip", "model.safetensors") {
		raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
		if err != nil {
			t.Fatal(err)
		}
		var cfg struct {
			Rounded []string `json:"fp16_rounded_on_upstream_load"`
		}
		if err := json.Unmarshal(raw, &cfg); err != nil {
			t.Fatal(err)
		}
		src, err := weights.Open(filepath.Join(dir, "model.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		var ours []string
		for _, tt := range src.Tensors() {
			if roundedByUpstream(tt.Name) {
				ours = append(ours, tt.Name)
			}
		}
		src.Close()
		slices.Sort(ours)
		slices.Sort(cfg.Rounded)
		if len(cfg.Rounded) == 0 || !slices.Equal(ours, cfg.Rounded) {
			t.Errorf("%s: we round %v\nupstream rounds %v", filepath.Base(dir), ours, cfg.Rounded)
		}
	}
}
