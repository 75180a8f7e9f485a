package finetune

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"synth/vision/lora"
	"testing"

	"synth/internal/fixtures"
	"synth/internal/parity"
	"synth/native"
)

// TestLossGradient checks the whole training backward pass (OPT, the language
// projection and the Q-Former, with every dropout on) against central differences of
// the loss, adapter by adapter: the dropout masks are functions of the seeds, so the
// perturbed forward passes see the same masks. The fixture's model is used with
// adapters on nearly every Linear layer, its OPT's ReLU swapped for GELU: a ReLU's kinks
// make central differences wrong by several percent at any step float32 can resolve.
func TestLossGradient(t *testing.T) {
	set := fixtures.Sets(t, "finetune", "expected.json")[0]
	for _, dev := range parity.Devices(t) {
		t.Run(dev.String(), func(t *testing.T) {
			o := Defaults()
			o.Model, o.Data, o.Out = smoothModel(t, filepath.Join(set, "model")), filepath.Join(set, "products.jsonl"), t.TempDir()
			o.DType, o.Device, o.Threads, o.ValFraction = native.F32, dev, 1, 0
			o.LoRA = lora.LoRAConfig{R: 3, Alpha: 6, Dropout: 0.2,
				TargetRegex: `.*(qformer.*(query|key|value|dense)|language_projection|decoder.*(q_proj|k_proj|v_proj|out_proj|fc1|fc2))`}
			o.BaseDropout = 0.15
			tr := &trainer{o: &o}
			t.Cleanup(tr.close)
			if err := tr.open(); err != nil {
				t.Fatal(err)
			}
			if !tr.qTrain {
				t.Fatal("Q-Former targets did not switch to recomputed prefixes")
			}
			ad := tr.md.Adapter
			r := rand.New(rand.NewPCG(3, 4))
			for _, p := range ad.Params { // B = 0 would leave A's gradient zero
				for i := range p.B {
					p.B[i] = float32(r.NormFloat64() * 0.2)
				}
			}
			exs := tr.data.train
			lossAt := func(backward bool) float64 {
				if err := ad.Attach(tr.m.Device()); err != nil {
					t.Fatal(err)
				}
				c := tr.c
				mk := c.Mark()
				defer c.Release(mk)
				tr.md.Train, tr.md.GradScale = true, 1
				sd := &lora.Seeds{Base: 77}
				x, bt, qt, err := tr.inputs(exs, sd, true)
				if err != nil {
					t.Fatal(err)
				}
				l, _, dp := tr.md.Loss(c, x, bt, tr.m.Cfg.NumQueryTokens, sd, backward, true)
				if backward {
					tr.md.EncodeBackward(c, qt, dp)
				}
				return l
			}
			ad.ZeroGrads()
			lossAt(true)
			checked := 0
			for _, p := range ad.Params {
				for _, x := range []struct {
					w, g []float32
					ab   string
				}{{p.A, p.GA, "A"}, {p.B, p.GB, "B"}} {
					// a random direction over this tensor
					v := make([]float32, len(x.w))
					var gv, norm float64
					for i := range v {
						v[i] = float32(r.NormFloat64())
						norm += float64(v[i]) * float64(v[i])
					}
					norm = math.Sqrt(norm)
					for i := range v {
						v[i] /= float32(norm)
						gv += float64(v[i]) * float64(x.g[i])
					}
					const h = 2e-2
					orig := append([]float32(nil), x.w...)
					shift := func(s float32) {
						for i := range x.w {
							x.w[i] = orig[i] + s*v[i]
						}
					}
					central := func(h float32) float64 {
						shift(h)
						lp := lossAt(false)
						shift(-h)
						lm := lossAt(false)
						return (lp - lm) / (2 * float64(h))
					}
					// Richardson: the h^2 term of the central difference cancels, so h can
					// be large enough for float32's rounding of the loss not to matter
					fd := (4*central(h/2) - central(h)) / 3
					copy(x.w, orig)
					if math.Abs(gv) < 1e-3 && math.Abs(fd) < 1e-3 {
						continue // below float32 noise of the loss over 2h
					}
					checked++
					if e := math.Abs(fd-gv) / math.Max(math.Abs(gv), math.Abs(fd)); e > 0.02 {
						t.Errorf("%s.%s: directional derivative %.6g, finite difference %.6g (rel %.2g)", p.Module, x.ab, gv, fd, e)
					}
				}
			}
			if checked < len(ad.Params) {
				t.Errorf("only %d of %d tensors had a measurable gradient", checked, 2*len(ad.Params))
			}
			t.Logf("%d adapted layers, %d tensors checked", len(ad.Params), checked)
		})
	}
}

// smoothModel copies a BLIP-2 folder with its OPT's activation set to GELU.
func smoothModel(t *testing.T, dir string) string {
	t.Helper()
	out := t.TempDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() == "config.json" {
			var cfg map[string]any
			if err := json.Unmarshal(b, &cfg); err != nil {
				t.Fatal(err)
			}
			text, _ := cfg["text_config"].(map[string]any)
			if text == nil {
				text = map[string]any{}
				cfg["text_config"] = text
			}
			text["activation_function"] = "gelu"
			if b, err = json.Marshal(cfg); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(out, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return out
}
