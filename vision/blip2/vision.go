package blip2

import (
	"fmt"

	"synth/native"
	"synth/vision/nn"
)

// VisionLayer is one Blip2EncoderLayer (pre-LN EVA block).
type VisionLayer struct {
	Norm1 *nn.LayerNorm // layer_norm1
	QKV   *nn.Linear    // self_attn.qkv [3D, D], bias [q ; k ; v] (used as stored)
	Proj  *nn.Linear    // self_attn.projection [D, D]
	Norm2 *nn.LayerNorm // layer_norm2
	FC1   *nn.Linear    // mlp.fc1 [I, D]
	FC2   *nn.Linear    // mlp.fc2 [D, I]
}

// Vision is Blip2VisionModel: patch embedding, class token, positions, encoder layers
// and post_layernorm.
type Vision struct {
	Cfg       VisionConfig
	Patch     *nn.Linear    // patch_embedding as im2col GEMM: [D, 3*p*p]
	Class     []float32     // class_embedding [D]
	Positions native.Tensor // position_embedding [T, D]
	Layers    []VisionLayer
	PostNorm  *nn.LayerNorm // post_layernorm
	act       native.Epilogue
}

func loadVision(l *nn.Loader, cfg VisionConfig) *Vision {
	d, t := cfg.Hidden, cfg.Tokens()
	act, _ := epilogue(cfg.Act)
	v := &Vision{Cfg: cfg, act: act}
	e := l.Sub("embeddings")
	v.Patch = e.Conv("patch_embedding", d, 3, cfg.PatchSize, cfg.PatchSize, true)
	v.Class = e.F32("class_embedding", 1, 1, d)
	if pos := e.F32("position_embedding", 1, t, d); pos != nil {
		v.Positions = native.FromF32(pos, t, d)
	}
	for i := 0; i < cfg.Layers; i++ {
		s := l.Sub("encoder.layers", i)
		v.Layers = append(v.Layers, VisionLayer{
			Norm1: s.LayerNorm("layer_norm1", d, cfg.Eps),
			QKV:   s.Linear("self_attn.qkv", 3*d, d, cfg.QKVBias),
			Proj:  s.Linear("self_attn.projection", d, d, true),
			Norm2: s.LayerNorm("layer_norm2", d, cfg.Eps),
			FC1:   s.Linear("mlp.fc1", cfg.Intermediate, d, true),
			FC2:   s.Linear("mlp.fc2", d, cfg.Intermediate, true),
		})
	}
	v.PostNorm = l.LayerNorm("post_layernorm", d, cfg.Eps)
	return v
}

// Forward embeds images: pixels [B, 3, S, S] -> image_embeds [B*T, D] (after
// post_layernorm), outside the arena (in s, or allocated when s is nil). The Ctx's arena is reset after every layer (the
// residual stream lives outside it), so callers must not hold arena tensors across the
// call. capture, when set, receives transformers' intermediate outputs by their fixture
// names (vision_embeddings, vision_hidden_states.i, vision_last_hidden_state,
// vision_pooler_output); later layers overwrite them, so Clone what must be kept.
func (v *Vision) Forward(c *native.Ctx, pixels native.Tensor, s *nn.Scratch, capture func(string, native.Tensor)) native.Tensor {
	cfg := v.Cfg
	if pixels.Rank() != 4 || pixels.Dim(1) != 3 || pixels.Dim(2) != cfg.ImageSize || pixels.Dim(3) != cfg.ImageSize {
		panic(fmt.Sprintf("blip2: vision: pixels %v, want [B, 3, %d, %d]", pixels.Shape(), cfg.ImageSize, cfg.ImageSize))
	}
	b, t, d := pixels.Dim(0), cfg.Tokens(), cfg.Hidden
	patches := c.PatchEmbed(pixels, v.Patch.W, v.Patch.B, cfg.PatchSize) // [B*(T-1), D]
	x := s.Tensor("vision.residual", b*t, d)                             // [B*T, D]: class token, then patches, per image
	class := native.FromF32(v.Class, 1, d)
	for i := 0; i < b; i++ {
		x.Rows(i*t, i*t+1).CopyFrom(class)
		x.Rows(i*t+1, (i+1)*t).CopyFrom(patches.Rows(i*(t-1), (i+1)*(t-1)))
	}
	c.AddInPlace(x, v.Positions)
	c.Reset()
	if capture != nil {
		capture("vision_embeddings", x)
		capture("vision_hidden_states.0", x)
	}
	heads := cfg.Heads
	attn := native.AttnParams{Heads: heads, HeadDim: d / heads, Scale: nn.InvSqrt(d / heads)}
	for i := range v.Layers {
		ly := &v.Layers[i]
		h := ly.Norm1.Forward(c, x)
		qkv := ly.QKV.Forward(c, h, native.None, native.Tensor{}) // [B*T, 3D]
		a := c.Attention(qkv.Cols(0, d), qkv.Cols(d, d), qkv.Cols(2*d, d), b, attn)
		ly.Proj.ForwardInto(c, x, a, native.None, x) // x += projection(attention)
		h = ly.Norm2.Forward(c, x)
		h = ly.FC1.Forward(c, h, v.act, native.Tensor{})
		ly.FC2.ForwardInto(c, x, h, native.None, x) // x += fc2(gelu(fc1(.)))
		c.Reset()
		if capture != nil {
			capture(fmt.Sprintf("vision_hidden_states.%d", i+1), x)
		}
	}
	c.LayerNormInto(x, x, v.PostNorm.W, v.PostNorm.B, v.PostNorm.Eps)
	if capture != nil {
		capture("vision_last_hidden_state", x)
		cls := c.Alloc(b, d)
		for i := 0; i < b; i++ {
			cls.Rows(i, i+1).CopyFrom(x.Rows(i*t, i*t+1))
		}
		capture("vision_pooler_output", v.PostNorm.Forward(c, cls))
		c.Reset()
	}
	return x
}
