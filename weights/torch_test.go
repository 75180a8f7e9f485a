package weights

import (
	"archive/zip"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"synth/internal/fixtures"
)

// Every tensor of model.pt equals the same tensor of model.safetensors bit for bit, with
// the same names in the same order.
func TestLongCLIPPtEqualsSafetensors(t *testing.T) {
	for _, set := range fixtures.Sets(t, "longclip", "model.pt") {
		pt, err := Open(filepath.Join(set, "model.pt"))
		if err != nil {
			t.Fatal(err)
		}
		defer pt.Close()
		st, err := Open(filepath.Join(set, "model.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if pt.Format() != FormatTorch || st.Format() != FormatSafetensors {
			t.Fatalf("%s: formats %s, %s", set, pt.Format(), st.Format())
		}
		a, b := pt.Tensors(), st.Tensors()
		if len(a) != len(b) || len(a) == 0 {
			t.Fatalf("%s: %d tensors in model.pt, %d in model.safetensors", set, len(a), len(b))
		}
		for i := range a {
			if a[i].Name != b[i].Name || a[i].DType != b[i].DType || !slices.Equal(a[i].Shape, b[i].Shape) {
				t.Errorf("%s: tensor %d: %v in .pt, %v in .safetensors", set, i, a[i], b[i])
				continue
			}
			if !bytes.Equal(a[i].Data, b[i].Data) {
				t.Errorf("%s: tensor %s differs", set, a[i].Name)
			}
		}
		if ls, err := pt.Tensor("logit_scale"); err != nil || len(ls.Shape) != 0 {
			t.Errorf("%s: logit_scale %v %v, want a scalar", set, ls, err)
		}
		// torch aligns records to 64 bytes, so F32 tensors can be used in place
		if _, ok := a[0].F32View(); !ok {
			t.Errorf("%s: no zero-copy view of %s", set, a[0].Name)
		}
	}
}

func TestTorchStridedViewsAndOffsets(t *testing.T) {
	p := newPickle().global("collections", "OrderedDict").op(')', 'R', '(')
	// storage "0": 2x3 row-major [[0 1 2] [3 4 5]]
	p.str("plain").tensor("0", 6, 0, []int{2, 3}, []int{3, 1})
	p.str("transposed").tensor("0", 6, 0, []int{3, 2}, []int{1, 3})
	// storage "1": 10 values, a view from element 4
	p.str("offset").tensor("1", 10, 4, []int{3}, []int{1})
	p.str("every_other").tensor("1", 10, 1, []int{2, 2}, []int{4, 2})
	p.str("expanded").tensor("1", 10, 7, []int{3, 2}, []int{0, 1})
	p.op('u', '.')
	path := ptFile(t, p.Bytes(), map[string][]byte{"0": f32Bytes(arange(6)...), "1": f32Bytes(arange(10)...)})
	src, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	want := map[string][]float32{
		"plain":       {0, 1, 2, 3, 4, 5},
		"transposed":  {0, 3, 1, 4, 2, 5},
		"offset":      {4, 5, 6},
		"every_other": {1, 3, 5, 7},
		"expanded":    {7, 8, 7, 8, 7, 8},
	}
	for name, w := range want {
		tn, err := src.Tensor(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := mustF32(t, tn); !slices.Equal(got, w) {
			t.Errorf("%s = %v, want %v", name, got, w)
		}
	}
}

func TestTorchRejectsOutOfRangeViews(t *testing.T) {
	for name, p := range map[string]*pk{
		"past the storage": newPickle().op('}').str("w").tensor("0", 6, 4, []int{3}, []int{1}).op('s', '.'),
		"size mismatch":    newPickle().op('}').str("w").tensor("0", 7, 0, []int{7}, []int{1}).op('s', '.'),
	} {
		path := ptFile(t, p.Bytes(), map[string][]byte{"0": f32Bytes(arange(6)...)})
		if _, err := Open(path); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: got %v, want ErrFormat", name, err)
		}
	}
	// a zero-stride view whose copy would be far larger than the file
	p := newPickle().op('}').str("w").tensor("0", 6, 0, []int{1 << 20, 1 << 10}, []int{0, 0}).op('s', '.')
	_, err := Open(ptFile(t, p.Bytes(), map[string][]byte{"0": f32Bytes(arange(6)...)}))
	if err == nil || !strings.Contains(err.Error(), "contiguous") {
		t.Errorf("huge expanded view: got %v, want a refusal mentioning .contiguous()", err)
	}
}

// A pickle is data: a .pt asking for os.system, builtins.eval, ... is refused with the
// global named, before anything runs.
func TestTorchRefusesForeignGlobals(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "pwned")
	for _, g := range [][2]string{
		{"os", "system"}, {"posix", "system"}, {"builtins", "eval"}, {"__builtin__", "eval"},
		{"builtins", "exec"}, {"subprocess", "Popen"}, {"torch", "load"}, {"numpy.core.multiarray", "_reconstruct"},
		{"__torch__.model", "Net"},
	} {
		p := newPickle().global(g[0], g[1]).op('(').str("touch "+marker).op('t', 'R', '.')
		_, err := Open(ptFile(t, p.Bytes(), nil))
		if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), g[0]+"."+g[1]) {
			t.Errorf("%s.%s: got %v, want ErrUnsafe naming it", g[0], g[1], err)
		}
	}
	// STACK_GLOBAL (protocol 4) and INST take the same check
	p := newPickle().str("os").str("system").op(0x93, '.')
	if _, err := Open(ptFile(t, p.Bytes(), nil)); !errors.Is(err, ErrUnsafe) {
		t.Errorf("STACK_GLOBAL os.system: %v", err)
	}
	p = newPickle().op('(').str("id")
	p.WriteString("ios\nsystem\n")
	p.op('.')
	if _, err := Open(ptFile(t, p.Bytes(), nil)); !errors.Is(err, ErrUnsafe) {
		t.Errorf("INST os.system: %v", err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a pickle ran a command")
	}
}

