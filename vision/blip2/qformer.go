package blip2

import (
	"fmt"

	"synth/native"
	"synth/vision/nn"
)

// Attention is a Blip2QFormerAttention block (BERT style, post-LN): multi-head attention
// of the queries onto keys/values (the queries themselves, or the image tokens), then
// LayerNorm(dense(context) + input). It is post-LN with cross-attention between its
// halves, so it does not fit nn.Block; it shares nn's Linear and LayerNorm.
type Attention struct {
	Query, Key, Value *nn.Linear    // attention.{query,key,value}: [H, H], [H, Hkv], [H, Hkv]
	Dense             *nn.Linear    // output.dense [H, H]
	Norm              *nn.LayerNorm // output.LayerNorm
}

// QLayer is one Blip2QFormerLayer, query branch.
type QLayer struct {
	Self  Attention
	Cross *Attention    // crossattention, nil unless i % cross_attention_frequency == 0
	FC1   *nn.Linear    // intermediate_query.dense [I, H]
	FC2   *nn.Linear    // output_query.dense [H, I]
	Norm  *nn.LayerNorm // output_query.LayerNorm
}

// QFormer is Blip2QFormerModel with the learned query tokens.
type QFormer struct {
	Cfg     QFormerConfig
	Queries native.Tensor // query_tokens [Q, H]
	Norm    *nn.LayerNorm // layernorm, applied to the queries first
	Layers  []QLayer
	Trace   nn.Tracer
	act     native.Epilogue
}

func loadAttention(l *nn.Loader, h, kvIn int, eps float32) Attention {
	return Attention{
		Query: l.Linear("attention.query", h, h, true),
		Key:   l.Linear("attention.key", h, kvIn, true),
		Value: l.Linear("attention.value", h, kvIn, true),
		Dense: l.Linear("output.dense", h, h, true),
		Norm:  l.LayerNorm("output.LayerNorm", h, eps),
	}
}

// loadQFormer reads qformer.* from l (scoped at the model root, which also holds
// query_tokens).
func loadQFormer(l *nn.Loader, cfg QFormerConfig, queries int) *QFormer {
	h := cfg.Hidden
	act, _ := epilogue(cfg.Act)
	q := &QFormer{Cfg: cfg, act: act}
	q.Queries = l.Vector("query_tokens", 1, queries, h)
	s := l.Sub("qformer")
	q.Norm = s.LayerNorm("layernorm", h, cfg.Eps)
	for i := 0; i < cfg.Layers; i++ {
		ls := s.Sub("encoder.layer", i)
		ly := QLayer{
			Self: loadAttention(ls.Sub("attention"), h, h, cfg.Eps),
			FC1:  ls.Linear("intermediate_query.dense", cfg.Intermediate, h, true),
			FC2:  ls.Linear("output_query.dense", h, cfg.Intermediate, true),
			Norm: ls.LayerNorm("output_query.LayerNorm", h, cfg.Eps),
		}
		if i%cfg.CrossAttnFrequency == 0 {
			a := loadAttention(ls.Sub("crossattention"), h, cfg.EncoderHidden, cfg.Eps)
			ly.Cross = &a
		}
		q.Layers = append(q.Layers, ly)
	}
	return q
}

// Activation is the feed-forward's activation (hidden_act).
func (q *QFormer) Activation() native.Epilogue { return q.act }

// forward is the attention block in place on x [B*Q, H]: x = LayerNorm(dense(attn) + x),
// with keys and values from kv [B*Tk, Hkv] (x itself for self-attention).
func (a *Attention) forward(c *native.Ctx, x, kv native.Tensor, b int, p native.AttnParams) {
	m := c.Mark()
	q := a.Query.Forward(c, x, native.None, native.Tensor{})
	k := a.Key.Forward(c, kv, native.None, native.Tensor{})
	v := a.Value.Forward(c, kv, native.None, native.Tensor{})
	a.Dense.ForwardInto(c, x, c.Attention(q, k, v, b, p), native.None, x)
	a.Norm.Into(c, x, x)
	c.Release(m)
}

// Forward runs the queries over image embeddings img [B*T, D] of b images: -> [B*Q, H]
// in the Ctx's arena. Trace receives qformer_hidden_states.i (i = 0: the normalised
// queries; i: the output of layer i-1).
func (q *QFormer) Forward(c *native.Ctx, img native.Tensor, b int) native.Tensor {
	cfg := q.Cfg
	nq, h := q.Queries.Dim(0), cfg.Hidden
	if rows, cols := img.Dims2(); b < 1 || rows%b != 0 || cols != cfg.EncoderHidden {
		panic(fmt.Sprintf("blip2: qformer: image embeddings %v for %d images of width %d", img.Shape(), b, cfg.EncoderHidden))
	}
	x := c.Alloc(b*nq, h) // [B*Q, H]: the normalised queries, the same for every image
	m := c.Mark()
	q0 := q.Norm.Forward(c, q.Queries) // [Q, H]
	for i := 0; i < b; i++ {
		c.Copy(x.Rows(i*nq, (i+1)*nq), q0)
	}
	c.Release(m)
	q.Trace.At("qformer_hidden_states.0", x)
	p := native.AttnParams{Heads: cfg.Heads, HeadDim: h / cfg.Heads, Scale: nn.InvSqrt(h / cfg.Heads)}
	for i := range q.Layers {
		ly := &q.Layers[i]
		ly.Self.forward(c, x, x, b, p)
		if ly.Cross != nil {
			ly.Cross.forward(c, x, img, b, p)
		}
		m := c.Mark()
		ly.FC2.ForwardInto(c, x, ly.FC1.Forward(c, x, q.act, native.Tensor{}), native.None, x)
		ly.Norm.Into(c, x, x)
		c.Release(m)
		q.Trace.Layer("qformer_hidden_states", i+1, x)
	}
	return x
}
