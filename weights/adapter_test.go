package weights

import (
	"bufio"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"synth/internal/fixtures"
)

// wrappedModules reads the list of wrapped modules from the fixture README ("- wrapped
// modules (12):" followed by "  - `name`" lines), so the expectation comes from the
// upstream description, not from our code.
func wrappedModules(t *testing.T, set string) []string {
	f, err := os.Open(filepath.Join(set, "README.md"))
	if err != nil {
		t.Skipf("%s has no README.md", set)
	}
	defer f.Close()
	var out []string
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "- wrapped modules"):
			in = true
		case in && strings.HasPrefix(line, "  - `"):
			out = append(out, strings.Trim(strings.TrimPrefix(line, "  - "), "`"))
		case in:
			in = len(out) == 0
		}
	}
	if len(out) == 0 {
		t.Skipf("%s/README.md lists no wrapped modules", set)
	}
	sort := slices.Clone(out)
	slices.Sort(sort)
	return sort
}

func TestBLIP2AdapterTargetsAndScaling(t *testing.T) {
	for _, set := range fixtures.Sets(t, "blip2", "adapter_config.json") {
		a, err := LoadAdapter(set)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		want := wrappedModules(t, set)
		if got := a.Modules(); !slices.Equal(got, want) {
			t.Errorf("%s: modules\n%v\nwant\n%v", set, got, want)
		}
		c := a.Config
		wantScale := c.LoraAlpha / float64(c.R)
		if c.UseRSLoRA {
			wantScale = c.LoraAlpha / math.Sqrt(float64(c.R))
		}
		src, err := Open(filepath.Join(set, "adapter_model.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		base, err := Open(filepath.Join(set, "model.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		defer base.Close()
		for _, m := range want {
			l := a.Lookup(m)
			if l.Scale != wantScale || l.R != c.R {
				t.Errorf("%s: r %d scale %v, want %d %v", m, l.R, l.Scale, c.R, wantScale)
			}
			w, err := base.Tensor(m + ".weight")
			if err != nil {
				t.Fatalf("%s: no base weight: %v", m, err)
			}
			if !slices.Equal(w.Shape, []int{l.Out, l.In}) {
				t.Errorf("%s: LoRA %dx%d, base weight %v", m, l.Out, l.In, w.Shape)
			}
			at, _ := src.Tensor("base_model.model." + m + ".lora_A.weight")
			if !slices.Equal(l.A, mustF32(t, at)) {
				t.Errorf("%s: A differs from lora_A.weight", m)
			}
		}
		// the regex selects exactly the wrapped Linear modules of the base model
		for _, tn := range base.Tensors() {
			if !strings.HasSuffix(tn.Name, ".weight") || len(tn.Shape) != 2 {
				continue
			}
			m := strings.TrimSuffix(tn.Name, ".weight")
			if c.Targets(m) != slices.Contains(want, m) {
				t.Errorf("Targets(%s) = %v", m, c.Targets(m))
			}
		}
	}
}

func mustConfig(t *testing.T, js string) *AdapterConfig {
	t.Helper()
	c, err := ParseAdapterConfig([]byte(js))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return c
}

// peft's check_target_module_exists, case by case.
func TestAdapterTargetMatching(t *testing.T) {
	cases := []struct {
		config string
		yes    []string
		no     []string
	}{
		{`{"target_modules": ["q_proj", "v_proj"]}`,
			[]string{"model.layers.0.self_attn.q_proj", "q_proj", "a.v_proj"},
			[]string{"model.layers.0.self_attn.xq_proj", "model.q_proj.lora", "k_proj"}},
		{`{"target_modules": ["self_attn.q_proj"]}`,
			[]string{"model.layers.3.self_attn.q_proj"},
			[]string{"model.layers.3.cross_attn.q_proj"}},
		// a string is re.fullmatch: no implicit suffix match, anchored at both ends
		{`{"target_modules": "q_proj"}`, []string{"q_proj"}, []string{"model.q_proj", "q_proj2"}},
		{`{"target_modules": ".*\\.layers\\.\\d+\\.(q|v)_proj"}`,
			[]string{"m.layers.12.q_proj", "m.layers.0.v_proj"},
			[]string{"m.layers.x.q_proj", "m.layers.1.k_proj", "m.layers.1.q_proj.x"}},
		{`{"target_modules": "a|ab"}`, []string{"ab", "a"}, []string{"abc"}},
		// layers_to_transform with the default layer pattern: the last ".<name>.<n>."
		{`{"target_modules": ["q_proj"], "layers_to_transform": [1, 3]}`,
			[]string{"model.layers.1.attn.q_proj", "enc.block.3.q_proj", "a.layers.9.experts.1.q_proj"},
			[]string{"model.layers.2.attn.q_proj", "top.q_proj", "a.layers.1.experts.9.q_proj"}},
		{`{"target_modules": ["q_proj"], "layers_to_transform": 0, "layers_pattern": "h"}`,
			[]string{"transformer.h.0.attn.q_proj"},
			[]string{"transformer.h.1.attn.q_proj", "transformer.layers.0.attn.q_proj"}},
		{`{"target_modules": ["q_proj"], "layers_to_transform": [0], "layers_pattern": ["layers", "h"]}`,
			[]string{"x.layers.0.q_proj", "x.h.0.q_proj"}, []string{"x.block.0.q_proj"}},
		// an exact name in the list bypasses layers_to_transform (peft checks it first)
		{`{"target_modules": ["model.layers.5.q_proj"], "layers_to_transform": [0]}`,
			[]string{"model.layers.5.q_proj"}, nil},
		// layers_to_transform does not apply to a regex target
		{`{"target_modules": ".*q_proj", "layers_to_transform": [0]}`,
			[]string{"m.layers.7.q_proj"}, nil},
		{`{"target_modules": ["q_proj"], "exclude_modules": ["vision.layers.0.q_proj"]}`,
			[]string{"text.layers.0.q_proj"}, []string{"vision.layers.0.q_proj"}},
		{`{"target_modules": ["q_proj"], "exclude_modules": "vision\\..*"}`,
			[]string{"text.layers.0.q_proj"}, []string{"vision.layers.0.q_proj"}},
	}
	for _, c := range cases {
		cfg := mustConfig(t, `{"peft_type":"LORA","r":4,"lora_alpha":8,`+c.config[1:])
		for _, m := range c.yes {
			if !cfg.Targets(m) {
				t.Errorf("%s: %s not targeted", c.config, m)
			}
		}
		for _, m := range c.no {
			if cfg.Targets(m) {
				t.Errorf("%s: %s targeted", c.config, m)
			}
		}
	}
}

func TestAdapterScalingPatterns(t *testing.T) {
	c := mustConfig(t, `{"peft_type":"LORA","r":8,"lora_alpha":16,"target_modules":["q","v","o"],
		"rank_pattern":{"layers.0.q":4,"q":2},"alpha_pattern":{"v":4,"o":1.5}}`)
	for _, tc := range []struct {
		module string
		r      int
		scale  float64
	}{
		{"m.layers.0.q", 4, 16.0 / 4}, // first matching key in file order
		{"m.layers.1.q", 2, 16.0 / 2},
		{"m.layers.0.v", 8, 4.0 / 8},
		{"layers.0.q", 4, 16.0 / 4}, // a key may match the whole name
		{"m.xo", 8, 16.0 / 8},       // "o" must follow a dot
		{"m.o", 8, 1.5 / 8},
	} {
		r, _ := c.RankAlpha(tc.module)
		if r != tc.r || c.Scaling(tc.module) != tc.scale {
			t.Errorf("%s: r %d scale %v, want %d %v", tc.module, r, c.Scaling(tc.module), tc.r, tc.scale)
		}
	}
	rs := mustConfig(t, `{"peft_type":"LORA","r":16,"lora_alpha":8,"use_rslora":true,"target_modules":["q"]}`)
	if s := rs.Scaling("a.q"); s != 2 {
		t.Errorf("rsLoRA scaling %v, want 8/sqrt(16) = 2", s)
	}
}

func TestAdapterRefusesUnsupported(t *testing.T) {
	for _, tc := range []struct{ config, mention string }{
		{`{"peft_type":"LORA","r":4,"target_modules":["q"],"use_dora":true}`, "DoRA"},
		{`{"peft_type":"LORA","r":4,"target_modules":["q"],"bias":"all"}`, "bias"},
		{`{"peft_type":"LORA","r":4,"target_modules":["q"],"bias":"lora_only"}`, "bias"},
		{`{"peft_type":"IA3","target_modules":["q"]}`, "IA3"},
		{`{"peft_type":"LORA","r":4,"target_modules":"all-linear"}`, "all-linear"},
		{`{"peft_type":"LORA","r":4,"target_modules":["q"],"layer_replication":[[0,2]]}`, "layer_replication"},
		{`{"peft_type":"LORA","r":0,"target_modules":["q"]}`, "r "},
		{`{"peft_type":"LORA","r":4}`, "target_modules"},
		{`{"peft_type":"LORA","r":4,"target_modules":"(?<=x)q"}`, "RE2"},
		{`{"peft_type":"LORA","r":4,"target_modules":"(a)\\1"}`, "RE2"},
		{`{"peft_type":"LORA","r":4,"target_modules":["q"],"rank_pattern":{"q":2.5}}`, "rank_pattern"},
		{`{"peft_type":"LORA","r":4,"target_modules":["q"],"fan_in_fan_out":true}`, "fan_in_fan_out"},
		{`{"peft_type":"LORA","r":4,"target_modules":["q"],"lora_alpha":1e308}`, "lora_alpha"},
		{`{"peft_type":"LORA","r":4,"target_modules":["q"],"alpha_pattern":{"q":-1e300}}`, "alpha_pattern"},
		{`not json`, "adapter_config.json"},
	} {
		_, err := ParseAdapterConfig([]byte(tc.config))
		if err == nil || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("%s: got %v, want an error mentioning %q", tc.config, err, tc.mention)
		}
	}
}

func writeAdapter(t *testing.T, config string, tensors ...Tensor) string {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "adapter_config.json"), []byte(config), 0o644)
	if err := WriteSafetensors(filepath.Join(dir, "adapter_model.safetensors"), tensors, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestAdapterWeightsChecked(t *testing.T) {
	cfg := `{"peft_type":"LORA","r":2,"lora_alpha":4,"target_modules":["q"],"modules_to_save":["head"]}`
	A := Tensor{Name: "base_model.model.l.0.q.lora_A.weight", DType: F32, Shape: []int{2, 3}, Data: f32Bytes(1, 2, 3, 4, 5, 6)}
	B := Tensor{Name: "base_model.model.l.0.q.lora_B.weight", DType: F32, Shape: []int{4, 2}, Data: f32Bytes(1, 0, 0, 1, 1, 1, 2, -1)}
	head := Tensor{Name: "base_model.model.head.weight", DType: F32, Shape: []int{1}, Data: f32Bytes(9)}
	a, err := LoadAdapter(writeAdapter(t, cfg, A, B, head))
	if err != nil {
		t.Fatal(err)
	}
	l := a.Lookup("l.0.q")
	if l == nil || l.In != 3 || l.Out != 4 || l.Scale != 2 {
		t.Fatalf("lora %+v", l)
	}
	if _, ok := a.Saved["head.weight"]; !ok {
		t.Errorf("modules_to_save tensor not kept: %v", a.Saved)
	}
	// delta = 2 * B @ A, B@A = [[1 2 3] [4 5 6] [5 7 9] [-2 -1 0]]
	want := []float32{2, 4, 6, 8, 10, 12, 10, 14, 18, -4, -2, 0}
	if d := l.Delta(); !slices.Equal(d, want) {
		t.Errorf("delta %v, want %v", d, want)
	}
	w := make([]float32, 12)
	w[0] = 1
	if err := l.Merge(w); err != nil || w[0] != 3 || w[11] != 0 {
		t.Errorf("merge %v %v", w, err)
	}
	a.Close()

	for name, tc := range map[string]struct {
		cfg     string
		tensors []Tensor
		want    error
		mention string
	}{
		"untargeted module": {strings.Replace(cfg, `["q"]`, `["k"]`, 1), []Tensor{A, B}, nil, "target_modules"},
		"only A":            {cfg, []Tensor{A}, ErrMissing, "l.0.q"},
		"rank mismatch":     {strings.Replace(cfg, `"r":2`, `"r":3`, 1), []Tensor{A, B}, ErrShape, "r = 3"},
		"dora":              {cfg, []Tensor{A, B, {Name: "base_model.model.l.0.q.lora_magnitude_vector", DType: F32, Shape: []int{4}, Data: make([]byte, 16)}}, nil, "DoRA"},
		"embedding": {cfg, []Tensor{{Name: "base_model.model.emb.lora_embedding_A", DType: F32, Shape: []int{2, 3}, Data: make([]byte, 24)}},
			nil, "embedding"},
		"conv": {cfg, []Tensor{{Name: A.Name, DType: F32, Shape: []int{2, 3, 1, 1}, Data: A.Data}, B}, nil, "convolutions"},
		"stray tensor": {cfg, []Tensor{A, B, {Name: "base_model.model.other.weight", DType: F32, Shape: []int{1}, Data: make([]byte, 4)}},
			ErrFormat, "other.weight"},
		// a diverged training run, or weights that overflow once scaled: refused at load,
		// naming the tensor, instead of merging into NaN or Inf weights
		"NaN in lora_A": {cfg, []Tensor{{Name: A.Name, DType: F32, Shape: A.Shape, Data: f32Bytes(1, 2, float32(math.NaN()), 4, 5, 6)}, B},
			ErrFormat, A.Name},
		"Inf in an F16 lora_B": {cfg, []Tensor{A, {Name: B.Name, DType: F16, Shape: B.Shape, Data: []byte{0, 0x3c, 0, 0x7c, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}}},
			ErrFormat, B.Name},
		"overflowing update": {cfg, []Tensor{{Name: A.Name, DType: F32, Shape: A.Shape, Data: f32Bytes(1e25, 2, 3, 4, 5, 6)},
			{Name: B.Name, DType: F32, Shape: B.Shape, Data: f32Bytes(1e20, 0, 0, 1, 1, 1, 2, -1)}}, ErrFormat, "float32"},
		"NaN in modules_to_save": {cfg, []Tensor{A, B, {Name: head.Name, DType: F32, Shape: []int{1}, Data: f32Bytes(float32(math.Inf(-1)))}},
			ErrFormat, "head.weight"},
	} {
		_, err := LoadAdapter(writeAdapter(t, tc.cfg, tc.tensors...))
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("%s: got %v, want %v mentioning %q", name, err, tc.want, tc.mention)
		}
	}
}

