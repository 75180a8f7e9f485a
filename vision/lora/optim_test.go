package lora

import (
	"math"
	"math/rand/v2"
	"testing"
)

// adamRef is torch.optim.AdamW's update in float64, written from its documented
// algorithm: decoupled decay, moments, bias corrections.
func adamRef(w, g, m, v []float64, step int, lr, b1, b2, eps, wd float64) {
	for i := range w {
		w[i] *= 1 - lr*wd
		m[i] = b1*m[i] + (1-b1)*g[i]
		v[i] = b2*v[i] + (1-b2)*g[i]*g[i]
		mh := m[i] / (1 - math.Pow(b1, float64(step)))
		vh := v[i] / (1 - math.Pow(b2, float64(step)))
		w[i] -= lr * mh / (math.Sqrt(vh) + eps)
	}
}

// TestAdamWMatchesReference runs random settings and gradients through Update and the
// float64 reference for several steps.
func TestAdamWMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 20; trial++ {
		o := Optim{LR: math.Pow(10, -1-3*r.Float64()), Beta1: 0.8 + 0.19*r.Float64(), Beta2: 0.9 + 0.0999*r.Float64(),
			Eps: 1e-8, WeightDecay: r.Float64() * 0.1, Schedule: "constant"}
		n := 1 + r.IntN(40)
		p := &Param{A: make([]float32, n), GA: make([]float32, n), MA: make([]float32, n), VA: make([]float32, n)}
		w, m, v := make([]float64, n), make([]float64, n), make([]float64, n)
		for i := range p.A {
			p.A[i] = float32(r.NormFloat64())
			w[i] = float64(p.A[i])
		}
		for step := 1; step <= 6; step++ {
			g := make([]float64, n)
			for i := range g {
				p.GA[i] = float32(r.NormFloat64() * math.Pow(10, -4*r.Float64()))
				g[i] = float64(p.GA[i])
			}
			o.Update([]*Param{p}, step, o.LR)
			adamRef(w, g, m, v, step, o.LR, o.Beta1, o.Beta2, o.Eps, o.WeightDecay)
			for i := range w {
				if d := math.Abs(float64(p.A[i]) - w[i]); d > 1e-5*math.Max(1, math.Abs(w[i])) {
					t.Fatalf("trial %d step %d [%d]: %.8g, reference %.8g (%+v)", trial, step, i, p.A[i], w[i], o)
				}
			}
		}
	}
}

// TestSchedules checks transformers' schedule lambdas at their corners.
func TestSchedules(t *testing.T) {
	o := Optim{LR: 1, Warmup: 4}
	cases := []struct {
		schedule string
		step     int
		want     float64
	}{
		{"constant", 0, 0}, {"constant", 2, 0.5}, {"constant", 4, 1}, {"constant", 9, 1},
		{"linear", 0, 0}, {"linear", 2, 0.5}, {"linear", 4, 1}, {"linear", 9, 1.0 / 6}, {"linear", 10, 0},
		{"cosine", 4, 1}, {"cosine", 7, 0.5}, {"cosine", 10, 0},
	}
	for _, c := range cases {
		o.Schedule = c.schedule
		if got := o.Rate(c.step, 10); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%s step %d of 10, warm-up 4: lr %g, want %g", c.schedule, c.step, got, c.want)
		}
	}
}

// TestClip: the global norm is returned, and gradients above the limit are scaled to it.
func TestClip(t *testing.T) {
	p := &Param{GA: []float32{3, 0}, GB: []float32{0, 4}}
	o := Optim{GradClip: 1}
	if n := o.Clip([]*Param{p}); math.Abs(n-5) > 1e-9 {
		t.Fatalf("norm %g, want 5", n)
	}
	if got := math.Hypot(float64(p.GA[0]), float64(p.GB[1])); math.Abs(got-1) > 1e-5 {
		t.Errorf("clipped norm %g, want 1", got)
	}
	o.GradClip = 0
	p.GA[0] = 30
	o.Clip([]*Param{p})
	if p.GA[0] != 30 {
		t.Error("grad-clip 0 changed the gradients")
	}
}
