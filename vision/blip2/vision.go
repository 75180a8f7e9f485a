package blip2

import (
	"fmt"

	"synth/native"
	"synth/vision/nn"
)

// Vision is Blip2VisionModel: patch embedding, class token, positions, encoder layers
// (pre-LN EVA blocks: nn.Block with a packed qkv projection) and post_layernorm.
type Vision struct {
	Cfg       VisionConfig
	Patch     *nn.Linear    // patch_embedding as im2col GEMM: [D, 3*p*p]
	Class     native.Tensor // class_embedding [1, D]
	Positions native.Tensor // position_embedding [T, D]
	Layers    []*nn.Block
	PostNorm  *nn.LayerNorm // post_layernorm
	Trace     nn.Tracer
}

func loadVision(l *nn.Loader, cfg VisionConfig) *Vision {
	d, t := cfg.Hidden, cfg.Tokens()
	act, _ := epilogue(cfg.Act)
	v := &Vision{Cfg: cfg}
	e := l.Sub("embeddings")
	v.Patch = e.Conv("patch_embedding", d, 3, cfg.PatchSize, cfg.PatchSize, true)
	v.Class = e.Vector("class_embedding", 1, 1, d)
	v.Positions = e.Vector("position_embedding", 1, t, d)
	names := nn.BlockNames{
		Norm1: "layer_norm1", Norm2: "layer_norm2",
		QKV: "self_attn.qkv", Out: "self_attn.projection", FC1: "mlp.fc1", FC2: "mlp.fc2",
		QKVHasBias: cfg.QKVBias, OutHasBias: true, MLPHasBias: true,
	}
	for i := 0; i < cfg.Layers; i++ {
		v.Layers = append(v.Layers, l.Sub("encoder.layers", i).Block(names, d, cfg.Intermediate, cfg.Eps, act))
	}
	v.PostNorm = l.LayerNorm("post_layernorm", d, cfg.Eps)
	return v
}

// Forward embeds images: pixels [B, 3, S, S] -> image_embeds [B*T, D] (after
// post_layernorm), in the Ctx's arena. Trace receives transformers' intermediate
// outputs by their fixture names (vision_embeddings, vision_hidden_states.i,
// vision_last_hidden_state, vision_pooler_output).
func (v *Vision) Forward(c *native.Ctx, pixels native.Tensor) native.Tensor {
	cfg := v.Cfg
	if pixels.Rank() != 4 || pixels.Dim(1) != 3 || pixels.Dim(2) != cfg.ImageSize || pixels.Dim(3) != cfg.ImageSize {
		panic(fmt.Sprintf("blip2: vision: pixels %v, want [B, 3, %d, %d]", pixels.Shape(), cfg.ImageSize, cfg.ImageSize))
	}
	b, t, d := pixels.Dim(0), cfg.Tokens(), cfg.Hidden
	x := c.Alloc(b*t, d) // [B*T, D]: class token, then patches, per image
	m := c.Mark()
	patches := c.PatchEmbed(pixels, v.Patch.W, v.Patch.B, cfg.PatchSize) // [B*(T-1), D]
	for i := 0; i < b; i++ {
		c.Copy(x.Rows(i*t, i*t+1), v.Class)
		c.Copy(x.Rows(i*t+1, (i+1)*t), patches.Rows(i*(t-1), (i+1)*(t-1)))
	}
	c.AddInPlace(x, v.Positions)
	c.Release(m)
	v.Trace.At("vision_embeddings", x)
	v.Trace.At("vision_hidden_states.0", x)
	heads := cfg.Heads
	attend := nn.SelfAttention(c, b, native.AttnParams{Heads: heads, HeadDim: d / heads, Scale: nn.InvSqrt(d / heads)})
	for i, ly := range v.Layers {
		ly.Forward(c, x, attend)
		v.Trace.Layer("vision_hidden_states", i+1, x)
	}
	v.PostNorm.Into(c, x, x)
	if v.Trace != nil {
		v.Trace.At("vision_last_hidden_state", x)
		m := c.Mark()
		cls := c.Alloc(b, d)
		for i := 0; i < b; i++ {
			c.Copy(cls.Rows(i, i+1), x.Rows(i*t, i*t+1))
		}
		v.Trace.At("vision_pooler_output", v.PostNorm.Forward(c, cls))
		c.Release(m)
	}
	return x
}
