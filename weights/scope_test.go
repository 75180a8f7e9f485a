package weights

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func memSource(t *testing.T, tensors ...Tensor) *Source {
	t.Helper()
	s, err := FromTensors("mem", tensors, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func f32Tensor(name string, shape ...int) Tensor {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return Tensor{Name: name, DType: F32, Shape: shape, Data: f32Bytes(arange(n)...)}
}

func TestScopeLoadsLikeAList(t *testing.T) {
	src := memSource(t,
		f32Tensor("enc.layer.0.q.weight", 4, 3),
		f32Tensor("enc.layer.0.q.bias", 4),
		f32Tensor("enc.layer.1.q.weight", 4, 3),
		f32Tensor("enc.layer.1.q.bias", 4),
		f32Tensor("scale"),
		Tensor{Name: "enc.position_ids", DType: I64, Shape: []int{2}, Data: make([]byte, 16)},
		Tensor{Name: "half", DType: F16, Shape: []int{2}, Data: []byte{0x00, 0x3c, 0x00, 0xc0}},
	)
	s := NewScope(src)
	for i := range 2 {
		l := s.Sub("enc.layer", i)
		if w := l.Get("q.weight", 4, 3); w.Name != "enc.layer."+string(rune('0'+i))+".q.weight" || len(w.Data) != 48 {
			t.Errorf("layer %d weight %v", i, w)
		}
		l.Get("q.bias", -1)
	}
	if v := s.GetF32("half", 2); !slices.Equal(v, []float32{1, -2}) {
		t.Errorf("half = %v", v)
	}
	s.Get("scale")
	if ids := s.Sub("enc").GetInt("position_ids", 2); ids.DType != I64 {
		t.Errorf("position_ids %v", ids)
	}
	if _, ok := s.Optional("lm_head.weight", 4, 3); ok {
		t.Error("Optional found a tensor that is not there")
	}
	if err := s.Finish(); err != nil {
		t.Fatal(err)
	}
}

func TestScopeCollectsEveryError(t *testing.T) {
	src := memSource(t,
		f32Tensor("a.weight", 4, 3),
		f32Tensor("b.weight", 4, 3),
		Tensor{Name: "ids", DType: I32, Shape: []int{3}, Data: make([]byte, 12)},
		f32Tensor("unused.one", 2),
		f32Tensor("unused.two", 2),
		f32Tensor("skipped.x.position_ids", 2),
	)
	s := NewScope(src)
	s.Get("a.weight", 3, 4)    // shape
	s.Get("missing.weight", 1) // missing
	s.Get("ids", 3)            // dtype: ints where floats are expected
	s.GetInt("b.weight", 4, 3) // dtype: floats where ints are expected
	s.Sub("skipped").Skip("*.position_ids")
	err := s.Err()
	for _, want := range []error{ErrShape, ErrMissing, ErrDType} {
		if !errors.Is(err, want) {
			t.Errorf("Err() %v does not wrap %v", err, want)
		}
	}
	for _, name := range []string{`"a.weight"`, `"missing.weight"`, `"ids"`, `"b.weight"`} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("Err() does not name %s: %v", name, err)
		}
	}
	fin := s.Finish()
	if !errors.Is(fin, ErrUnused) || !errors.Is(fin, ErrShape) {
		t.Fatalf("Finish: %v", fin)
	}
	if !strings.Contains(fin.Error(), "unused.one, unused.two") || strings.Contains(fin.Error(), "position_ids") {
		t.Errorf("Finish lists %v", fin)
	}
	if got := s.Unused(); !slices.Equal(got, []string{"unused.one", "unused.two"}) {
		t.Errorf("Unused %v", got)
	}
	s2 := NewScope(src)
	s2.Skip("[")
	if s2.Err() == nil {
		t.Error("bad Skip pattern not reported")
	}
}

// TestSynthetic: a Synthetic source makes what a scope asks for, records it in order,
// makes a released tensor again identically, and reports nothing unused.
func TestSynthetic(t *testing.T) {
	calls := 0
	gen := func(name string, dims []int) (Tensor, error) {
		calls++
		n := 1
		for _, d := range dims {
			n *= d
		}
		data := make([]byte, 4*n)
		for i := range data {
			data[i] = byte(len(name) + i) // a pure function of the name and shape
		}
		return Tensor{DType: F32, Shape: dims, Data: data}, nil
	}
	src := Synthetic("random", []byte(`{}`), gen)
	s := NewScope(src)
	a := s.Sub("layer", 0).Get("fc.weight", 3, 2)
	b := s.Get("norm.bias", 2)
	if _, ok := s.Optional("lm_head.weight", 2, 2); ok {
		t.Fatal("Optional made up a tensor")
	}
	if s.Get("bad", -1, 2).Data != nil || s.Err() == nil {
		t.Fatal("a tensor of unknown size was made")
	}
	if err := s.Finish(); err == nil || strings.Contains(err.Error(), "not used") {
		t.Fatalf("Finish: %v (want the bad-size error only)", err)
	}
	if a.Name != "layer.0.fc.weight" || len(a.Data) != 24 || len(b.Data) != 8 {
		t.Fatalf("made %q (%d bytes), %q (%d bytes)", a.Name, len(a.Data), b.Name, len(b.Data))
	}
	want := slices.Clone(a.Data)
	if err := src.Release(a); err != nil {
		t.Fatal(err)
	}
	ts := src.Tensors()
	if len(ts) != 2 || ts[0].Name != "layer.0.fc.weight" || ts[1].Name != "norm.bias" || !slices.Equal(ts[0].Data, want) {
		t.Fatalf("recorded %v", ts)
	}
	if calls != 3 { // two made, one made again after its release
		t.Fatalf("%d calls to the generator, want 3", calls)
	}
}
