package weights

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// PEFT LoRA adapters: adapter_config.json + adapter_model.safetensors (or .bin).
//
// Target matching follows peft's check_target_module_exists (peft 0.10 to current):
//   - target_modules as a string: re.fullmatch(target_modules, module);
//   - as a list: module equals an entry, or ends with "." + entry; only then
//     layers_to_transform applies: the layer index is the number after
//     ".<layers_pattern>." (any pattern from the list), or when layers_pattern is empty
//     the last ".<name>.<digits>." in the module name, and must be in
//     layers_to_transform (an int or a list);
//   - exclude_modules (newer peft) removes matches the same way (string: fullmatch,
//     list: exact or suffix).
//
// rank_pattern / alpha_pattern keys are looked up like current peft's get_pattern_key:
// the first key (in file order) for which re.match(r"(.*\.)?(KEY)$", module) succeeds,
// separately for the rank and the alpha (peft 0.10 looked up both with one key found in
// the two dicts chained; the two agree unless the patterns of the two dicts overlap
// differently). The rank found must equal the rank of the stored tensors.
//
// Python regexes run on Go's RE2: synth anchors a fullmatch as ^(?:...)$ and re.match as
// ^(?:...). \d, character classes, alternation, groups, (?P<name>...) and lazy/greedy
// quantifiers behave the same on module names (ASCII); lookaround and backreferences do
// not exist in RE2 and give a clear error.

// AdapterConfig is the part of adapter_config.json that affects inference.
type AdapterConfig struct {
	PeftType          string
	BaseModel         string // base_model_name_or_path
	R                 int
	LoraAlpha         float64
	UseRSLoRA         bool
	Bias              string
	TargetRegex       string   // target_modules given as a string (a regex), else ""
	TargetModules     []string // target_modules given as a list
	ExcludeRegex      string
	ExcludeModules    []string
	ModulesToSave     []string
	LayersToTransform []int // nil: every layer
	LayersPattern     []string
	RankPattern       []PatternValue // file order
	AlphaPattern      []PatternValue

	targetRe, excludeRe *regexp.Regexp
	layerRes            []*regexp.Regexp
	rankRes, alphaRes   []*regexp.Regexp
}

// PatternValue is one rank_pattern / alpha_pattern entry.
type PatternValue struct {
	Key   string
	Value float64
}

// LoRA is one wrapped Linear module: y = x W^T + b + Scale * (x A^T) B^T.
type LoRA struct {
	Module string    // base module name, e.g. "qformer.encoder.layer.0.attention.attention.query"
	R      int       // rank
	In     int       // input features
	Out    int       // output features
	A      []float32 // [R, In] (lora_A.weight)
	B      []float32 // [Out, R] (lora_B.weight)
	Scale  float64   // lora_alpha / R, or lora_alpha / sqrt(R) with rsLoRA (pattern-adjusted)
}

// Adapter is a loaded PEFT LoRA adapter.
type Adapter struct {
	Dir    string
	Config AdapterConfig
	// Layers maps each base module name to its LoRA.
	Layers map[string]*LoRA
	// Saved holds modules_to_save replacements by full base parameter name
	// (e.g. "language_projection.weight"): the loader uses them instead of the base tensors.
	Saved map[string]Tensor
	src   *Source
}

