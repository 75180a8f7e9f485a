package blip2

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"synth/internal/fixtures"
	"synth/internal/parity"
	"synth/native"
	"synth/weights"
)

func TestRealConfigs(t *testing.T) {
	for _, dir := range fixtures.Sets(t, "blip2", "real-configs.json") {
		raw, err := os.ReadFile(filepath.Join(dir, "real-configs.json"))
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]json.RawMessage
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		want := map[string][2]int{"Salesforce/blip2-opt-2.7b": {2560, 10240}, "Salesforce/blip2-opt-6.7b": {4096, 16384}}
		for name, dims := range want {
			var entry struct {
				ConfigJSON json.RawMessage `json:"config_json"`
			}
			if err := json.Unmarshal(doc[name], &entry); err != nil || entry.ConfigJSON == nil {
				t.Fatalf("%s: %v", name, err)
			}
			cfg, err := Parse(entry.ConfigJSON)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			v, q, x := cfg.Vision, cfg.QFormer, cfg.Text
			if v.Hidden != 1408 || v.Layers != 39 || v.Heads != 16 || v.Intermediate != 6144 || v.Tokens() != 257 || v.Eps != 1e-6 ||
				q.Hidden != 768 || q.Layers != 12 || q.CrossAttnFrequency != 2 || q.EncoderHidden != 1408 || q.Eps != 1e-12 ||
				cfg.NumQueryTokens != 32 || x.Hidden != dims[0] || x.FFN != dims[1] || x.Layers != 32 || x.Vocab != 50272 ||
				!slices.Equal(x.EOS, []int32{50118}) || x.BOS != 2 || x.PAD != 1 {
				t.Errorf("%s parsed as %+v", name, cfg)
			}
		}
	}
}