func TestTorchLegacyAndCompressed(t *testing.T) {
	dir := t.TempDir()
	legacy := filepath.Join(dir, "old.pt")
	// torch<1.6 files start with a protocol-2 pickle of a magic number
	os.WriteFile(legacy, []byte{0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, '.'}, 0o644)
	if _, err := Open(legacy); err == nil || !strings.Contains(err.Error(), "re-save it with torch>=1.6") {
		t.Errorf("legacy file: %v", err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.CreateHeader(&zip.FileHeader{Name: "m/data.pkl", Method: zip.Deflate})
	w.Write(newPickle().op('}', '.').Bytes())
	zw.Close()
	comp := filepath.Join(dir, "deflated.pt")
	os.WriteFile(comp, buf.Bytes(), 0o644)
	if _, err := Open(comp); err == nil || !strings.Contains(err.Error(), "compressed") {
		t.Errorf("compressed record: %v", err)
	}
	p := newPickle().op('}').str("w").tensor("9", 6, 0, []int{6}, []int{1}).op('s', '.')
	if _, err := Open(ptFile(t, p.Bytes(), nil)); !errors.Is(err, ErrMissing) {
		t.Errorf("missing storage record: %v", err)
	}
}

// Checkpoints that wrap the state dict ({"model": sd, "epoch": 3}) give dotted names.
func TestTorchNestedStateDict(t *testing.T) {
	p := newPickle().op('}', '(')
	p.str("epoch").int(3)
	p.str("model").op('}').str("fc.weight").tensor("0", 4, 0, []int{2, 2}, []int{2, 1}).op('s')
	p.op('u', '.')
	src, err := Open(ptFile(t, p.Bytes(), map[string][]byte{"0": f32Bytes(1, 2, 3, 4)}))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if names := tensorNames(src); !slices.Equal(names, []string{"model.fc.weight"}) {
		t.Errorf("tensors %v", names)
	}
}

func tensorNames(s *Source) []string {
	var out []string
	for _, t := range s.Tensors() {
		out = append(out, t.Name)
	}
	return out
}

// pytorch_model.bin.index.json: a sharded torch checkpoint.
func TestTorchShardedIndex(t *testing.T) {
	dir := t.TempDir()
	for i, name := range []string{"a.weight", "b.weight"} {
		p := newPickle().op('}').str(name).tensor("0", 2, 0, []int{2}, []int{1}).op('s', '.')
		b, _ := os.ReadFile(ptFile(t, p.Bytes(), map[string][]byte{"0": f32Bytes(float32(i), 1)}))
		os.WriteFile(filepath.Join(dir, []string{"pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"}[i]), b, 0o644)
	}
	os.WriteFile(filepath.Join(dir, "pytorch_model.bin.index.json"), []byte(`{"metadata":{},"weight_map":{
		"a.weight":"pytorch_model-00001-of-00002.bin","b.weight":"pytorch_model-00002-of-00002.bin"}}`), 0o644)
	src, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	b, _ := src.Tensor("b.weight")
	if src.Format() != FormatTorch || src.Len() != 2 || !slices.Equal(mustF32(t, b), []float32{1, 1}) {
		t.Errorf("sharded .bin: %s, %v", src.Format(), src.Tensors())
	}
}