// Modules lists the wrapped base module names, sorted.
func (a *Adapter) Modules() []string {
	out := make([]string, 0, len(a.Layers))
	for m := range a.Layers {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

// Lookup returns the LoRA of a base module, or nil.
func (a *Adapter) Lookup(module string) *LoRA { return a.Layers[module] }

// Close releases the adapter's weight file (A, B are copies and stay valid; Saved tensors
// do not).
func (a *Adapter) Close() error {
	if a.src == nil {
		return nil
	}
	return a.src.Close()
}

// Delta returns Scale * B @ A as a new slice, [Out, In] like the base weight. Accumulates
// in float64.
func (l *LoRA) Delta() []float32 {
	d := make([]float32, l.Out*l.In)
	row := make([]float64, l.In)
	for o := 0; o < l.Out; o++ {
		clear(row)
		for k := 0; k < l.R; k++ {
			b := float64(l.B[o*l.R+k])
			a := l.A[k*l.In : (k+1)*l.In]
			for i, av := range a {
				row[i] += b * float64(av)
			}
		}
		for i, v := range row {
			d[o*l.In+i] = float32(l.Scale * v)
		}
	}
	return d
}

// Merge adds the delta to w, the base module's weight [Out, In], in float32:
// W += Scale * B @ A.
func (l *LoRA) Merge(w []float32) error {
	if len(w) != l.Out*l.In {
		return fmt.Errorf("weights: lora %s: %w: base weight has %d values, want %d x %d", l.Module, ErrShape, len(w), l.Out, l.In)
	}
	for i, d := range l.Delta() {
		w[i] += d
	}
	return nil
}

// compilePy compiles a Python pattern for re.fullmatch (full) or re.match (anchored at
// the start only).
func compilePy(pattern string, full bool, what string) (*regexp.Regexp, error) {
	expr := "^(?:" + pattern + ")"
	if full {
		expr += "$"
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, fmt.Errorf("%s %q is not a regex Go's RE2 engine accepts (lookaround and backreferences do not exist in RE2): %v", what, pattern, err)
	}
	return re, nil
}

// orderedObject decodes a JSON object keeping its key order.
func orderedObject(raw json.RawMessage) ([]string, []json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return nil, nil, err
	}
	if tok == nil {
		return nil, nil, nil
	}
	if tok != json.Delim('{') {
		return nil, nil, fmt.Errorf("not an object")
	}
	var keys []string
	var vals []json.RawMessage
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, nil, err
		}
		k, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, nil, err
		}
		keys = append(keys, k)
		vals = append(vals, v)
	}
	return keys, vals, nil
}

// stringOrList decodes a JSON string, list of strings or null.
func stringOrList(raw json.RawMessage) (s string, list []string, isString bool, err error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil, false, nil
	}
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil, true, nil
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return "", nil, false, fmt.Errorf("want a string or a list of strings")
	}
	if list == nil {
		list = []string{}
	}
	return "", list, false, nil
}

func isNullish(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "" || s == "null" || s == "false" || s == "{}" || s == "[]" || s == `""`
}

