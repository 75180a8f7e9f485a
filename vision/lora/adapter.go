package lora

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"synth/internal/atomicfile"
	"synth/native"
	"synth/vision/nn"
	"synth/weights"
)

// LoRAConfig is the adapter to train: PEFT's LoraConfig fields synth uses.
type LoRAConfig struct {
	R       int      // rank (16)
	Alpha   float64  // lora_alpha (32)
	Dropout float32  // lora_dropout on the adapter's input (0.05)
	Targets []string // target_modules: module names or their last parts (q_proj, k_proj)
	// TargetRegex, when set, replaces Targets: a regular expression the whole module
	// name must match (PEFT's target_modules given as a string).
	TargetRegex string
	RSLoRA      bool // scaling alpha/sqrt(r) instead of alpha/r
	// Base names the base model in adapter_config.json (base_model_name_or_path).
	Base string
}

// Param is one adapted Linear: LoRA's A [R, In] and B [Out, R] in f32 (the trained
// values and their gradients, on the host), and the optimizer's moments.
type Param struct {
	Module     string // e.g. language_model.model.decoder.layers.0.self_attn.q_proj
	R, In, Out int
	Scale      float32
	A, B       []float32
	GA, GB     []float32 // gradients, accumulated over a step's micro-batches
	MA, VA     []float32 // AdamW moments of A
	MB, VB     []float32 // and of B
	lin        *nn.Linear
}

// Adapter is the LoRA adapter being trained on a model: one Param per targeted Linear.
type Adapter struct {
	Config LoRAConfig
	Params []*Param // sorted by module name
	// Frozen counts the vision-encoder layers the targets also match: synth trains OPT
	// and Q-Former layers only, so those stay without an adapter.
	Frozen int
	peft   []byte // adapter_config.json
}

// peftConfig is adapter_config.json for c (PEFT 0.10's keys).
func peftConfig(c LoRAConfig) ([]byte, error) {
	var targets any = c.Targets
	if c.TargetRegex != "" {
		targets = c.TargetRegex
	}
	return json.MarshalIndent(map[string]any{
		"peft_type": "LORA", "task_type": nil, "r": c.R, "lora_alpha": c.Alpha, "lora_dropout": c.Dropout,
		"target_modules": targets, "bias": "none", "fan_in_fan_out": false, "use_rslora": c.RSLoRA,
		"use_dora": false, "init_lora_weights": true, "inference_mode": true, "modules_to_save": nil,
		"layers_to_transform": nil, "layers_pattern": nil, "rank_pattern": map[string]any{},
		"alpha_pattern": map[string]any{}, "base_model_name_or_path": c.Base, "revision": nil,
	}, "", "  ")
}

// NewAdapter attaches a fresh adapter to every Linear of linears that c targets, with
// PEFT's initialisation: A from kaiming_uniform(a=sqrt 5), that is U(-1/sqrt(In),
// 1/sqrt(In)), drawn in module order from seed; B zero.
func NewAdapter(linears map[string]*nn.Linear, c LoRAConfig, seed uint64) (*Adapter, error) {
	if c.R < 1 || c.Alpha <= 0 || math.IsNaN(c.Alpha) || math.IsInf(c.Alpha, 0) {
		return nil, fmt.Errorf("finetune: LoRA rank %d and alpha %v must be positive", c.R, c.Alpha)
	}
	if c.Dropout < 0 || c.Dropout >= 1 {
		return nil, fmt.Errorf("finetune: LoRA dropout %v outside [0, 1)", c.Dropout)
	}
	raw, err := peftConfig(c)
	if err != nil {
		return nil, err
	}
	pc, err := weights.ParseAdapterConfig(raw)
	if err != nil {
		return nil, fmt.Errorf("finetune: %w", err)
	}
	a := &Adapter{Config: c, peft: raw}
	r := rand.New(rand.NewPCG(seed, 0x10a4))
	for _, name := range sortedModules(linears) {
		if !pc.Targets(name) {
			continue
		}
		if strings.HasPrefix(name, visionPrefix) {
			a.Frozen++
			continue
		}
		lin := linears[name]
		p := newParam(name, lin, c.R, float32(pc.Scaling(name)))
		bound := 1 / math.Sqrt(float64(p.In))
		for i := range p.A {
			p.A[i] = float32((2*r.Float64() - 1) * bound)
		}
		a.Params = append(a.Params, p)
	}
	if len(a.Params) == 0 {
		return nil, fmt.Errorf("finetune: target modules %s match no Linear layer of OPT or the Q-Former", raw2targets(c))
	}
	return a, nil
}

