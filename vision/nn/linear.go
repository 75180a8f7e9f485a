package nn

import (
	"synth/native"
)

// Linear is torch's nn.Linear: y = x W^T + b, W [Out, In]. With LoRA set (the unmerged,
// live path) y = x W^T + b + Scale * (x A^T) B^T.
type Linear struct {
	W    *native.Matrix // [Out, In]
	B    native.Tensor  // [Out] on W's device, or empty
	LoRA *LoRA          // nil when no adapter targets this layer or it was merged
}

// LoRA is a live low-rank adapter on a Linear.
type LoRA struct {
	A     *native.Matrix // [R, In]  (lora_A.weight)
	B     *native.Matrix // [Out, R] (lora_B.weight)
	Scale float32        // lora_alpha / r (or / sqrt(r) with rsLoRA)
}

// Out is the layer's output width.
func (l *Linear) Out() int { return l.W.N() }

// In is the layer's input width.
func (l *Linear) In() int { return l.W.K() }

// Forward computes act(x W^T + b [+ LoRA]) + residual; residual may be native.Tensor{}.
// x [.., In] -> [.., Out].
func (l *Linear) Forward(c *native.Ctx, x native.Tensor, act native.Epilogue, residual native.Tensor) native.Tensor {
	if l.LoRA == nil {
		return c.Linear(x, l.W, l.B, act, residual)
	}
	y := c.Linear(x, l.W, l.B, native.None, native.Tensor{})
	l.addLoRA(c, x, y)
	return l.finish(c, y, act, residual)
}

// ForwardInto is Forward writing into dst, which may be the residual itself.
func (l *Linear) ForwardInto(c *native.Ctx, dst, x native.Tensor, act native.Epilogue, residual native.Tensor) {
	if l.LoRA == nil {
		c.LinearInto(dst, x, l.W, l.B, act, residual)
		return
	}
	m := c.Mark()
	y := c.Linear(x, l.W, l.B, native.None, native.Tensor{})
	l.addLoRA(c, x, y)
	c.Copy(dst, l.finish(c, y, act, residual))
	c.Release(m)
}

// addLoRA adds Scale * (x A^T) B^T to y before any activation, as PEFT does.
func (l *Linear) addLoRA(c *native.Ctx, x, y native.Tensor) {
	m := c.Mark()
	t := c.Linear(x, l.LoRA.A, native.Tensor{}, native.None, native.Tensor{}) // [.., R]
	d := c.Linear(t, l.LoRA.B, native.Tensor{}, native.None, native.Tensor{}) // [.., Out]
	c.AddScaledInPlace(y, d, l.LoRA.Scale)
	c.Release(m)
}

func (l *Linear) finish(c *native.Ctx, y native.Tensor, act native.Epilogue, residual native.Tensor) native.Tensor {
	if act != native.None {
		c.ActivationInPlace(y, act)
	}
	if !residual.Empty() {
		c.AddInPlace(y, residual)
	}
	return y
}

// LayerNorm is torch's nn.LayerNorm over the last dimension (biased variance).
type LayerNorm struct {
	W, B native.Tensor // [C] on the model's device; empty for an affine-free norm
	Eps  float32
}

// Forward normalises every row of x [.., C].
func (n *LayerNorm) Forward(c *native.Ctx, x native.Tensor) native.Tensor {
	return c.LayerNorm(x, n.W, n.B, n.Eps)
}

// Into normalises x into dst (which may be x).
func (n *LayerNorm) Into(c *native.Ctx, dst, x native.Tensor) {
	c.LayerNormInto(dst, x, n.W, n.B, n.Eps)
}
