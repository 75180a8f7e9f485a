package native

import (
	"bytes"
	"strings"
	"testing"
)

// TestProfile: ops are counted in the phase that was current when they ran, with the
// flops and bytes of their shapes, and not at all before StartProfile or after Stop.
func TestProfile(t *testing.T) {
	r := newRand(t)
	c := NewCtx(2)
	defer c.Close()
	const m, n, k = 3, 64, 96
	w, err := QuantizeMatrix(randFloats(r, n*k, 0.1), n, k, Q8_0)
	if err != nil {
		t.Fatal(err)
	}
	x := randTensor(r, 1, m, k)
	c.Linear(x, w, Tensor{}, None, Tensor{}) // not profiled
	p := c.StartProfile()
	p.Phase("encode")
	c.Linear(x, w, Tensor{}, None, Tensor{})
	c.Linear(x, w, Tensor{}, None, Tensor{})
	c.LayerNorm(x, Tensor{}, Tensor{}, 1e-5)
	p.Phase("decode")
	q := randTensor(r, 1, 4, 16)
	c.Attention(q, q, q, 1, AttnParams{Heads: 2, HeadDim: 8, Scale: 0.3, Causal: true})
	p.Stop()
	c.Linear(x, w, Tensor{}, None, Tensor{}) // not profiled
	c.Release(Mark{})
	got := map[string]ProfileOp{}
	for _, o := range p.Ops() {
		got[o.Phase+"/"+o.Op] = o
	}
	g := got["encode/gemm"]
	if g.Calls != 2 || g.Flops != 2*2*m*n*k || g.Bytes != 2*float64(n*Q8_0.RowBytes(k)) || g.DType != "Q8_0" {
		t.Errorf("gemm: %+v", g)
	}
	if l := got["encode/layernorm"]; l.Calls != 1 || l.Bytes != 8*m*k {
		t.Errorf("layernorm: %+v", l)
	}
	// causal 4 queries on 4 keys: 1+2+3+4 pairs, 4*h*d flops each
	if a := got["decode/attention"]; a.Calls != 1 || a.Flops != 4*16*10 {
		t.Errorf("attention: %+v", a)
	}
	if len(got) != 3 {
		t.Errorf("ops: %v", got)
	}
	wall := p.Wall()
	if wall["encode"] <= 0 || wall["decode"] <= 0 {
		t.Errorf("wall times %v", wall)
	}
	var out bytes.Buffer
	p.WriteReport(&out, Rates{Variant: c.Variant(), Threads: 2, GEMM: 100, CopyGBps: 10})
	for _, want := range []string{"encode", "decode", "gemm", "attention", "host work"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if profiling.Load() != 0 {
		t.Errorf("%d profiles still live after Stop", profiling.Load())
	}
}