// LoadAdapter attaches a PEFT adapter folder's LoRA (to continue training it): every
// module it wraps must be a Linear of linears, of the same shape.
func LoadAdapter(dir string, linears map[string]*nn.Linear) (*Adapter, error) {
	ad, err := weights.LoadAdapter(dir)
	if err != nil {
		return nil, fmt.Errorf("finetune: %w", err)
	}
	defer ad.Close()
	pc := ad.Config
	if pc.Bias != "none" || len(ad.Saved) > 0 {
		return nil, fmt.Errorf("finetune: adapter %s: biases and modules_to_save cannot be trained here", dir)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "adapter_config.json"))
	if err != nil {
		return nil, fmt.Errorf("finetune: %w", err)
	}
	c := LoRAConfig{R: pc.R, Alpha: pc.LoraAlpha, Targets: pc.TargetModules, TargetRegex: pc.TargetRegex, RSLoRA: pc.UseRSLoRA, Base: pc.BaseModel}
	var cfg struct {
		Dropout float32 `json:"lora_dropout"`
	}
	if err := json.Unmarshal(raw, &cfg); err == nil {
		c.Dropout = cfg.Dropout
	}
	a := &Adapter{Config: c, peft: raw}
	for _, name := range ad.Modules() {
		l := ad.Lookup(name)
		lin := linears[name]
		if lin == nil {
			return nil, fmt.Errorf("finetune: adapter %s wraps %s, which is not a Linear layer of the model", dir, name)
		}
		if strings.HasPrefix(name, visionPrefix) {
			return nil, fmt.Errorf("finetune: adapter %s wraps %s in the vision encoder, which synth does not train", dir, name)
		}
		if lin.In() != l.In || lin.Out() != l.Out {
			return nil, fmt.Errorf("finetune: adapter %s: %s is [%d, %d], the layer [%d, %d]", dir, name, l.Out, l.In, lin.Out(), lin.In())
		}
		p := newParam(name, lin, l.R, float32(l.Scale))
		copy(p.A, l.A)
		copy(p.B, l.B)
		a.Params = append(a.Params, p)
	}
	if len(a.Params) == 0 {
		return nil, fmt.Errorf("finetune: adapter %s wraps no module", dir)
	}
	return a, nil
}

// visionPrefix starts the vision encoder's module names.
const visionPrefix = "vision_model."

func raw2targets(c LoRAConfig) string {
	if c.TargetRegex != "" {
		return fmt.Sprintf("%q", c.TargetRegex)
	}
	return strings.Join(c.Targets, ",")
}

func newParam(module string, lin *nn.Linear, r int, scale float32) *Param {
	in, out := lin.In(), lin.Out()
	return &Param{Module: module, R: r, In: in, Out: out, Scale: scale, lin: lin,
		A: make([]float32, r*in), B: make([]float32, out*r), GA: make([]float32, r*in), GB: make([]float32, out*r),
		MA: make([]float32, r*in), VA: make([]float32, r*in), MB: make([]float32, out*r), VB: make([]float32, out*r)}
}

func sortedModules(m map[string]*nn.Linear) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// attach puts the current A and B on the model's layers (live LoRA) on dev, replacing
// the previous step's matrices.
func (a *Adapter) Attach(dev *native.Device) error {
	for _, p := range a.Params {
		am, err := dev.NewMatrixF32(p.A, p.R, p.In)
		if err != nil {
			return err
		}
		bm, err := dev.NewMatrixF32(p.B, p.Out, p.R)
		if err != nil {
			return err
		}
		if old := p.lin.LoRA; old != nil {
			old.A.Free()
			old.B.Free()
		}
		p.lin.LoRA = &nn.LoRA{A: am, B: bm, Scale: p.Scale}
	}
	return nil
}

// detach takes the adapter off the model's layers.
func (a *Adapter) Detach() {
	for _, p := range a.Params {
		if p.lin.LoRA != nil {
			p.lin.LoRA.A.Free()
			p.lin.LoRA.B.Free()
			p.lin.LoRA = nil
		}
	}
}

// zeroGrads clears the accumulated gradients.
func (a *Adapter) ZeroGrads() {
	for _, p := range a.Params {
		clear(p.GA)
		clear(p.GB)
	}
}

// Tensors are the adapter's weights under PEFT's names
// (base_model.model.<module>.lora_A.weight), as adapter_model.safetensors holds them.
func (a *Adapter) Tensors() []weights.Tensor {
	var out []weights.Tensor
	for _, p := range a.Params {
		out = append(out,
			weights.F32Tensor("base_model.model."+p.Module+".lora_A.weight", []int{p.R, p.In}, p.A),
			weights.F32Tensor("base_model.model."+p.Module+".lora_B.weight", []int{p.Out, p.R}, p.B))
	}
	return out
}

// Save writes the adapter as a PEFT folder: adapter_config.json and
// adapter_model.safetensors, each written atomically.
func (a *Adapter) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("finetune: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "adapter_config.json"), append(a.peft, '\n')); err != nil {
		return fmt.Errorf("finetune: %w", err)
	}
	if err := weights.WriteSafetensors(filepath.Join(dir, "adapter_model.safetensors"), a.Tensors(), map[string]string{"format": "pt"}); err != nil {
		return fmt.Errorf("finetune: %w", err)
	}
	return nil
}

// Describe is a line for logs: how many modules of which kinds, and the parameters.
func (a *Adapter) Describe() string {
	kinds := map[string]int{}
	n := 0
	for _, p := range a.Params {
		kinds[p.Module[strings.LastIndex(p.Module, ".")+1:]]++
		n += len(p.A) + len(p.B)
	}
	var parts []string
	for k, v := range kinds {
		parts = append(parts, fmt.Sprintf("%d %s", v, k))
	}
	sort.Strings(parts)
	return fmt.Sprintf("%s; %d trainable parameters", strings.Join(parts, ", "), n)
}
