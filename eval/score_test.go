package eval

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"synth/dataset/embcache"
)

// Score is the cosine of each pair's own image and text, each distinct input is embedded
// once, failures are NaN with their reason, and a second run takes everything from the
// cache.
func TestScorePairs(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a0, a1 := write("a0", "product a image 0"), write("a1", "product a image 1")
	b0, bad := write("b0", "product b image 0"), write("bad", "corrupt")
	pairs := []Pair{
		{a0, "a: a blue shirt"}, {a1, "a: a blue shirt"}, {b0, "b: red jeans"}, {a0, "b: red jeans"},
		{bad, "a: a blue shirt"}, {b0, "reject this"}, {filepath.Join(dir, "missing"), "b: red jeans"},
	}
	cache, err := embcache.Open(filepath.Join(dir, "cache"))
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	f := &fakeEmbedder{}
	scores, errs, err := Score(context.Background(), f, pairs, ScoreConfig{Cache: cache, Batch: 3})
	if err != nil {
		t.Fatal(err)
	}
	// 5 image files (one missing is never embedded), 3 texts.
	if f.images.Load() != 4 || f.texts.Load() != 3 {
		t.Errorf("embedded %d images and %d texts, want 4 and 3 (each distinct input once)", f.images.Load(), f.texts.Load())
	}
	for i, p := range pairs[:4] {
		if errs[i] != nil {
			t.Fatalf("pair %d: %v", i, errs[i])
		}
		content, _ := os.ReadFile(p.Image)
		iv, _ := fakeImageVector(content)
		tv, _ := f.fakeTextVector(p.Text)
		if want := cos(iv, tv); math.Abs(scores[i]-want) > 1e-6 {
			t.Errorf("pair %d: score %v, want %v", i, scores[i], want)
		}
	}
	if scores[0] <= scores[3] {
		t.Errorf("a's image scores %v with a's text and %v with b's: want the own text higher", scores[0], scores[3])
	}
	for i := 4; i < len(pairs); i++ {
		if !math.IsNaN(scores[i]) || errs[i] == nil {
			t.Errorf("pair %d: score %v, error %v; want NaN and the reason", i, scores[i], errs[i])
		}
	}

	again := &fakeEmbedder{}
	scores2, _, err := Score(context.Background(), again, pairs, ScoreConfig{Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	if again.images.Load() != 1 || again.texts.Load() != 1 { // failures are not cached
		t.Errorf("second run embedded %d images and %d texts; want only the undecodable image and the rejected text again", again.images.Load(), again.texts.Load())
	}
	for i := range scores[:4] {
		if scores2[i] != scores[i] {
			t.Errorf("pair %d: cached score %v, first %v", i, scores2[i], scores[i])
		}
	}

	ranks := Ranks([]float64{0.1, 0.3, 0.3, math.NaN(), 0.2}, []string{"p", "p", "p", "p", "q"})
	if want := []int{3, 1, 1, 0, 1}; !slices.Equal(ranks, want) {
		t.Errorf("ranks %v, want %v", ranks, want)
	}
}

func cos(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	return ab / math.Sqrt(aa*bb)
}
