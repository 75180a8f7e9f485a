package llm

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"testing"

	"synth/internal/llamagguf"
	"synth/llm/llamacpp"
	"synth/weights"
)

// tinyF16 writes the tiny Llama with F16 weights (a lab's F16 GGUF) into dir.
func tinyF16(t *testing.T, dir string) string {
	t.Helper()
	cfg := llamagguf.Tiny
	cfg.DType = weights.F16
	path := filepath.Join(dir, "tiny-f16.gguf")
	if err := llamagguf.Write(path, cfg); err != nil {
		t.Fatal(err)
	}
	return path
}

func tensorOf(t *testing.T, path, name string) weights.Tensor {
	t.Helper()
	src, err := weights.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	tn, err := src.Tensor(name)
	if err != nil {
		t.Fatal(err)
	}
	return tn
}

// TestQuantizeTinyLlama: an F16 GGUF becomes Q8_0 and Q4_K_M files that llama.cpp loads,
// their 2-D weights quantized (the tiny model's 64-wide rows are below a K-quant's 256,
// so llama.cpp's own fallback types appear in the Q4_K_M mix) and close to the source.
func TestQuantizeTinyLlama(t *testing.T) {
	dir := t.TempDir()
	in := tinyF16(t, dir)
	src := tensorOf(t, in, "blk.0.attn_q.weight")
	want, err := src.F32()
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{"Q8_0", "q4_k_m"} {
		out := filepath.Join(dir, typ+".gguf")
		if err := Quantize(in, out, typ, "", 2); err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		q := tensorOf(t, out, "blk.0.attn_q.weight")
		if !q.DType.IsQuantized() {
			t.Errorf("%s: attn_q stored as %s", typ, q.DType)
		}
		got, err := q.F32()
		if err != nil {
			t.Fatal(err)
		}
		worst, scale := 0.0, 0.0
		for i := range want {
			worst = math.Max(worst, math.Abs(float64(got[i]-want[i])))
			scale = math.Max(scale, math.Abs(float64(want[i])))
		}
		if worst > 0.15*scale {
			t.Errorf("%s: largest error %.4g of values up to %.4g", typ, worst, scale)
		}
		m, err := llamacpp.LoadModel(out, llamacpp.ModelParams{})
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		m.Close()
	}
	if err := Quantize(in, filepath.Join(dir, "x.gguf"), "Q9_9", "", 1); err == nil {
		t.Error("an unknown type accepted")
	}
	if err := Quantize(in, filepath.Join(dir, "x.gguf"), "IQ2_XS", "", 1); err == nil {
		t.Error("IQ2_XS without an importance matrix accepted")
	}
	if err := Quantize(filepath.Join(dir, "missing.gguf"), filepath.Join(dir, "x.gguf"), "Q8_0", "", 1); err == nil {
		t.Error("a missing input accepted")
	}
}

// TestQuantizeIMatrix: an importance matrix reaches llama.cpp (it changes the Q4_0 bytes
// of the tensors it covers and no other), from a GGUF and from a legacy .dat file alike,
// and one that does not fit the model is refused.
func TestQuantizeIMatrix(t *testing.T) {
	dir := t.TempDir()
	in := tinyF16(t, dir)
	const name, cols = "blk.0.attn_q.weight", 64
	imp := make([]float32, cols)
	for i := range imp {
		imp[i] = float32(1 + 100*(i%2)) // odd columns matter a hundred times more
	}
	g := weights.NewGGUFWriter()
	g.Add("general.type", "imatrix")
	sums := make([]float32, cols)
	for i := range sums {
		sums[i] = imp[i] * 10
	}
	if err := g.AddF32(name+".in_sum2", weights.F32, []int{1, cols}, sums); err != nil {
		t.Fatal(err)
	}
	if err := g.AddF32(name+".counts", weights.F32, []int{1, 1}, []float32{10}); err != nil {
		t.Fatal(err)
	}
	ggufIM := filepath.Join(dir, "imatrix.gguf")
	if err := g.WriteFile(ggufIM); err != nil {
		t.Fatal(err)
	}
	datIM := filepath.Join(dir, "imatrix.dat")
	var dat bytes.Buffer
	put := func(v any) { binary.Write(&dat, binary.LittleEndian, v) }
	put(int32(1))
	put(int32(len(name)))
	dat.WriteString(name)
	put(int32(10)) // calls
	put(int32(cols))
	put(sums)
	if err := os.WriteFile(datIM, dat.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{ggufIM, datIM} {
		m, err := ReadIMatrix(p)
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range m[name] {
			if v != imp[i] {
				t.Fatalf("%s: column %d = %v, want %v", p, i, v, imp[i])
			}
		}
	}
	plain, with := filepath.Join(dir, "plain.gguf"), filepath.Join(dir, "with.gguf")
	if err := Quantize(in, plain, "Q4_0", "", 1); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{ggufIM, datIM} {
		if err := Quantize(in, with, "Q4_0", p, 1); err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(tensorOf(t, plain, name).Data, tensorOf(t, with, name).Data) {
			t.Errorf("%s: the importance matrix changed nothing in %s", p, name)
		}
		other := "blk.1.attn_q.weight"
		if !bytes.Equal(tensorOf(t, plain, other).Data, tensorOf(t, with, other).Data) {
			t.Errorf("%s: %s changed without an entry", p, other)
		}
	}
	bad := weights.NewGGUFWriter()
	bad.AddF32(name+".in_sum2", weights.F32, []int{1, 32}, make([]float32, 32))
	bad.AddF32(name+".counts", weights.F32, []int{1, 1}, []float32{1})
	badIM := filepath.Join(dir, "bad.gguf")
	if err := bad.WriteFile(badIM); err != nil {
		t.Fatal(err)
	}
	if err := Quantize(in, with, "Q4_0", badIM, 1); err == nil {
		t.Error("an importance matrix of the wrong width accepted")
	}
	if err := os.WriteFile(badIM, []byte("GGUF garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadIMatrix(badIM); err == nil {
		t.Error("a broken imatrix file accepted")
	}
}
