package native

import (
	"fmt"
)

// The backward ops: what training a LoRA adapter needs to carry a loss's gradient back
// through the frozen model. Each takes the forward op's inputs (recomputing what it
// needs) and the gradient of its output, and returns gradients of its inputs; none
// computes gradients of frozen weights. Every executor implements them, so training
// runs on every device like inference does.

// LinearBackward is the gradient of Linear's input: dx = dy W, dy [.., N] with W [N, K]
// -> [.., K] (the bias, activation and residual are handled by their own ops).
func (c *Ctx) LinearBackward(dy Tensor, w *Matrix) Tensor {
	c.live("LinearBackward")
	c.onDevice("LinearBackward", dy)
	w.mustOn(c.dev, "LinearBackward")
	rows, n := dy.Dims2()
	if n != w.N() {
		panic(fmt.Sprintf("native: LinearBackward: dy %v for W [%d, %d]", dy.Shape(), w.N(), w.K()))
	}
	dx := c.Alloc(rows, w.K())
	if rows > 0 && w.K() > 0 {
		c.x.linearBackward(dx, dy, w)
	}
	return dx
}

// MatMulTN is a^T b for activations a [M, P] and b [M, Q] -> [P, Q]: the weight
// gradients of a LoRA adapter (dB = dy^T (x A^T), dA = (dy B)^T x).
func (c *Ctx) MatMulTN(a, b Tensor) Tensor {
	c.live("MatMulTN")
	c.onDevice("MatMulTN", a, b)
	m, p := a.Dims2()
	mb, q := b.Dims2()
	if m != mb {
		panic(fmt.Sprintf("native: MatMulTN: a %v and b %v have different rows", a.Shape(), b.Shape()))
	}
	out := c.Alloc(p, q)
	if p > 0 && q > 0 {
		c.x.matMulTN(out, a, b)
	}
	return out
}

// LayerNormBackward is LayerNorm's input gradient: for y = (x - mean)/sigma * gamma +
// beta over each row, dx = (g - mean(g) - xhat mean(g xhat)) / sigma with g = dy gamma
// (gamma empty: 1).
func (c *Ctx) LayerNormBackward(dy, x, gamma Tensor, eps float32) Tensor {
	c.live("LayerNormBackward")
	c.onDevice("LayerNormBackward", dy, x, gamma)
	sameShape2("LayerNormBackward", dy, x)
	_, cols := x.Dims2()
	vector("LayerNormBackward", "gamma", gamma, cols)
	dx := c.allocLike(x, cols)
	if !x.Empty() {
		c.x.layerNormBackward(dx, dy, x, gamma, eps)
	}
	return dx
}

// ActivationBackward is dy act'(pre): the gradient through an activation, given the
// values it was applied to.
func (c *Ctx) ActivationBackward(dy, pre Tensor, act Epilogue) Tensor {
	c.live("ActivationBackward")
	c.onDevice("ActivationBackward", dy, pre)
	sameShape2("ActivationBackward", dy, pre)
	_, cols := pre.Dims2()
	dx := c.allocLike(pre, cols)
	if !pre.Empty() {
		if act == None {
			c.x.copy(dx, dy)
		} else {
			c.x.activationBackward(dx, dy, pre, act)
		}
	}
	return dx
}

// AttentionBackward is the gradient of Attention(q, k, v, batch, p) given the gradient
// dout of its output: dq [B*Tq, H*D], dk and dv [B*Tk, H*D]. It recomputes the
// attention weights (nothing of the forward pass is kept) under the same masks.
func (c *Ctx) AttentionBackward(q, k, v, dout Tensor, batch int, p AttnParams) (dq, dk, dv Tensor) {
	c.live("AttentionBackward")
	c.onDevice("AttentionBackward", q, k, v, dout)
	p.check("AttentionBackward")
	qr, kr, w, seq, mask := c.attnLayout("AttentionBackward", q, k, v, batch, p)
	if or := widthOf("AttentionBackward", "dout", dout, w); or != qr {
		panic(fmt.Sprintf("native: AttentionBackward: dout has %d rows, q %d", or, qr))
	}
	dq, dk, dv = c.Alloc(qr, w), c.Alloc(kr, w), c.Alloc(kr, w)
	if qr > 0 {
		c.x.attentionBackward(dq, dk, dv, q, k, v, dout, seq, mask, p)
	}
	return dq, dk, dv
}

// IgnoreIndex marks a row CrossEntropy leaves out of the loss (transformers' -100).
const IgnoreIndex = -100

// CrossEntropy is the mean cross-entropy of logits [R, V] against targets (one class per
// row, IgnoreIndex to leave a row out), as torch.nn.CrossEntropyLoss computes it: loss =
// -mean over the labelled rows of log softmax(row)[target]. It returns the loss and its
// gradient dlogits = (softmax - onehot) / labelled on labelled rows, 0 elsewhere. It
// waits for the logits (the loss goes to the host).
func (c *Ctx) CrossEntropy(logits Tensor, targets []int32) (loss float64, dlogits Tensor) {
	c.live("CrossEntropy")
	c.onDevice("CrossEntropy", logits)
	rows, cols := logits.Dims2()
	if len(targets) != rows {
		panic(fmt.Sprintf("native: CrossEntropy: %d targets for %d rows", len(targets), rows))
	}
	n := 0
	for i, t := range targets {
		switch {
		case t == IgnoreIndex:
		case t < 0 || int(t) >= cols:
			panic(fmt.Sprintf("native: CrossEntropy: row %d: target %d outside %d classes", i, t, cols))
		default:
			n++
		}
	}
	dlogits = c.Alloc(rows, cols)
	if rows == 0 || cols == 0 {
		return 0, dlogits
	}
	sum := c.x.crossEntropy(dlogits, logits, targets, float32(1/float64(max(n, 1))))
	if n == 0 {
		return 0, dlogits
	}
	return sum / float64(n), dlogits
}

// DropoutInPlace zeroes each element of x with probability p and scales the others by
// 1/(1-p) (torch.nn.Dropout in training mode). Which elements drop is a function of
// seed and the element's place in x's 2-D form alone, so the backward pass applies the
// same mask to the gradient with the same seed, and a resumed run drops what the
// uninterrupted one did, on any device and thread count.
func (c *Ctx) DropoutInPlace(x Tensor, p float32, seed uint64) {
	c.live("Dropout")
	c.onDevice("Dropout", x)
	if p < 0 || p >= 1 {
		panic(fmt.Sprintf("native: Dropout: p %v outside [0, 1)", p))
	}
	if p == 0 || x.Empty() {
		return
	}
	c.x.dropout(x, p, seed)
}

// DropoutKeep reports whether element i of a Dropout of probability p with seed keeps
// its value: splitmix64 of (seed, i), its top 24 bits against p.
func DropoutKeep(seed uint64, i int, p float32) bool {
	z := seed + uint64(i+1)*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	return float32(z>>40)/(1<<24) >= p
}