// ParseAdapterConfig parses adapter_config.json, refusing what synth does not support
// (non-LoRA adapters, DoRA, bias != "none", LoRA biases, layer replication, Megatron,
// target_parameters, trainable tokens, "all-linear" left unexpanded).
func ParseAdapterConfig(data []byte) (*AdapterConfig, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%w: adapter_config.json: %v", ErrFormat, err)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: adapter_config.json: %s", ErrFormat, fmt.Sprintf(format, args...))
	}
	unsupported := func(format string, args ...any) error {
		return fmt.Errorf("adapter_config.json: unsupported adapter: %s", fmt.Sprintf(format, args...))
	}
	c := &AdapterConfig{Bias: "none"}
	str := func(key string, dst *string) error {
		if v, ok := raw[key]; ok && string(v) != "null" {
			if err := json.Unmarshal(v, dst); err != nil {
				return bad("%s: want a string", key)
			}
		}
		return nil
	}
	boolean := func(key string, dst *bool) error {
		if v, ok := raw[key]; ok && string(v) != "null" {
			if err := json.Unmarshal(v, dst); err != nil {
				return bad("%s: want true or false", key)
			}
		}
		return nil
	}
	for _, f := range []error{
		str("peft_type", &c.PeftType), str("base_model_name_or_path", &c.BaseModel), str("bias", &c.Bias),
		boolean("use_rslora", &c.UseRSLoRA),
	} {
		if f != nil {
			return nil, f
		}
	}
	if c.PeftType != "LORA" {
		return nil, unsupported("peft_type %q: only LoRA adapters (peft_type \"LORA\") are supported", c.PeftType)
	}
	var dora bool
	if err := boolean("use_dora", &dora); err != nil {
		return nil, err
	}
	if dora {
		return nil, unsupported("use_dora is true: DoRA adapters are not supported (only plain LoRA)")
	}
	// One rule for every command that loads an adapter (caption, convert --merge): the
	// transposed layout is GPT-2's Conv1D; synth's models have nn.Linear layers only, and
	// peft itself turns the flag off on nn.Linear (so the adapters it saves say false).
	var fanInFanOut bool
	if err := boolean("fan_in_fan_out", &fanInFanOut); err != nil {
		return nil, err
	}
	if fanInFanOut {
		return nil, unsupported("fan_in_fan_out is true: that layout is GPT-2's Conv1D, and synth's models have nn.Linear layers only (peft saves false for them)")
	}
	if c.Bias != "none" {
		return nil, unsupported("bias %q: adapters that train biases are not supported (only bias \"none\")", c.Bias)
	}
	for _, k := range []string{"lora_bias", "use_qalora"} {
		var b bool
		if err := boolean(k, &b); err != nil {
			return nil, err
		}
		if b {
			return nil, unsupported("%s is true", k)
		}
	}
	for _, k := range []string{"layer_replication", "megatron_config", "target_parameters", "trainable_token_indices", "alora_invocation_tokens"} {
		if v, ok := raw[k]; ok && !isNullish(v) {
			return nil, unsupported("%s is set (%s)", k, strings.TrimSpace(string(v)))
		}
	}
	rv, ok := raw["r"]
	if !ok {
		return nil, bad("no r (LoRA rank)")
	}
	if err := json.Unmarshal(rv, &c.R); err != nil || c.R <= 0 {
		return nil, bad("r must be a positive integer, got %s", rv)
	}
	if av, ok := raw["lora_alpha"]; ok {
		if err := json.Unmarshal(av, &c.LoraAlpha); err != nil || math.IsNaN(c.LoraAlpha) || math.IsInf(c.LoraAlpha, 0) {
			return nil, bad("lora_alpha must be a number, got %s", av)
		}
		if math.Abs(c.LoraAlpha) > maxLoRAAlpha {
			return nil, bad("lora_alpha %g is beyond any LoRA scaling (at most %g)", c.LoraAlpha, float64(maxLoRAAlpha))
		}
	} else {
		c.LoraAlpha = 8 // peft's default
	}

	s, list, isStr, err := stringOrList(raw["target_modules"])
	if err != nil {
		return nil, bad("target_modules: %v", err)
	}
	switch {
	case isStr && s == "all-linear":
		return nil, unsupported(`target_modules "all-linear" must be expanded to module names (peft does so when it saves an adapter)`)
	case isStr:
		c.TargetRegex = s
		if c.targetRe, err = compilePy(s, true, "target_modules"); err != nil {
			return nil, bad("%v", err)
		}
	case list != nil:
		c.TargetModules = list
	default:
		return nil, bad("no target_modules")
	}
	s, list, isStr, err = stringOrList(raw["exclude_modules"])
	if err != nil {
		return nil, bad("exclude_modules: %v", err)
	}
	if isStr && s != "" {
		c.ExcludeRegex = s
		if c.excludeRe, err = compilePy(s, true, "exclude_modules"); err != nil {
			return nil, bad("%v", err)
		}
	}
	c.ExcludeModules = list
	if _, list, isStr, err = stringOrList(raw["modules_to_save"]); err != nil || isStr {
		return nil, bad("modules_to_save: want a list of module names")
	}
	c.ModulesToSave = list

	if v, ok := raw["layers_to_transform"]; ok && string(v) != "null" {
		var one int
		if err := json.Unmarshal(v, &one); err == nil {
			c.LayersToTransform = []int{one}
		} else if err := json.Unmarshal(v, &c.LayersToTransform); err != nil {
			return nil, bad("layers_to_transform: want an int or a list of ints")
		}
		if len(c.LayersToTransform) == 0 {
			c.LayersToTransform = nil // peft: an empty list means every layer
		}
	}
	s, list, isStr, err = stringOrList(raw["layers_pattern"])
	if err != nil {
		return nil, bad("layers_pattern: %v", err)
	}
	if isStr && s != "" {
		list = []string{s}
	}
	c.LayersPattern = list
	if c.LayersToTransform != nil {
		if len(c.LayersPattern) == 0 {
			re, _ := compilePy(`.*\.[^.]*\.(\d+)\.`, false, "layer index")
			c.layerRes = []*regexp.Regexp{re}
		}
		for _, p := range c.LayersPattern {
			re, err := compilePy(`.*\.`+p+`\.(\d+)\.`, false, "layers_pattern")
			if err != nil {
				return nil, bad("%v", err)
			}
			c.layerRes = append(c.layerRes, re)
		}
	}

	patterns := func(key string, dst *[]PatternValue, res *[]*regexp.Regexp) error {
		v, ok := raw[key]
		if !ok {
			return nil
		}
		keys, vals, err := orderedObject(v)
		if err != nil {
			return bad("%s: want an object", key)
		}
		for i, k := range keys {
			var f float64
			if err := json.Unmarshal(vals[i], &f); err != nil || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > maxLoRAAlpha {
				return bad("%s[%q]: want a number of magnitude at most %g", key, k, float64(maxLoRAAlpha))
			}
			re, err := compilePy(`(?:.*\.)?(?:`+k+`)$`, false, key+" key")
			if err != nil {
				return bad("%v", err)
			}
			*dst = append(*dst, PatternValue{Key: k, Value: f})
			*res = append(*res, re)
		}
		return nil
	}
	if err := patterns("rank_pattern", &c.RankPattern, &c.rankRes); err != nil {
		return nil, err
	}
	if err := patterns("alpha_pattern", &c.AlphaPattern, &c.alphaRes); err != nil {
		return nil, err
	}
	for _, p := range c.RankPattern {
		if p.Value <= 0 || p.Value != math.Trunc(p.Value) {
			return nil, bad("rank_pattern[%q] = %v is not a positive integer", p.Key, p.Value)
		}
	}
	return c, nil
}

