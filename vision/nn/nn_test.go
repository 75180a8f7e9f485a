package nn

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"synth/native"
	"synth/weights"
)

func f32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func randVec(r *rand.Rand, n int, s float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64() * s)
	}
	return v
}

func tensor(name string, v []float32, shape ...int) weights.Tensor {
	return weights.Tensor{Name: name, DType: weights.F32, Shape: shape, Data: f32Bytes(v)}
}

// writeAdapter writes a PEFT adapter folder with one LoRA on module.
func writeAdapter(t *testing.T, module string, a, b []float32, r, in, out int, alpha float64) string {
	t.Helper()
	dir := t.TempDir()
	cfg := map[string]any{
		"peft_type": "LORA", "r": r, "lora_alpha": alpha, "target_modules": []string{"fc"},
		"bias": "none", "fan_in_fan_out": false, "use_rslora": false, "use_dora": false,
	}
	js, _ := json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(dir, "adapter_config.json"), js, 0o644); err != nil {
		t.Fatal(err)
	}
	err := weights.WriteSafetensors(filepath.Join(dir, "adapter_model.safetensors"), []weights.Tensor{
		tensor("base_model.model."+module+".lora_A.weight", a, r, in),
		tensor("base_model.model."+module+".lora_B.weight", b, out, r),
	}, map[string]string{"format": "pt"})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestLiveLoRAEqualsMerged(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	const in, out, rank, rows = 37, 23, 4, 9
	w, bias := randVec(r, out*in, 0.2), randVec(r, out, 0.1)
	src, err := weights.FromTensors("mem", []weights.Tensor{
		tensor("block.fc.weight", w, out, in), tensor("block.fc.bias", bias, out),
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := writeAdapter(t, "block.fc", randVec(r, rank*in, 0.3), randVec(r, out*rank, 0.3), rank, in, out, 8)
	ad, err := weights.LoadAdapter(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ad.Close()

	c := native.NewCtx(2)
	defer c.Close()
	x := native.FromF32(randVec(r, rows*in, 1), rows, in)
	var results [2][]float32
	for i, live := range []bool{false, true} {
		ld := NewLoader(weights.NewScope(src), Options{DType: native.F32, Adapter: ad, LiveLoRA: live})
		lin := ld.Sub("block").Linear("fc", out, in, true)
		if err := ld.Finish(); err != nil {
			t.Fatal(err)
		}
		if (lin.LoRA != nil) != live {
			t.Fatalf("live=%v: LoRA attached = %v", live, lin.LoRA != nil)
		}
		results[i] = c.ToHost(lin.Forward(c, x, native.ReLU, native.Tensor{}))
		c.Release(native.Mark{})
	}
	// Plain reference: relu(x W^T + b + 2 * (x A^T) B^T), scale = alpha/r = 2.
	ad2, _ := weights.LoadAdapter(dir)
	defer ad2.Close()
	merged := append([]float32(nil), w...)
	if err := ad2.Lookup("block.fc").Merge(merged); err != nil {
		t.Fatal(err)
	}
	xs := x.F32()
	for i := 0; i < rows; i++ {
		for o := 0; o < out; o++ {
			s := float64(bias[o])
			for k := 0; k < in; k++ {
				s += float64(xs[i*in+k]) * float64(merged[o*in+k])
			}
			want := math.Max(s, 0)
			for v, res := range results {
				if got := float64(res[i*out+o]); math.Abs(got-want) > 1e-4*(1+math.Abs(want)) {
					t.Fatalf("variant %d row %d col %d: %g, want %g", v, i, o, got, want)
				}
			}
		}
	}
	if ad.Lookup("block.fc").Scale != 2 {
		t.Fatalf("scale %v, want alpha/r = 2", ad.Lookup("block.fc").Scale)
	}
}

func TestLoaderDTypesAndProjection(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	const in, out = 64, 5
	w := randVec(r, out*in, 0.5)
	half, err := weights.Quantize(weights.F16, w)
	if err != nil {
		t.Fatal(err)
	}
	p := randVec(r, 3*2, 1) // [in=3, out=2]
	src, _ := weights.FromTensors("mem", []weights.Tensor{
		tensor("a.weight", w, out, in),
		{Name: "h.weight", DType: weights.F16, Shape: []int{out, in}, Data: half},
		tensor("proj", p, 3, 2),
	}, nil, nil)
	ld := NewLoader(weights.NewScope(src), Options{DType: native.Q8_0})
	a := ld.Linear("a", out, in, false)
	h := ld.Linear("h", out, in, false)
	pr := ld.Projection("proj", 3, 2)
	var logs bytes.Buffer
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	if err := ld.Finish(); err != nil {
		t.Fatal(err)
	}
	// The float32 fallback of a matrix whose rows do not fill whole blocks is right, and
	// said: the counts per dtype, and which stayed float32.
	if got := ld.MatrixDTypes(); got["q8_0"] != 2 || got["f32"] != 1 || len(got) != 2 {
		t.Errorf("matrix dtypes %v, want q8_0 x2 and f32 x1", got)
	}
	if l := logs.String(); !strings.Contains(l, "kept_f32=1") || !strings.Contains(l, "proj") || !strings.Contains(l, "q8_0 x2") {
		t.Errorf("Finish logged %q, want the counts and the float32 fallback of proj", l)
	}
	if a.W.DType() != native.Q8_0 || h.W.DType() != native.Q8_0 {
		t.Fatalf("dtypes %v %v, want q8_0 for both", a.W.DType(), h.W.DType())
	}
	// Projection is applied as x @ P: with x = e_i the output is row i of P.
	pt := pr.W.Dequantize() // Q8_0 needs k % 32 == 0; k = 3 stays F32
	if pr.W.DType() != native.F32 {
		t.Fatalf("3-wide projection converted to %v", pr.W.DType())
	}
	for i := 0; i < 3; i++ {
		for o := 0; o < 2; o++ {
			if pt[o*3+i] != p[i*2+o] {
				t.Fatalf("projection not transposed at %d,%d", i, o)
			}
		}
	}

	ld = NewLoader(weights.NewScope(src), Options{DType: native.F16})
	h = ld.Linear("h", out, in, false)
	if h.W.DType() != native.F16 {
		t.Fatalf("f16 tensor with f16 requested: %v", h.W.DType())
	}
}

func TestFinishReportsMissingAndForeignAdapter(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	src, _ := weights.FromTensors("mem", []weights.Tensor{
		tensor("fc.weight", randVec(r, 4*32, 1), 4, 32),
		tensor("extra", randVec(r, 2, 1), 2),
	}, nil, nil)
	dir := writeAdapter(t, "other.fc", randVec(r, 2*32, 1), randVec(r, 4*2, 1), 2, 32, 4, 2)
	ad, err := weights.LoadAdapter(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ad.Close()
	ld := NewLoader(weights.NewScope(src), Options{DType: native.F32, Adapter: ad})
	ld.Linear("fc", 4, 32, true) // no fc.bias in the checkpoint
	err = ld.Finish()
	if err == nil {
		t.Fatal("Finish accepted a missing bias, an unused tensor and a foreign adapter")
	}
	for _, want := range []string{"fc.bias", "extra", "other.fc"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %q:\n%v", want, err)
		}
	}
}
