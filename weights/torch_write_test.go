package weights

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteTorchRoundTrip(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 9))
	f32 := func(n int) []byte {
		b := make([]byte, 4*n)
		for i := 0; i < n; i++ {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(float32(r.NormFloat64())))
		}
		return b
	}
	ids := make([]byte, 8*3)
	for i := 0; i < 3; i++ {
		binary.LittleEndian.PutUint64(ids[8*i:], uint64(70000+i)) // ints beyond BININT2
	}
	want := []Tensor{
		{Name: "visual.proj", DType: F32, Shape: []int{7, 3}, Data: f32(21)},
		{Name: "logit_scale", DType: F32, Shape: []int{}, Data: f32(1)},
		{Name: "token_embedding.weight", DType: F32, Shape: []int{300, 5}, Data: f32(1500)},
		{Name: "ids", DType: I64, Shape: []int{3}, Data: ids},
		{Name: "half", DType: F16, Shape: []int{2, 2}, Data: []byte{1, 60, 0, 188, 0, 0, 255, 123}},
	}
	path := filepath.Join(t.TempDir(), "model.pt")
	if err := WriteTorch(path, want); err != nil {
		t.Fatal(err)
	}
	src, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if src.Format() != FormatTorch {
		t.Fatalf("format %v", src.Format())
	}
	got := src.Tensors()
	if len(got) != len(want) {
		t.Fatalf("%d tensors, want %d", len(got), len(want))
	}
	for i, w := range want {
		g, err := src.Tensor(w.Name)
		if err != nil {
			t.Fatal(err)
		}
		if g.DType != w.DType || len(g.Shape) != len(w.Shape) || string(g.Data) != string(w.Data) {
			t.Fatalf("tensor %d %s: got %v %v, want %v %v (or data differs)", i, w.Name, g.DType, g.Shape, w.DType, w.Shape)
		}
		for j := range w.Shape {
			if g.Shape[j] != w.Shape[j] {
				t.Fatalf("%s shape %v, want %v", w.Name, g.Shape, w.Shape)
			}
		}
		if w.DType == F32 {
			if _, ok := g.F32View(); !ok {
				t.Errorf("%s: data not 4-byte aligned in the archive", w.Name)
			}
		}
	}
}

func TestWriteTorchRejectsBadTensors(t *testing.T) {
	dir := t.TempDir()
	bad := []Tensor{{Name: "x", DType: F32, Shape: []int{2, 2}, Data: make([]byte, 12)}}
	if err := WriteTorch(filepath.Join(dir, "a.pt"), bad); err == nil {
		t.Fatal("accepted 12 bytes for a 2x2 float32 tensor")
	}
	q := []Tensor{{Name: "q", DType: Q8_0, Shape: []int{32}, Data: make([]byte, 34)}}
	if err := WriteTorch(filepath.Join(dir, "b.pt"), q); err == nil {
		t.Fatal("accepted a ggml block type, which torch has no storage for")
	}
	if _, err := os.Stat(filepath.Join(dir, "a.pt")); !os.IsNotExist(err) {
		t.Fatal("a failed write left a file behind")
	}
}