func matchList(list []string, module string) bool {
	for _, t := range list {
		if module == t || strings.HasSuffix(module, "."+t) {
			return true
		}
	}
	return false
}

// Targets reports whether peft would wrap the module called module (see the file doc).
func (c *AdapterConfig) Targets(module string) bool {
	if c.excludeRe != nil && c.excludeRe.MatchString(module) {
		return false
	}
	if matchList(c.ExcludeModules, module) {
		return false
	}
	if c.targetRe != nil {
		return c.targetRe.MatchString(module)
	}
	for _, t := range c.TargetModules {
		if module == t {
			return true
		}
	}
	if !matchList(c.TargetModules, module) {
		return false
	}
	if c.LayersToTransform == nil {
		return true
	}
	for _, re := range c.layerRes {
		if m := re.FindStringSubmatch(module); m != nil {
			idx, err := strconv.Atoi(m[1])
			if err != nil {
				return false
			}
			for _, l := range c.LayersToTransform {
				if l == idx {
					return true
				}
			}
			return false
		}
	}
	return false
}

// RankAlpha returns the rank and alpha peft uses for module (rank_pattern, alpha_pattern).
func (c *AdapterConfig) RankAlpha(module string) (r int, alpha float64) {
	r, alpha = c.R, c.LoraAlpha
	for i, re := range c.rankRes {
		if re.MatchString(module) {
			r = int(c.RankPattern[i].Value)
			break
		}
	}
	for i, re := range c.alphaRes {
		if re.MatchString(module) {
			alpha = c.AlphaPattern[i].Value
			break
		}
	}
	return r, alpha
}

// Scaling is peft's scaling for module: alpha / r, or alpha / sqrt(r) with rsLoRA.
func (c *AdapterConfig) Scaling(module string) float64 {
	r, alpha := c.RankAlpha(module)
	if c.UseRSLoRA {
		return alpha / math.Sqrt(float64(r))
	}
	return alpha / float64(r)
}

func (c *AdapterConfig) savesModule(module string) bool {
	for _, m := range c.ModulesToSave {
		// peft's _set_trainable: key.endswith(target) for target in modules_to_save
		if strings.HasSuffix(module, m) {
			return true
		}
	}
	return false
}

