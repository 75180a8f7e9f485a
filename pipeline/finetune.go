package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"synth/dataset"
	"synth/native"
	"synth/pipeline/finetune"
	"synth/vision/blip2"
	"synth/vision/gpt2tok"
	"synth/vision/lora"
	"synth/vision/nn"
	"synth/weights"
)

// FinetuneParams are the settings of synth finetune and of synth.yaml's finetune:
// section. The defaults are the widely used BLIP-2 PEFT captioning recipe under
// transformers Trainer's defaults (docs/finetune.md).
type FinetuneParams struct {
	Model       string  `set:"model" path:"1" req:"1" usage:"BLIP-2 model folder or .gguf file (its weights stay frozen)"`
	Tokenizer   string  `set:"tokenizer" path:"1" usage:"folder with vocab.json and merges.txt (default: beside the model)"`
	TextField   string  `set:"text-field" def:"text" usage:"the product field captions come from: text, title, category or keywords"`
	Prompt      string  `set:"prompt" usage:"prompt before each caption, left out of the loss (use the same with synth caption --prompt)"`
	MaxLength   int     `set:"max-length" def:"0" usage:"most tokens per text, BOS, prompt and EOS included (0: 128, or what the model's positions allow)"`
	NoEOS       bool    `set:"no-eos" usage:"no EOS after the caption (like HF's processor alone); captions then do not learn to end"`
	ValFraction float64 `set:"val-fraction" def:"0.05" usage:"share of the products held out for validation (seeded; 0: none)"`
	EvalEvery   int     `set:"eval-every" def:"0" usage:"validation loss every N optimizer steps (0: at each epoch's end)"`

	LoRAR         int     `set:"lora-r" def:"16" usage:"LoRA rank"`
	LoRAAlpha     float64 `set:"lora-alpha" def:"32" usage:"LoRA alpha (scaling alpha/r, or alpha/sqrt(r) with rslora)"`
	LoRADropout   float64 `set:"lora-dropout" def:"0.05" usage:"dropout on the adapters' inputs"`
	TargetModules string  `set:"target-modules" def:"q_proj,k_proj" usage:"comma-separated module names or their last parts (PEFT's target_modules list): any Linear of\n\tOPT (q_proj, k_proj, v_proj, out_proj, fc1, fc2), the Q-Former (query, key, value, dense, ...) or\n\tlanguage_projection; a value with regex characters is a regular expression the whole module name\n\tmatches (PEFT's string form), e.g. '.*decoder.*(q_proj|v_proj)'. Vision-encoder layers stay frozen"`
	RSLoRA        bool    `set:"rslora" usage:"rank-stabilized LoRA: scaling alpha/sqrt(r)"`
	FromAdapter   string  `set:"from-adapter" path:"1" usage:"start from this PEFT adapter (its r, alpha and targets) instead of a fresh one"`

	Epochs      int     `set:"epochs" def:"3" usage:"passes over the training examples (when max-steps is 0)"`
	MaxSteps    int     `set:"max-steps" def:"0" usage:"optimizer steps; overrides epochs when positive"`
	SaveEvery   int     `set:"save-every" def:"200" usage:"a checkpoint (adapter, optimizer, position) every N steps (0: at the end only)"`
	Batch       int     `set:"batch" def:"4" usage:"examples (image-text pairs) per micro-batch"`
	GradAccum   int     `set:"grad-accum" def:"1" usage:"micro-batches per optimizer step"`
	LR          float64 `set:"lr" def:"5e-4" usage:"peak learning rate"`
	Betas       string  `set:"betas" def:"0.9,0.999" usage:"AdamW's beta1,beta2"`
	Eps         float64 `set:"eps" def:"1e-8" usage:"AdamW's epsilon"`
	WeightDecay float64 `set:"weight-decay" def:"0" usage:"AdamW's decoupled weight decay"`
	Warmup      int     `set:"warmup-steps" def:"0" usage:"steps of linear warm-up"`
	Schedule    string  `set:"schedule" def:"linear" usage:"learning-rate schedule after warm-up: constant, linear or cosine"`
	GradClip    float64 `set:"grad-clip" def:"1" usage:"clip the gradients' global norm to this (0: off)"`
	Seed        uint64  `set:"seed" def:"0" usage:"seed of the adapter's init, the validation split, the data order and the dropout masks"`
	BaseDropout string  `set:"base-dropout" def:"config" usage:"dropout of the frozen model in training: config (its dropout and hidden_dropout_prob) or a rate (0: off)"`

	Device string `set:"device" def:"cpu" usage:"where training runs: cpu, ggml:CPU, cuda:0 or another ggml device (synth doctor lists them)"`
	DType  string `set:"dtype" def:"auto" usage:"frozen weights in memory: auto (as stored), f32, f16, bf16 or q8_0 (QLoRA-style)"`
	Cache  string `set:"cache" path:"1" usage:"folder of the cached image prefixes (default: OUT.prefix-cache beside the output)"`
}

