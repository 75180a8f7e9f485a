package lora

import (
	"synth/native"
	"synth/vision/blip2"
	"synth/vision/nn"
)

// The Q-Former's training passes, for adapters on its Linear layers or on the language
// projection. The vision encoder stays frozen (no gradient flows into it), and the
// queries' first LayerNorm is frozen too, so the backward pass stops at the first
// layer's input.

// attnTape is one BERT-style attention block: y = LN(drop(dense(attn(q, k, v))) + x).
type attnTape struct {
	a          *blip2.Attention
	cross      bool
	x, pre     native.Tensor // the block's input; dense + residual before the LN
	q, k, v    linTape
	qo, ko, vo native.Tensor
	dense      linTape
	drop       uint64
}

// qLayerTape is one Q-Former layer: self-attention, cross-attention (some layers),
// and the query feed-forward y = LN(drop(fc2(act(fc1(x)))) + x).
type qLayerTape struct {
	self, cross *attnTape
	x, pre      native.Tensor
	fpre        native.Tensor
	fc1, fc2    linTape
	drop        uint64
}

// QTape is a recorded Q-Former + projection forward pass.
type QTape struct {
	b      int
	layers []qLayerTape
	proj   linTape
	attn   native.AttnParams
}

// dropout applies the Q-Former's hidden dropout in training, returning its seed (0:
// none).
func (md *Model) qDropout(c *native.Ctx, x native.Tensor, sd *Seeds) uint64 {
	if !md.Train || md.Dropouts.QFormer <= 0 {
		return 0
	}
	s := sd.Next()
	c.DropoutInPlace(x, md.Dropouts.QFormer, s)
	return s
}

func (md *Model) attnForward(c *native.Ctx, a *blip2.Attention, x, kv native.Tensor, b int, p native.AttnParams, sd *Seeds, cross bool) (native.Tensor, *attnTape) {
	tp := &attnTape{a: a, cross: cross, x: x}
	tp.qo, tp.q = md.linear(c, a.Query, x, sd)
	tp.ko, tp.k = md.linear(c, a.Key, kv, sd)
	tp.vo, tp.v = md.linear(c, a.Value, kv, sd)
	o, dt := md.linear(c, a.Dense, c.Attention(tp.qo, tp.ko, tp.vo, b, p), sd)
	tp.dense = dt
	tp.drop = md.qDropout(c, o, sd)
	c.AddInPlace(o, x)
	tp.pre = o
	return a.Norm.Forward(c, o), tp
}

// encode is BLIP-2's image encoding with a tape: pixels [B, 3, S, S] -> the projected
// queries [B*Q, E].
func (md *Model) Encode(c *native.Ctx, pixels native.Tensor, b int, sd *Seeds) (native.Tensor, *QTape) {
	m := md.BLIP2
	qf := m.QFormer
	img := m.Vision.Forward(c, pixels)
	nq, h := qf.Queries.Dim(0), qf.Cfg.Hidden
	x := c.Alloc(b*nq, h)
	q0 := qf.Norm.Forward(c, qf.Queries)
	for i := 0; i < b; i++ {
		c.Copy(x.Rows(i*nq, (i+1)*nq), q0)
	}
	md.qDropout(c, x, sd) // the embeddings' dropout: nothing before it trains
	tp := &QTape{b: b, attn: native.AttnParams{Heads: qf.Cfg.Heads, HeadDim: h / qf.Cfg.Heads, Scale: nn.InvSqrt(h / qf.Cfg.Heads)}}
	for i := range qf.Layers {
		ly := &qf.Layers[i]
		var lt qLayerTape
		x, lt.self = md.attnForward(c, &ly.Self, x, x, b, tp.attn, sd, false)
		if ly.Cross != nil {
			x, lt.cross = md.attnForward(c, ly.Cross, x, img, b, tp.attn, sd, true)
		}
		lt.x = x
		lt.fpre, lt.fc1 = md.linear(c, ly.FC1, x, sd)
		o, f2 := md.linear(c, ly.FC2, c.Activation(lt.fpre, qf.Activation()), sd)
		lt.fc2 = f2
		lt.drop = md.qDropout(c, o, sd)
		c.AddInPlace(o, x)
		lt.pre = o
		x = ly.Norm.Forward(c, o)
		tp.layers = append(tp.layers, lt)
	}
	prefix, pt := md.linear(c, m.Proj, x, sd)
	tp.proj = pt
	return prefix, tp
}

// attnBackward returns the gradient of the block's input x given dy of its output (a
// cross-attention's keys and values come from the frozen image: only their adapters'
// gradients are taken).
func (md *Model) attnBackward(c *native.Ctx, tp *attnTape, dy native.Tensor, b int, p native.AttnParams) native.Tensor {
	dpre := c.LayerNormBackward(dy, tp.pre, tp.a.Norm.W, tp.a.Norm.Eps)
	d := dupe(c, dpre)
	if tp.drop != 0 {
		c.DropoutInPlace(d, md.Dropouts.QFormer, tp.drop)
	}
	d = md.backward(c, tp.dense, d)
	dq, dk, dv := c.AttentionBackward(tp.qo, tp.ko, tp.vo, d, b, p)
	dx := md.backward(c, tp.q, dq)
	if tp.cross {
		md.gradsOnly(c, tp.k, dk)
		md.gradsOnly(c, tp.v, dv)
	} else {
		c.AddInPlace(dx, md.backward(c, tp.k, dk))
		c.AddInPlace(dx, md.backward(c, tp.v, dv))
	}
	c.AddInPlace(dx, dpre) // the residual
	return dx
}

// encodeBackward takes the gradient of the projected queries back through the
// projection and the Q-Former layers, adding to the adapters' gradients.
func (md *Model) EncodeBackward(c *native.Ctx, tp *QTape, dPrefix native.Tensor) {
	qf := md.BLIP2.QFormer
	d := md.backward(c, tp.proj, dPrefix)
	for i := len(tp.layers) - 1; i >= 0; i-- {
		ly, lt := &qf.Layers[i], &tp.layers[i]
		dpre := c.LayerNormBackward(d, lt.pre, ly.Norm.W, ly.Norm.Eps)
		g := dupe(c, dpre)
		if lt.drop != 0 {
			c.DropoutInPlace(g, md.Dropouts.QFormer, lt.drop)
		}
		g = md.backward(c, lt.fc2, g)
		g = c.ActivationBackward(g, lt.fpre, qf.Activation())
		d = md.backward(c, lt.fc1, g)
		c.AddInPlace(d, dpre)
		if lt.cross != nil {
			d = md.attnBackward(c, lt.cross, d, tp.b, tp.attn)
		}
		d = md.attnBackward(c, lt.self, d, tp.b, tp.attn)
	}
}
