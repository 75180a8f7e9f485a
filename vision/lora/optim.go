package lora

import (
	"fmt"
	"math"
)

// Optim is the optimizer and its learning-rate schedule: torch.optim.AdamW under one
// of transformers' schedules.
type Optim struct {
	LR           float64
	Beta1, Beta2 float64
	Eps          float64
	WeightDecay  float64 // decoupled, as AdamW
	Warmup       int     // steps of linear warm-up from 0
	Schedule     string  // constant, linear or cosine
	GradClip     float64 // the gradients' global L2 norm is clipped to this; 0: off
}

// Schedules are the --schedule values.
var Schedules = []string{"constant", "linear", "cosine"}

// Validate checks the settings, naming the flag at fault.
func (o Optim) Validate() error {
	bad := func(flag string, v any, want string) error {
		return fmt.Errorf("finetune: --%s %v: want %s", flag, v, want)
	}
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	switch {
	case !(o.LR > 0) || !finite(o.LR):
		return bad("lr", o.LR, "a positive number")
	case !(o.Beta1 >= 0 && o.Beta1 < 1) || !(o.Beta2 >= 0 && o.Beta2 < 1):
		return bad("betas", fmt.Sprintf("%g,%g", o.Beta1, o.Beta2), "two numbers in [0, 1)")
	case !(o.Eps > 0) || !finite(o.Eps):
		return bad("eps", o.Eps, "a positive number")
	case !(o.WeightDecay >= 0) || !finite(o.WeightDecay):
		return bad("weight-decay", o.WeightDecay, "a number >= 0")
	case o.Warmup < 0:
		return bad("warmup-steps", o.Warmup, "a count >= 0")
	case !(o.GradClip >= 0) || !finite(o.GradClip):
		return bad("grad-clip", o.GradClip, "a number >= 0 (0: off)")
	}
	for _, s := range Schedules {
		if s == o.Schedule {
			return nil
		}
	}
	return bad("schedule", o.Schedule, "constant, linear or cosine")
}

// rate is the learning rate of optimizer step s (0-based) of total, as transformers'
// get_{constant,linear,cosine}_schedule_with_warmup give it (constant: with warm-up).
func (o Optim) Rate(s, total int) float64 {
	if s < o.Warmup {
		return o.LR * float64(s) / float64(max(1, o.Warmup))
	}
	switch o.Schedule {
	case "linear":
		return o.LR * max(0, float64(total-s)/float64(max(1, total-o.Warmup)))
	case "cosine":
		p := float64(s-o.Warmup) / float64(max(1, total-o.Warmup))
		return o.LR * max(0, 0.5*(1+math.Cos(math.Pi*p)))
	}
	return o.LR
}

// clip scales the gradients so their global L2 norm is at most GradClip, as
// torch.nn.utils.clip_grad_norm_ (coefficient max/(norm+1e-6), only when below 1), and
// returns the norm before clipping.
func (o Optim) Clip(ps []*Param) float64 {
	var sum float64
	for _, p := range ps {
		for _, g := range [][]float32{p.GA, p.GB} {
			for _, v := range g {
				sum += float64(v) * float64(v)
			}
		}
	}
	norm := math.Sqrt(sum)
	if o.GradClip > 0 {
		if coef := o.GradClip / (norm + 1e-6); coef < 1 {
			c := float32(coef)
			for _, p := range ps {
				for _, g := range [][]float32{p.GA, p.GB} {
					for i := range g {
						g[i] *= c
					}
				}
			}
		}
	}
	return norm
}

// update is one AdamW step (step counts from 1) at learning rate lr on every parameter,
// in torch's order of float32 operations: decay, moments, then
// p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps).
func (o Optim) Update(ps []*Param, step int, lr float64) {
	bc1 := 1 - math.Pow(o.Beta1, float64(step))
	bc2 := math.Sqrt(1 - math.Pow(o.Beta2, float64(step)))
	stepSize := float32(lr / bc1)
	b1, b2 := float32(o.Beta1), float32(o.Beta2)
	decay := float32(1 - lr*o.WeightDecay)
	eps, sq := float32(o.Eps), float32(bc2)
	for _, p := range ps {
		for _, t := range [][4][]float32{{p.A, p.GA, p.MA, p.VA}, {p.B, p.GB, p.MB, p.VB}} {
			w, g, m, v := t[0], t[1], t[2], t[3]
			for i := range w {
				if o.WeightDecay != 0 {
					w[i] *= decay
				}
				m[i] = m[i]*b1 + g[i]*(1-b1)
				v[i] = v[i]*b2 + g[i]*g[i]*(1-b2)
				w[i] -= stepSize * (m[i] / (sqrt32(v[i])/sq + eps))
			}
		}
	}
}

func sqrt32(v float32) float32 { return float32(math.Sqrt(float64(v))) }