// Validate checks every value without touching a file.
func (p *FinetuneParams) Validate() error {
	_, err := p.options()
	return err
}

// options turns the settings into the trainer's options (files and device left unset).
func (p *FinetuneParams) options() (finetune.Options, error) {
	o := finetune.Defaults()
	o.Model, o.Tokenizer, o.FromAdapter, o.Cache = p.Model, p.Tokenizer, p.FromAdapter, p.Cache
	o.Text = finetune.Text{Field: p.TextField, Prompt: p.Prompt, NoEOS: p.NoEOS, MaxLen: p.MaxLength}
	o.ValFraction, o.EvalEvery = p.ValFraction, p.EvalEvery
	o.Epochs, o.MaxSteps, o.SaveEvery, o.Batch, o.GradAccum, o.Seed = p.Epochs, p.MaxSteps, p.SaveEvery, p.Batch, p.GradAccum, p.Seed
	o.LoRA = lora.LoRAConfig{R: p.LoRAR, Alpha: p.LoRAAlpha, Dropout: float32(p.LoRADropout), RSLoRA: p.RSLoRA}
	if strings.ContainsAny(p.TargetModules, `*+?()[]{}|^$\`) {
		o.LoRA.TargetRegex = p.TargetModules // a pattern: the whole module name must match
	} else {
		for _, t := range strings.Split(p.TargetModules, ",") {
			if t = strings.TrimSpace(t); t != "" {
				o.LoRA.Targets = append(o.LoRA.Targets, t)
			}
		}
	}
	if p.Model == "" {
		return o, badf("model", "is required")
	}
	if !contains(dataset.TextFields, p.TextField) {
		return o, badf("text-field", "%q: want one of %s", p.TextField, strings.Join(dataset.TextFields, ", "))
	}
	if p.FromAdapter == "" {
		switch {
		case p.LoRAR < 1 || p.LoRAR > 4096:
			return o, badf("lora-r", "%d: want 1 to 4096", p.LoRAR)
		case !(p.LoRAAlpha > 0):
			return o, badf("lora-alpha", "%g: want a positive number", p.LoRAAlpha)
		case !(p.LoRADropout >= 0 && p.LoRADropout < 1):
			return o, badf("lora-dropout", "%g: want a rate in [0, 1)", p.LoRADropout)
		case len(o.LoRA.Targets) == 0 && o.LoRA.TargetRegex == "":
			return o, badf("target-modules", "is empty: name at least one Linear module (q_proj,k_proj)")
		}
	}
	b := strings.Split(p.Betas, ",")
	var err1, err2 error
	if len(b) == 2 {
		o.Optim.Beta1, err1 = strconv.ParseFloat(strings.TrimSpace(b[0]), 64)
		o.Optim.Beta2, err2 = strconv.ParseFloat(strings.TrimSpace(b[1]), 64)
	}
	if len(b) != 2 || err1 != nil || err2 != nil {
		return o, badf("betas", "%q: want two numbers, beta1,beta2 (0.9,0.999)", p.Betas)
	}
	o.Optim.LR, o.Optim.Eps, o.Optim.WeightDecay, o.Optim.Warmup, o.Optim.Schedule, o.Optim.GradClip =
		p.LR, p.Eps, p.WeightDecay, p.Warmup, p.Schedule, p.GradClip
	switch p.BaseDropout {
	case "config", "":
		o.BaseDropout = -1
	default:
		v, err := strconv.ParseFloat(p.BaseDropout, 64)
		if err != nil || !(v >= 0 && v < 1) {
			return o, badf("base-dropout", "%q: want config or a rate in [0, 1)", p.BaseDropout)
		}
		o.BaseDropout = v
	}
	if !strings.EqualFold(p.DType, "auto") {
		dt, err := nn.ParseDType(p.DType)
		if err != nil {
			return o, badf("dtype", "%v", err)
		}
		o.DType = dt
	} else {
		o.AutoDType = true
	}
	// Options.Validate names its flags as these settings do: turn its message into a
	// setting error naming the key.
	o.Model, o.Data, o.Out = p.Model, "-", "-"
	if err := o.Validate(); err != nil {
		msg := strings.TrimPrefix(err.Error(), "finetune: ")
		if strings.HasPrefix(msg, "--") {
			key, rest, _ := strings.Cut(msg[2:], " ")
			return o, badf(key, "%s", rest)
		}
		return o, err
	}
	return o, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Finetune trains a LoRA adapter for BLIP-2 on a manifest's image-text pairs (the
// paper's first step): Out is the adapter folder that caption then reads.
type Finetune struct {
	Params FinetuneParams
	Data   string // the product manifest
	Out    string
	// Resume continues a checkpoint in Out (or keeps Out's finished run); without it a
	// run already in Out is an error. The pipeline always resumes.
	Resume  bool
	Summary *finetune.Summary // after Run
}

func (s *Finetune) Name() string { return "finetune" }

func (s *Finetune) Outputs() []string { return []string{s.Out} }

func (s *Finetune) models() []string { return nonEmpty(s.Params.Model, s.Params.FromAdapter) }

func (s *Finetune) tokenizerDir() string {
	if s.Params.Tokenizer != "" {
		return s.Params.Tokenizer
	}
	if st, err := os.Stat(s.Params.Model); err == nil && !st.IsDir() {
		return filepath.Dir(s.Params.Model)
	}
	return s.Params.Model
}

// Check opens the model's config, the tokenizer, the starting adapter and the
// manifest, and refuses an output folder that holds another run unless resuming.
func (s *Finetune) Check(env *Env) error {
	p := &s.Params
	if err := p.Validate(); err != nil {
		return err
	}
	if _, err := openDevice(p.Device); err != nil {
		return err
	}
	if !env.Pending(s.Data) {
		if err := checkInput(s.Name(), "data", s.Data); err != nil {
			return err
		}
	}
	if err := exists(s.Name(), "model", p.Model, false); err != nil {
		return err
	}
	src, err := weights.Open(p.Model)
	if err != nil {
		return fmt.Errorf("finetune: model: %w", err)
	}
	defer src.Close()
	if cfg, err := blip2.Parse(src.Config()); err != nil {
		return fmt.Errorf("finetune: model %s: %w", p.Model, err)
	} else if err := cfg.Validate(); err != nil {
		return fmt.Errorf("finetune: model %s: %w", p.Model, err)
	}
	if _, err := gpt2tok.Load(s.tokenizerDir()); err != nil {
		return fmt.Errorf("finetune: tokenizer in %s (vocab.json and merges.txt; set tokenizer to another folder): %w", s.tokenizerDir(), err)
	}
	if p.FromAdapter != "" {
		a, err := weights.LoadAdapter(p.FromAdapter)
		if err != nil {
			return fmt.Errorf("finetune: from-adapter: %w", err)
		}
		a.Close()
	}
	if err := probeLock(s.Out); err != nil {
		return err
	}
	return finetune.CheckOut(s.Out, s.Resume)
}

// Run trains (or finds the run finished) and says how many optimizer steps Out holds.
func (s *Finetune) Run(ctx context.Context, env *Env) (Status, error) {
	o, err := s.Params.options()
	if err != nil {
		return Status{}, err
	}
	dev, err := openDevice(s.Params.Device)
	if err != nil {
		return Status{}, err
	}
	o.Data, o.Out, o.Resume, o.Device, o.Threads, o.Progress = s.Data, s.Out, s.Resume, dev, env.Threads, env.Progress
	if o.Device != native.CPU && o.Threads == 0 {
		o.Threads = 1
	}
	sum, err := finetune.Run(ctx, o)
	if err != nil {
		return Status{}, err
	}
	s.Summary = sum
	done := sum.Steps - sum.ResumedAtStep
	if sum.Reused {
		done = 0
		env.log().Info("finetune: complete, nothing to do", "out", s.Out, "steps", sum.Steps, "fingerprint", sum.Fingerprint)
	}
	return Status{Step: s.Name(), Output: s.Out, Items: sum.Steps, Records: sum.Steps, Done: done, Ran: done > 0}, nil
}