// LoadAdapter loads a PEFT LoRA adapter folder: adapter_config.json and
// adapter_model.safetensors (or adapter_model.bin through the restricted unpickler).
// Keys "base_model.model.<module>.lora_A.weight" / ".lora_B.weight" map to the base
// module <module>; every such module must be one that target_modules selects, A must be
// [r, in] and B [out, r] with r the configured rank for that module. Tensors of
// modules_to_save go to Saved; LoRA on embeddings or convolutions, DoRA magnitudes and
// LoRA biases are refused.
func LoadAdapter(dir string) (*Adapter, error) {
	cfgPath := filepath.Join(dir, "adapter_config.json")
	raw, err := readSmallFile(cfgPath)
	if err != nil {
		return nil, fmt.Errorf("weights: adapter %s: %w", dir, err)
	}
	cfg, err := ParseAdapterConfig(raw)
	if err != nil {
		return nil, fmt.Errorf("weights: %s: %w", cfgPath, err)
	}
	var wpath string
	for _, n := range []string{"adapter_model.safetensors", "adapter_model.bin"} {
		if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
			wpath = filepath.Join(dir, n)
			break
		}
	}
	if wpath == "" {
		return nil, fmt.Errorf("weights: adapter %s: %w: no adapter_model.safetensors or adapter_model.bin", dir, ErrMissing)
	}
	src, err := Open(wpath)
	if err != nil {
		return nil, err
	}
	a, err := buildAdapter(dir, cfg, src)
	if err != nil {
		src.Close()
		return nil, err
	}
	return a, nil
}

