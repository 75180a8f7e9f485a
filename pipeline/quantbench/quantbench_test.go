package quantbench

import (
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"synth/weights"
)

func TestParseLevels(t *testing.T) {
	files, err := ParseLevelFiles("Q4_K_M=a.gguf, f16=b.gguf")
	if err != nil || files["q4_k_m"] != "a.gguf" || files["f16"] != "b.gguf" {
		t.Fatalf("ParseLevelFiles: %v %v", files, err)
	}
	got, err := ParseLevels(" F16, q8_0,,q4_k_m ,q5_k", files)
	if err != nil || !slices.Equal(got, []string{"f16", "q8_0", "q4_k_m", "q5_k"}) {
		t.Errorf("ParseLevels: %v %v", got, err)
	}
	for _, bad := range []string{"q8", "f16,f16", "", " , "} {
		if _, err := ParseLevels(bad, files); err == nil {
			t.Errorf("ParseLevels(%q): no error", bad)
		}
	}
	for _, bad := range []string{"q4_0", "=a.gguf", "q4_0=", "a=x,A=y"} {
		if _, err := ParseLevelFiles(bad); err == nil {
			t.Errorf("ParseLevelFiles(%q): no error", bad)
		}
	}
}

// Each level a checkpoint cannot take gets its reason; the others the type they are
// stored and run as.
func TestVisionLevels(t *testing.T) {
	f32 := func(n int) []byte { return make([]byte, 4*n) }
	src, err := weights.FromTensors("m", []weights.Tensor{
		{Name: "a.weight", DType: weights.F32, Shape: []int{64, 64}, Data: f32(64 * 64)},
		{Name: "a.bias", DType: weights.F32, Shape: []int{64}, Data: f32(64)},
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	levels := visionLevels([]string{"f32", "f16", "q4_1", "q4_k", "q4_k_m", "q4_0"}, src, "test")
	want := map[string]string{ // level: the start of its skip reason, or what it runs as
		"f32": "skip:the reference", "f16": "runs:F16", "q4_1": "runs:F32 as f32", "q4_k": "skip:", "q4_k_m": "skip:not a ggml type", "q4_0": "runs:Q4_0",
	}
	for _, l := range levels {
		w := want[l.name]
		switch {
		case strings.HasPrefix(w, "skip:"):
			if l.skip == "" || !strings.HasPrefix(l.skip, strings.TrimPrefix(w, "skip:")) {
				t.Errorf("%s: skip %q, want one starting %q", l.name, l.skip, strings.TrimPrefix(w, "skip:"))
			}
		default:
			got := "runs:" + l.runs.String()
			if l.runsAs != "" {
				got += " as " + l.runsAs
			}
			if l.skip != "" || got != w {
				t.Errorf("%s: %q (skip %q), want %q", l.name, got, l.skip, w)
			}
		}
	}
}

func TestRowStore(t *testing.T) {
	s, err := newRowStore(filepath.Join(t.TempDir(), "rows"), 3)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if err := s.put([]float32{1, 2, 3, 4, 5, float32(math.Inf(-1))}); err != nil {
		t.Fatal(err)
	}
	if err := s.put([]float32{1, 2}); err == nil {
		t.Error("a partial row: no error")
	}
	for pass := 0; pass < 2; pass++ {
		if err := s.rewind(); err != nil {
			t.Fatal(err)
		}
		var row []float32
		for _, want := range [][]float32{{1, 2, 3}, {4, 5, float32(math.Inf(-1))}} {
			if row, err = s.next(row); err != nil || !slices.Equal(row, want) {
				t.Fatalf("pass %d: row %v (%v), want %v", pass, row, err, want)
			}
		}
		if _, err := s.next(row); err == nil {
			t.Errorf("pass %d: a row past the end", pass)
		}
	}
}

func TestDominant(t *testing.T) {
	for _, c := range []struct {
		stored map[string]int
		want   string
	}{
		{map[string]int{"f32": 21}, "f32"},
		{map[string]int{"f32": 5, "q4_0": 16}, "q4_0"},
		{map[string]int{"f32": 5, "q4_k": 10, "q6_k": 2}, "q4_k"},
	} {
		if got := dominant(c.stored); got != c.want {
			t.Errorf("dominant(%v) = %s, want %s", c.stored, got, c.want)
		}
	}
}
