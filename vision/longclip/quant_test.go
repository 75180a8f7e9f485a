package longclip

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"synth/internal/fixtures"
	"synth/native"
	"synth/weights"
)

// minCos is the smallest cosine between matching rows of got and want [n, d].
func minCos(got, want []float32, d int) float64 {
	worst := 1.0
	for _, c := range rowCosines(got, want, d) {
		worst = math.Min(worst, c)
	}
	return worst
}

// convertFixture writes the set's model.safetensors as GGUF of type dt through the code
// path of synth convert (weights.ConvertToGGUF with the set's config.json).
func convertFixture(t *testing.T, dir string, dt weights.DType) string {
	t.Helper()
	src, err := weights.Open(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	cfg, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), fmt.Sprintf("model-%s.gguf", dt))
	if _, err := weights.ConvertToGGUF(src, out, weights.ConvertOptions{Type: dt, Architecture: "longclip", Config: cfg}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestQuantizedGGUF: a GGUF from synth convert loads with its stored types (no config.json
// beside it: the config comes from the metadata) and stays close to the float32 result.
// Q8_0 must reach the cosine 0.999; the others are logged with a looser floor.
func TestQuantizedGGUF(t *testing.T) {
	cases := []struct {
		dt     weights.DType
		native native.DType // what the MLP weights must be in memory
		floor  float64
	}{
		{weights.Q8_0, native.Q8_0, q8CosMin},
		{weights.F16, native.F32, 0.9999}, // half weights are widened unless Options.DType asks for F16
		{weights.Q4_0, native.Q4_0, 0.97},
		{weights.Q5_1, native.F32, 0.99}, // not a kernel type: dequantized at load
	}
	for _, dir := range fixtures.Sets(t, "longclip", "model.safetensors") {
		s := loadSet(t, dir)
		want := s.expected["expected_fp32.safetensors"]
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s/type=%s", filepath.Base(dir), tc.dt), func(t *testing.T) {
				gguf := convertFixture(t, dir, tc.dt)
				m := openModel(t, gguf, Options{})
				// convert quantizes a 2-D weight only when both its dims fill whole blocks;
				// a set whose widths are not multiples of 32 keeps c_fc float32, rightly
				fc := m.Vision.Blocks[0].FC1.W
				wantDT := tc.native
				if bs := tc.dt.BlockSize(); fc.N()%bs != 0 || fc.K()%bs != 0 {
					t.Logf("c_fc [%d, %d] cannot be stored as %s: expect float32", fc.N(), fc.K(), tc.dt)
					wantDT = native.F32
				}
				if got := fc.DType(); got != wantDT {
					t.Fatalf("c_fc weight is %s in memory, want %s", got, wantDT)
				}
				img, txt := encodeAll(t, m, s)
				d := m.Config.EmbedDim
				ci, ct := minCos(img, want["image_embeds"].f32, d), minCos(txt, want["text_embeds"].f32, d)
				t.Logf("min cosine to float32: image %.6f, text %.6f", ci, ct)
				if ci < tc.floor || ct < tc.floor {
					t.Errorf("cosine image %.6f text %.6f, want >= %g", ci, ct, tc.floor)
				}
			})
		}
	}
}

// TestLoadDTypes: converting float32 weights at load (Options.DType) matches what a
// converted GGUF gives within the same bar, and the weights really are converted.
func TestLoadDTypes(t *testing.T) {
	for _, dir := range fixtures.Sets(t, "longclip", "model.safetensors") {
		s := loadSet(t, dir)
		want := s.expected["expected_fp32.safetensors"]
		for _, tc := range []struct {
			dt    native.DType
			floor float64
		}{{native.Q8_0, q8CosMin}, {native.BF16, 0.999}, {native.F16, 0.9999}} {
			t.Run(fmt.Sprintf("%s/dtype=%s", filepath.Base(dir), tc.dt), func(t *testing.T) {
				m := openModel(t, filepath.Join(dir, "model.pt"), Options{DType: tc.dt})
				// rows that do not fill whole blocks stay float32 (the loader logs it)
				qkv := m.Text.Blocks[0].QKV.W
				wantDT := tc.dt
				if qkv.K()%tc.dt.BlockSize() != 0 {
					t.Logf("in_proj rows of %d values cannot be %s: expect float32", qkv.K(), tc.dt)
					wantDT = native.F32
				}
				if got := qkv.DType(); got != wantDT {
					t.Fatalf("in_proj weight is %s, want %s", got, wantDT)
				}
				img, txt := encodeAll(t, m, s)
				d := m.Config.EmbedDim
				ci, ct := minCos(img, want["image_embeds"].f32, d), minCos(txt, want["text_embeds"].f32, d)
				t.Logf("min cosine to float32: image %.6f, text %.6f", ci, ct)
				if ci < tc.floor || ct < tc.floor {
					t.Errorf("cosine image %.6f text %.6f, want >= %g", ci, ct, tc.floor)
				}
			})
		}
	}
}