func TestParseRejects(t *testing.T) {
	for _, bad := range []string{
		`{"model_type": "clip"}`,
		`{"text_config": {"model_type": "t5"}}`,
		`{"text_config": {"word_embed_proj_dim": 512}}`,
		`{"vision_config": {"image_size": 225}}`,
		`{"qformer_config": {"hidden_act": "swish"}}`,
		`{"qformer_config": {"cross_attention_frequency": 0}}`,
		`not json`,
	} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

// A model converted to GGUF by synth convert loads from the file alone (config in the
// metadata) and computes the same logits. A Q8_0 file whose quantized set matches what
// the loader quantizes (every Linear and the token embeddings) gives exactly the logits
// of the F32 checkpoint quantized at load.
func TestGGUF(t *testing.T) {
	for _, dir := range fixtures.Sets(t, "blip2", "expected.safetensors") {
		src, err := weights.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		in := readInputs(t, dir)
		want, _ := parity.Load(t, filepath.Join(dir, "expected.safetensors")).F32(t, "logits")
		c := native.NewCtx(2)
		defer c.Close()
		logits := func(m *Model) []float32 {
			defer c.Release(native.Mark{})
			return c.ToHost(m.Forward(c, in.pixels, in.ids, in.mask))
		}
		loaded := loadSet(t, dir, false, false, native.Q8_0)
		q8 := logits(loaded)
		t.Logf("Q8_0 at load: logits relative error vs upstream F32 %.3g", parity.RelErr(q8, want, nil))
		for _, tc := range []struct {
			dt   weights.DType
			want []float32
			tol  float64
		}{{weights.F32, want, 1e-4}, {weights.Q8_0, q8, 1e-6}} {
			path := filepath.Join(t.TempDir(), "m.gguf")
			quantize, same := loaderQuantized(t, src, tc.dt)
			if !same {
				t.Logf("%s: skipping the %s GGUF comparison: this set's shapes make the load-time model quantize a tensor GGUF cannot", dir, tc.dt)
				continue
			}
			opts := weights.ConvertOptions{Type: tc.dt, Quantize: quantize}
			if _, err := weights.ConvertToGGUF(src, path, opts); err != nil {
				t.Fatal(err)
			}
			g, err := weights.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			m, err := Load(g, Options{DType: native.F32})
			if err != nil {
				t.Fatalf("%s: %v", tc.dt, err)
			}
			if e := parity.RelErr(logits(m), tc.want, nil); e > tc.tol {
				t.Errorf("%s GGUF: logits relative error %.3g > %.0e", tc.dt, e, tc.tol)
			}
			if tc.dt == weights.Q8_0 {
				a, err := weights.LoadAdapter(dir)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := Load(g, Options{DType: native.F32, Adapter: a}); err == nil || !strings.Contains(err.Error(), "live") {
					t.Errorf("merging into a Q8_0 file: %v, want an error pointing at the live adapter", err)
				}
				if _, err := Load(g, Options{DType: native.F32, Adapter: a, LiveLoRA: true}); err != nil {
					t.Errorf("live adapter on a Q8_0 file: %v", err)
				}
				a.Close()
			}
			g.Close()
		}
	}
}

// loaderQuantized lists what Load with DType dt quantizes, as convert --quantize
// names: every 2-D weight but the position tables whose rows fill whole blocks (the loader
// keeps the others float32, and convert refuses them). ok is false when the loader would
// also quantize a tensor GGUF cannot hold in dt (a patch embedding whose in*kh*kw fills
// whole blocks while kw does not): a converted file cannot match the load-time model then.
// Which tensors qualify depends on the set's shapes (a hidden size need not be a multiple
// of 32), so it is derived here rather than listed.
func loaderQuantized(t *testing.T, src *weights.Source, dt weights.DType) (names []string, ok bool) {
	t.Helper()
	bs := dt.BlockSize()
	ok = true
	for _, tn := range src.Tensors() {
		sh := tn.Shape
		switch {
		case len(sh) == 4 && (sh[1]*sh[2]*sh[3])%bs == 0 && sh[3]%bs != 0:
			t.Logf("%s %v: the loader quantizes its %d-wide rows, GGUF cannot store it as %s", tn.Name, sh, sh[1]*sh[2]*sh[3], dt)
			ok = false
		case len(sh) != 2 || !strings.HasSuffix(tn.Name, ".weight") || strings.Contains(tn.Name, "position"):
		case sh[1]%bs == 0:
			names = append(names, tn.Name)
		default:
			t.Logf("%s %v stays float32 as %s: rows of %d values", tn.Name, sh, dt, sh[1])
		}
	}
	return names, ok
}

// Images with prompts of different lengths in one batch give the ids each gives alone.
func TestBatchMatchesSingle(t *testing.T) {
	for _, dir := range fixtures.Sets(t, "blip2", "expected.safetensors") {
		m := loadSet(t, dir, false, false, native.F32)
		in := readInputs(t, dir)
		if in.b < 2 {
			t.Skipf("%s has %d image: a batch needs at least 2", dir, in.b)
		}
		c := native.NewCtx(2)
		defer c.Close()
		// a full prompt, BOS alone, then prompts one id shorter each: every length differs
		prompts := []Prompt{{IDs: in.ids[:in.tp]}, {}}
		for i := 2; i < in.b; i++ {
			prompts = append(prompts, Prompt{IDs: in.ids[:max(1, in.tp+1-i)]})
		}
		for _, beams := range []int{1, 3} {
			p := m.Params(8)
			p.NumBeams = beams
			g, err := m.NewGenerator(c, in.b, in.tp, p)
			if err != nil {
				t.Fatal(err)
			}
			together, err := g.Generate(in.pixels, prompts, p)
			if err != nil {
				t.Fatal(err)
			}
			img := in.pixels.F32()
			per := len(img) / in.b
			for i := range prompts {
				one := native.FromF32(img[i*per:(i+1)*per], append([]int{1}, in.pixels.Shape()[1:]...)...)
				alone, err := g.Generate(one, prompts[i:i+1], p)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(alone[0].Tokens, together[i].Tokens) {
					t.Errorf("beams %d image %d: alone %v, in a batch %v", beams, i, alone[0].Tokens, together[i].Tokens)
				}
			}
		}
	}
}

func TestLoadErrors(t *testing.T) {
	for _, dir := range fixtures.Sets(t, "blip2", "expected.safetensors") {
		src, err := weights.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		var kept []weights.Tensor
		for _, x := range src.Tensors() {
			if x.Name != "qformer.encoder.layer.0.crossattention.attention.key.weight" {
				kept = append(kept, x)
			}
		}
		kept = append(kept, weights.Tensor{Name: "extra.weight", DType: weights.F32, Shape: []int{1}, Data: make([]byte, 4)})
		mem, err := weights.FromTensors("broken", kept, src.Config(), nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Load(mem, Options{DType: native.F32})
		if err == nil || !errors.Is(err, weights.ErrMissing) ||
			!strings.Contains(err.Error(), "qformer.encoder.layer.0.crossattention.attention.key.weight") ||
			!strings.Contains(err.Error(), "extra.weight") {
			t.Errorf("missing and unused tensors: %v", err)
		}
		noCfg, err := weights.FromTensors("no-config", src.Tensors(), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Load(noCfg, Options{}); err == nil || !strings.Contains(err.Error(), "config") {
			t.Errorf("no config: %v", err)
		}
		g, err := (&Model{Cfg: Defaults()}).NewGenerator(nil, 0, 4, (&Model{Cfg: Defaults()}).Params(5))
		if err == nil || g != nil {
			t.Errorf("generator for 0 images: %v", err)
		}
	}
}

func TestGenerateRejectsBadInput(t *testing.T) {
	for _, dir := range fixtures.Sets(t, "blip2", "expected.safetensors") {
		m := loadSet(t, dir, false, false, native.F32)
		in := readInputs(t, dir)
		c := native.NewCtx(1)
		defer c.Close()
		p := m.Params(4)
		g, err := m.NewGenerator(c, in.b, in.tp, p)
		if err != nil {
			t.Fatal(err)
		}
		// one prompt per image of the set, the first replaced by the case's
		prompts := func(first Prompt) []Prompt {
			ps := make([]Prompt, in.b)
			ps[0] = first
			return ps
		}
		for name, call := range map[string]func() error{
			"too many images": func() error {
				_, err := g.Generate(in.pixels, make([]Prompt, in.b+1), p)
				return err
			},
			"prompt too long": func() error {
				_, err := g.Generate(in.pixels, prompts(Prompt{IDs: make([]int32, in.tp+1)}), p)
				return err
			},
			"id outside vocab": func() error {
				_, err := g.Generate(in.pixels, prompts(Prompt{IDs: []int32{2, int32(m.Cfg.Text.Vocab)}}), p)
				return err
			},
			"more new tokens": func() error {
				_, err := g.Generate(in.pixels, prompts(Prompt{}), m.Params(5))
				return err
			},
		} {
			if err := call(); !errors.Is(err, ErrInput) {
				t.Errorf("%s: %v, want ErrInput", name, err)
			}
		}
	}
}

// writeAdapter writes a PEFT adapter with random A and B on modules of the given shapes.
func writeAdapter(t *testing.T, modules map[string][2]int, r int, alpha float64, seed uint64) string {
	t.Helper()
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(seed, 5))
	var ts []weights.Tensor
	var targets []string
	for mod, shape := range modules {
		out, in := shape[0], shape[1]
		a, b := make([]float32, r*in), make([]float32, out*r)
		for i := range a {
			a[i] = float32(rng.NormFloat64() * 0.2)
		}
		for i := range b {
			b[i] = float32(rng.NormFloat64() * 0.2)
		}
		ts = append(ts,
			weights.Tensor{Name: "base_model.model." + mod + ".lora_A.weight", DType: weights.F32, Shape: []int{r, in}, Data: f32Bytes(a)},
			weights.Tensor{Name: "base_model.model." + mod + ".lora_B.weight", DType: weights.F32, Shape: []int{out, r}, Data: f32Bytes(b)})
		targets = append(targets, regexp.QuoteMeta(mod))
	}
	cfg, _ := json.Marshal(map[string]any{"peft_type": "LORA", "r": r, "lora_alpha": alpha,
		"target_modules": strings.Join(targets, "|"), "bias": "none", "fan_in_fan_out": false, "use_rslora": false, "use_dora": false})
	if err := os.WriteFile(filepath.Join(dir, "adapter_config.json"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := weights.WriteSafetensors(filepath.Join(dir, "adapter_model.safetensors"), ts, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func f32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// An adapter on Linear layers of all three parts (vision tower, Q-Former, projection,
// OPT) gives the same logits live and merged, and changes them.
func TestLoRAEveryPartLiveEqualsMerged(t *testing.T) {
	for _, dir := range fixtures.Sets(t, "blip2", "expected.safetensors") {
		base := loadSet(t, dir, false, false, native.F32)
		cfg := base.Cfg
		d, q, e := cfg.Vision.Hidden, cfg.QFormer.Hidden, cfg.Text.Hidden
		mods := map[string][2]int{
			"vision_model.encoder.layers.0.self_attn.qkv":              {3 * d, d},
			"vision_model.encoder.layers.0.self_attn.projection":       {d, d},
			"vision_model.encoder.layers.1.mlp.fc1":                    {cfg.Vision.Intermediate, d},
			"qformer.encoder.layer.0.crossattention.attention.key":     {q, d},
			"qformer.encoder.layer.0.output_query.dense":               {q, cfg.QFormer.Intermediate},
			"language_projection":                                      {e, q},
			"language_model.model.decoder.layers.0.self_attn.out_proj": {e, e},
			"language_model.model.decoder.layers.1.fc2":                {e, cfg.Text.FFN},
		}
		adir := writeAdapter(t, mods, 4, 8, 11)
		src, err := weights.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		in := readInputs(t, dir)
		c := native.NewCtx(2)
		defer c.Close()
		logits := func(m *Model) []float32 {
			defer c.Release(native.Mark{})
			return c.ToHost(m.Forward(c, in.pixels, in.ids, in.mask))
		}
		var got [2][]float32
		for i, live := range []bool{true, false} {
			a, err := weights.LoadAdapter(adir)
			if err != nil {
				t.Fatal(err)
			}
			m, err := Load(src, Options{DType: native.F32, Adapter: a, LiveLoRA: live})
			if err != nil {
				t.Fatal(err)
			}
			got[i] = logits(m)
			a.Close()
		}
		if e := parity.RelErr(got[0], got[1], nil); e > 1e-4 {
			t.Errorf("live vs merged logits: relative error %.3g", e)
		}
		if e := parity.RelErr(got[1], logits(base), nil); e < 1e-2 {
			t.Errorf("the adapter barely changes the logits (relative %.3g): is it applied?", e)
		}
	}
}