// adapter_model.bin (torch.save of the adapter state dict) loads through the unpickler.
func TestAdapterFromTorchBin(t *testing.T) {
	p := newPickle().global("collections", "OrderedDict").op(')', 'R', '(')
	p.str("base_model.model.l.0.q.lora_A.weight").tensor("0", 6, 0, []int{2, 3}, []int{3, 1})
	p.str("base_model.model.l.0.q.lora_B.weight").tensor("1", 8, 0, []int{4, 2}, []int{2, 1})
	p.op('u', '.')
	pt := ptFile(t, p.Bytes(), map[string][]byte{"0": f32Bytes(1, 2, 3, 4, 5, 6), "1": f32Bytes(1, 0, 0, 1, 1, 1, 2, -1)})
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "adapter_config.json"), []byte(`{"peft_type":"LORA","r":2,"lora_alpha":2,"target_modules":["q"]}`), 0o644)
	b, _ := os.ReadFile(pt)
	os.WriteFile(filepath.Join(dir, "adapter_model.bin"), b, 0o644)
	a, err := LoadAdapter(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if l := a.Lookup("l.0.q"); l == nil || l.Scale != 1 || !slices.Equal(l.B, []float32{1, 0, 0, 1, 1, 1, 2, -1}) {
		t.Errorf("lora from .bin: %+v", l)
	}
}
