package nn

import (
	"synth/native"
)

// Block is a pre-LN transformer layer, the one block every ViT-like stack here uses
// (llama.cpp's clip.cpp builds ~20 models from one such block): EVA's encoder layers,
// both Long-CLIP towers and OPT's decoder layers.
//
//	x = x + Out(attend(q, k, v)),  q, k, v = projections of Norm1(x)
//	x = x + FC2(act(FC1(Norm2(x))))
//
// The models differ only in what the fields hold (a packed qkv projection or three,
// biases or none, the activation) and in attend: encoder self-attention over a batch,
// or a decoder's attention over its KV cache.
type Block struct {
	Norm1, Norm2 *LayerNorm
	QKV          *Linear // packed [3W, W], rows q, k, v; nil when Q, K and V are separate
	Q, K, V      *Linear // separate projections [W, W] (OPT)
	Out          *Linear // [W, W]
	FC1, FC2     *Linear // [I, W], [W, I]
	Act          native.Epilogue
}

// Attend computes attention from projected queries, keys and values (rows of the
// block's input; q, k, v may be column views of one packed projection). Its result,
// [rows of q, W], may live in the Ctx's arena.
type Attend func(q, k, v native.Tensor) native.Tensor

// Project returns the queries, keys and values of h (the normed input) [N, W].
func (b *Block) Project(c *native.Ctx, h native.Tensor) (q, k, v native.Tensor) {
	if b.QKV != nil {
		qkv := b.QKV.Forward(c, h, native.None, native.Tensor{}) // [N, 3W]
		w := qkv.Dim(-1) / 3
		return qkv.Cols(0, w), qkv.Cols(w, w), qkv.Cols(2*w, w)
	}
	q = b.Q.Forward(c, h, native.None, native.Tensor{})
	k = b.K.Forward(c, h, native.None, native.Tensor{})
	v = b.V.Forward(c, h, native.None, native.Tensor{})
	return q, k, v
}

// Forward runs the block on x [N, W] in place.
func (b *Block) Forward(c *native.Ctx, x native.Tensor, attend Attend) {
	m := c.Mark()
	q, k, v := b.Project(c, b.Norm1.Forward(c, x))
	b.Out.ForwardInto(c, x, attend(q, k, v), native.None, x) // x += Out(attention)
	c.Release(m)
	b.MLPInto(c, x)
}

// MLPInto is the block's second half on x [N, W] in place: x += FC2(act(FC1(Norm2 x))).
func (b *Block) MLPInto(c *native.Ctx, x native.Tensor) {
	m := c.Mark()
	h := b.FC1.Forward(c, b.Norm2.Forward(c, x), b.Act, native.Tensor{})
	b.FC2.ForwardInto(c, x, h, native.None, x)
	c.Release(m)
}

// SelfAttention is encoder attention for Block.Forward: batch sequences of equal
// length, every query seeing every key of its sequence (p says heads, scale and masks).
func SelfAttention(c *native.Ctx, batch int, p native.AttnParams) Attend {
	return func(q, k, v native.Tensor) native.Tensor { return c.Attention(q, k, v, batch, p) }
}

// BlockNames are a checkpoint's tensor names for one Block, relative to the layer's
// scope. QKV names a packed projection's weight and bias tensors ("attn.in_proj_weight",
// "attn.in_proj_bias": torch MultiheadAttention) or, without the bias name, a Linear
// module ("self_attn.qkv"); otherwise Q, K and V name three Linear modules.
type BlockNames struct {
	Norm1, Norm2           string
	QKVWeight, QKVBias     string // packed, torch's names for both tensors
	QKV                    string // packed, a Linear module
	Q, K, V, Out, FC1, FC2 string // Linear modules
	QKVHasBias, OutHasBias bool
	MLPHasBias             bool
}

// Block loads a Block of width w and MLP width inter from l, a layer's scope.
func (l *Loader) Block(n BlockNames, w, inter int, eps float32, act native.Epilogue) *Block {
	b := &Block{
		Norm1: l.LayerNorm(n.Norm1, w, eps),
		Out:   l.Linear(n.Out, w, w, n.OutHasBias),
		Norm2: l.LayerNorm(n.Norm2, w, eps),
		FC1:   l.Linear(n.FC1, inter, w, n.MLPHasBias),
		FC2:   l.Linear(n.FC2, w, inter, n.MLPHasBias),
		Act:   act,
	}
	switch {
	case n.QKVWeight != "":
		b.QKV = l.LinearNamed(n.QKVWeight, n.QKVBias, 3*w, w)
	case n.QKV != "":
		b.QKV = l.Linear(n.QKV, 3*w, w, n.QKVHasBias)
	default:
		b.Q = l.Linear(n.Q, w, w, n.QKVHasBias)
		b.K = l.Linear(n.K, w, w, n.QKVHasBias)
		b.V = l.Linear(n.V, w, w, n.QKVHasBias)
	}
	return b
}