func buildAdapter(dir string, cfg *AdapterConfig, src *Source) (*Adapter, error) {
	a := &Adapter{Dir: dir, Config: *cfg, Layers: map[string]*LoRA{}, Saved: map[string]Tensor{}, src: src}
	file := src.Path()
	type pair struct{ a, b *Tensor }
	pairs := map[string]*pair{}
	var order []string
	for _, t := range src.Tensors() {
		name := strings.TrimPrefix(t.Name, "base_model.model.")
		parts := strings.Split(name, ".")
		kind, idx := "", -1
		for i, p := range parts {
			if strings.HasPrefix(p, "lora_") {
				kind, idx = p, i
				break
			}
		}
		switch {
		case kind == "lora_A" || kind == "lora_B":
			rest := parts[idx+1:]
			if len(rest) != 1 || rest[0] != "weight" {
				if len(rest) >= 1 && rest[len(rest)-1] == "bias" {
					return nil, fmt.Errorf("weights: %s: tensor %q: unsupported adapter: LoRA biases (lora_bias) are not supported", file, t.Name)
				}
				return nil, fmt.Errorf("weights: %s: %w: tensor %q: expected <module>.%s.weight", file, ErrFormat, t.Name, kind)
			}
			module := strings.Join(parts[:idx], ".")
			if module == "" {
				return nil, fmt.Errorf("weights: %s: %w: tensor %q has no module name", file, ErrFormat, t.Name)
			}
			p := pairs[module]
			if p == nil {
				p = &pair{}
				pairs[module] = p
				order = append(order, module)
			}
			tt := t
			if kind == "lora_A" {
				p.a = &tt
			} else {
				p.b = &tt
			}
		case kind == "lora_magnitude_vector":
			return nil, fmt.Errorf("weights: %s: tensor %q: unsupported adapter: DoRA magnitude vectors are not supported", file, t.Name)
		case strings.HasPrefix(kind, "lora_embedding"):
			return nil, fmt.Errorf("weights: %s: tensor %q: unsupported adapter: LoRA on embedding layers is not supported (only Linear)", file, t.Name)
		case kind != "":
			return nil, fmt.Errorf("weights: %s: tensor %q: unsupported adapter tensor kind %s", file, t.Name, kind)
		default:
			module := strings.Join(parts[:len(parts)-1], ".")
			if !cfg.savesModule(module) {
				return nil, fmt.Errorf("weights: %s: %w: tensor %q is neither LoRA weights nor part of modules_to_save", file, ErrFormat, t.Name)
			}
			a.Saved[name] = t
		}
	}
	for _, module := range order {
		p := pairs[module]
		if p.a == nil || p.b == nil {
			return nil, fmt.Errorf("weights: %s: module %q: %w: has only one of lora_A and lora_B", file, module, ErrMissing)
		}
		if len(p.a.Shape) != 2 || len(p.b.Shape) != 2 {
			return nil, fmt.Errorf("weights: %s: module %q: unsupported adapter: lora_A %v / lora_B %v are not 2-D (LoRA on convolutions is not supported, only Linear)", file, module, p.a.Shape, p.b.Shape)
		}
		r, in, out := p.a.Shape[0], p.a.Shape[1], p.b.Shape[0]
		if p.b.Shape[1] != r {
			return nil, fmt.Errorf("weights: %s: module %q: %w: lora_A %v and lora_B %v disagree on the rank", file, module, ErrShape, p.a.Shape, p.b.Shape)
		}
		if !cfg.Targets(module) {
			return nil, fmt.Errorf("weights: %s: module %q has LoRA weights, but adapter_config.json's target_modules does not select it (peft would not load them)", file, module)
		}
		cr, _ := cfg.RankAlpha(module)
		if cr != r {
			return nil, fmt.Errorf("weights: %s: module %q: %w: stored rank %d, but the config gives r = %d", file, module, ErrShape, r, cr)
		}
		av, err := finiteF32(file, *p.a)
		if err != nil {
			return nil, err
		}
		bv, err := finiteF32(file, *p.b)
		if err != nil {
			return nil, err
		}
		l := &LoRA{Module: module, R: r, In: in, Out: out, A: av, B: bv, Scale: cfg.Scaling(module)}
		if err := l.checkRange(); err != nil {
			return nil, fmt.Errorf("weights: %s: module %q: %w", file, module, err)
		}
		a.Layers[module] = l
	}
	for name, t := range a.Saved {
		if t.DType.IsFloat() {
			if _, err := finiteF32(file, t); err != nil {
				return nil, fmt.Errorf("%w (modules_to_save %s)", err, name)
			}
		}
	}
	if len(a.Layers) == 0 && len(a.Saved) == 0 {
		return nil, fmt.Errorf("weights: %s: %w: no LoRA weights in the adapter", file, ErrMissing)
	}
	return a, nil
}

// maxLoRAAlpha bounds lora_alpha and alpha_pattern values. Trained adapters use alphas of
// a few times the rank (16, 32, 128); 1e308 overflowed every merged weight to Inf.
const maxLoRAAlpha = 1e6

// finiteF32 converts an adapter tensor to float32, refusing NaN and Inf (a diverged
// training run saves them, and they would turn the merged weights into NaN).
func finiteF32(file string, t Tensor) ([]float32, error) {
	v, err := t.F32()
	if err != nil {
		return nil, err
	}
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return nil, fmt.Errorf("weights: %s: tensor %q: %w: value %d of %d is %g", file, t.Name, ErrFormat, i, len(v), x)
		}
	}
	return v, nil
}

// checkRange refuses a LoRA whose update Scale * B @ A could overflow float32: a bound
// from the largest magnitudes, |Scale| * R * max|A| * max|B|, with a margin of 2^32 so
// that the merged weights keep their precision.
func (l *LoRA) checkRange() error {
	maxAbs := func(v []float32) float64 {
		m := 0.0
		for _, x := range v {
			m = max(m, math.Abs(float64(x)))
		}
		return m
	}
	bound := math.Abs(l.Scale) * float64(l.R) * maxAbs(l.A) * maxAbs(l.B)
	if math.IsNaN(bound) || math.IsInf(bound, 0) || bound > math.MaxFloat32/(1<<32) {
		return fmt.Errorf("%w: the update scale %g x B @ A reaches %g, which float32 weights cannot hold", ErrFormat, l.Scale, bound)
	}
	return nil
}
