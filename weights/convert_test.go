package weights

import (
	"bytes"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"synth/internal/fixtures"
)

// Long-CLIP converted to GGUF at every level loads like the original: same names, order
// and shapes, config.json in the metadata, F32 tensors bitwise equal, quantized ones equal
// to our (ggml-identical) codec's round trip of the original.
func TestConvertLongCLIPLoadsLikeTheOriginal(t *testing.T) {
	for _, set := range fixtures.Sets(t, "longclip", "model.safetensors") {
		orig, err := Open(set)
		if err != nil {
			t.Fatal(err)
		}
		defer orig.Close()
		for _, dt := range []DType{F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1} {
			out := filepath.Join(t.TempDir(), "m.gguf")
			plan, err := ConvertToGGUF(orig, out, ConvertOptions{Type: dt, Architecture: "longclip", Name: "tiny"})
			if err != nil {
				t.Fatal(err)
			}
			g, err := Open(out)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(g.Config(), orig.Config()) {
				t.Errorf("%s: config not carried over", dt)
			}
			if a, _ := g.MetaString("general.architecture"); a != "longclip" {
				t.Errorf("%s: architecture %q", dt, a)
			}
			ot, gt := orig.Tensors(), g.Tensors()
			if len(ot) != len(gt) {
				t.Fatalf("%s: %d tensors, want %d", dt, len(gt), len(ot))
			}
			quantized := 0
			for i, o := range ot {
				c := gt[i]
				if c.Name != o.Name || !slices.Equal(c.Shape, o.Shape) || c.DType != plan[i].To {
					t.Fatalf("%s: tensor %d is %v, want %s %v as %s", dt, i, c, o.Name, o.Shape, plan[i].To)
				}
				if c.DType == o.DType {
					if !bytes.Equal(c.Data, o.Data) {
						t.Errorf("%s: %s changed", dt, o.Name)
					}
					continue
				}
				quantized++
				q, _ := Quantize(c.DType, mustF32(t, o))
				if !bytes.Equal(c.Data, q) {
					t.Errorf("%s: %s not encoded like Quantize", dt, o.Name)
				}
			}
			// which tensors the default rules touch: the Linear weights whose dims both fill
			// whole blocks (a set's widths need not be multiples of 32)
			quantizable := 0
			for _, it := range plan {
				linear := strings.HasSuffix(it.Name, "in_proj_weight") || strings.HasSuffix(it.Name, "c_fc.weight") ||
					strings.HasSuffix(it.Name, "c_proj.weight") || strings.HasSuffix(it.Name, "out_proj.weight")
				bs := dt.BlockSize()
				fits := len(it.Shape) == 2 && it.Shape[0]%bs == 0 && it.Shape[1]%bs == 0
				if linear && fits {
					quantizable++
				}
				if (it.To == dt) != (linear && fits || dt == F32) {
					t.Errorf("%s: %s stored as %s (%s)", dt, it.Name, it.To, it.Reason)
				}
			}
			switch {
			case dt != F32 && quantizable == 0:
				t.Logf("%s: %s has no Linear weight whose dims are multiples of %d: nothing to quantize", set, dt, dt.BlockSize())
			case dt != F32 && quantized == 0:
				t.Errorf("%s: nothing was quantized", dt)
			}
			// a loader's Scope reads the GGUF with the original names and shapes
			s := NewScope(g)
			for _, o := range ot {
				s.Get(o.Name, o.Shape...)
			}
			if err := s.Finish(); err != nil {
				t.Errorf("%s: %v", dt, err)
			}
			g.Close()
		}
	}
}

func TestConvertMergesLoRA(t *testing.T) {
	for _, set := range fixtures.Sets(t, "blip2", "adapter_config.json") {
		base, err := Open(set)
		if err != nil {
			t.Fatal(err)
		}
		defer base.Close()
		a, err := LoadAdapter(set)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		out := filepath.Join(t.TempDir(), "merged.gguf")
		var calls int
		plan, err := ConvertToGGUF(base, out, ConvertOptions{Type: F32, Adapter: a, Architecture: "blip-2",
			Progress: func(done, total int, name string, n int64) { calls++ }})
		if err != nil {
			t.Fatal(err)
		}
		if calls != len(plan) {
			t.Errorf("progress called %d times for %d tensors", calls, len(plan))
		}
		g, err := Open(out)
		if err != nil {
			t.Fatal(err)
		}
		merged := 0
		for _, it := range plan {
			bt, _ := base.Tensor(it.Name)
			gt, _ := g.Tensor(it.Name)
			want := mustF32(t, bt)
			if l := a.Lookup(strings.TrimSuffix(it.Name, ".weight")); l != nil && strings.HasSuffix(it.Name, ".weight") {
				l.Merge(want)
				merged++
				if !it.Merged {
					t.Errorf("%s not marked merged", it.Name)
				}
			}
			if !slices.Equal(mustF32(t, gt), want) {
				t.Errorf("%s differs from base (+ LoRA)", it.Name)
			}
		}
		if merged != len(a.Modules()) {
			t.Errorf("merged %d modules, adapter has %d", merged, len(a.Modules()))
		}
		if m, ok := g.Meta("synth.lora.modules"); !ok || !slices.Equal(m.([]string), a.Modules()) {
			t.Errorf("synth.lora.modules %v", m)
		}
		g.Close()
	}
}

func TestConvertPlanRules(t *testing.T) {
	src := memSource(t,
		f32Tensor("enc.fc.weight", 64, 32),
		f32Tensor("enc.odd.weight", 64, 33),
		f32Tensor("enc.norm.weight", 64),
		f32Tensor("embed.weight", 64, 32),
		f32Tensor("head.weight", 32, 64),
		f32Tensor("conv.weight", 32, 3, 2, 2),
		Tensor{Name: "ids", DType: I64, Shape: []int{2}, Data: make([]byte, 16)},
	)
	plan, err := Plan(src, ConvertOptions{Type: Q8_0, Keep: []string{"head.*"}, Quantize: []string{"embed.*"}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]DType{"enc.fc.weight": Q8_0, "enc.odd.weight": F32, "enc.norm.weight": F32,
		"embed.weight": Q8_0, "head.weight": F32, "conv.weight": F32, "ids": I64}
	for _, it := range plan {
		if it.To != want[it.Name] {
			t.Errorf("%s -> %s (%s), want %s", it.Name, it.To, it.Reason, want[it.Name])
		}
	}
	if _, err := Plan(src, ConvertOptions{Type: Q8_0, Quantize: []string{"enc.odd.*"}}); err == nil {
		t.Error("forcing a 33-wide tensor to Q8_0 was accepted")
	}
	if _, err := Plan(src, ConvertOptions{Type: Q4_K}); err == nil {
		t.Error("Q4_K output accepted")
	}
	if _, err := Plan(src, ConvertOptions{Type: F16, Keep: []string{"["}}); err == nil {
		t.Error("bad pattern accepted")
	}
	u8 := memSource(t, Tensor{Name: "mask", DType: U8, Shape: []int{1}, Data: []byte{1}})
	if _, err := Plan(u8, ConvertOptions{Type: F16}); err == nil {
		t.Error("U8 tensor accepted though GGUF has no U8")
	}
}
