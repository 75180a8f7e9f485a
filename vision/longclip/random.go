package longclip

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"

	"synth/weights"
)

// RandomTensors builds a Long-CLIP state dict with upstream's names at cfg's dimensions
// and seeded random values of realistic scale (weights uniform with the variance of
// N(0, 1/fan_in), LayerNorm weights near 1, logit_scale log(100)), for tests and for
// benchmarks at the real sizes without a checkpoint file:
//
//	src, _ := weights.FromTensors("random", longclip.RandomTensors(longclip.LongCLIPL, 1), nil, nil)
//	m, _ := longclip.Load(src, longclip.LongCLIPL, longclip.Options{})
func RandomTensors(cfg Config, seed uint64) []weights.Tensor {
	r := rand.New(rand.NewPCG(seed, 0x1c11))
	var ts []weights.Tensor
	add := func(name string, scale, offset float32, shape ...int) {
		n := 1
		for _, d := range shape {
			n *= d
		}
		b := make([]byte, 4*n)
		for i := 0; i < n; i++ {
			v := offset + scale*(2*r.Float32()-1)
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
		ts = append(ts, weights.Tensor{Name: name, DType: weights.F32, Shape: shape, Data: b})
	}
	lin := func(fanIn int) float32 { return float32(math.Sqrt(3 / float64(fanIn))) }
	blocks := func(prefix string, n, w int) {
		for i := 0; i < n; i++ {
			p := fmt.Sprintf("%s%d.", prefix, i)
			add(p+"attn.in_proj_weight", lin(w), 0, 3*w, w)
			add(p+"attn.in_proj_bias", 0.1, 0, 3*w)
			add(p+"attn.out_proj.weight", lin(w), 0, w, w)
			add(p+"attn.out_proj.bias", 0.1, 0, w)
			add(p+"ln_1.weight", 0.2, 1, w)
			add(p+"ln_1.bias", 0.1, 0, w)
			add(p+"mlp.c_fc.weight", lin(w), 0, 4*w, w)
			add(p+"mlp.c_fc.bias", 0.1, 0, 4*w)
			add(p+"mlp.c_proj.weight", lin(4*w), 0, w, 4*w)
			add(p+"mlp.c_proj.bias", 0.1, 0, w)
			add(p+"ln_2.weight", 0.2, 1, w)
			add(p+"ln_2.bias", 0.1, 0, w)
		}
	}
	v, t := cfg.Vision, cfg.Text
	add("positional_embedding", 0.02, 0, t.Context, t.Width)
	add("positional_embedding_res", 0.02, 0, t.Context, t.Width)
	add("text_projection", lin(t.Width), 0, t.Width, cfg.EmbedDim)
	add("logit_scale", 0, float32(math.Log(100))) // a scalar, shape []
	add("visual.class_embedding", 0.05, 0, v.Width)
	add("visual.positional_embedding", 0.02, 0, v.Tokens(), v.Width)
	add("visual.proj", lin(v.Width), 0, v.Width, cfg.EmbedDim)
	add("visual.conv1.weight", lin(3*v.PatchSize*v.PatchSize), 0, v.Width, 3, v.PatchSize, v.PatchSize)
	add("visual.ln_pre.weight", 0.2, 1, v.Width)
	add("visual.ln_pre.bias", 0.1, 0, v.Width)
	blocks("visual.transformer.resblocks.", v.Layers, v.Width)
	add("visual.ln_post.weight", 0.2, 1, v.Width)
	add("visual.ln_post.bias", 0.1, 0, v.Width)
	blocks("transformer.resblocks.", t.Layers, t.Width)
	add("token_embedding.weight", 0.05, 0, t.Vocab, t.Width)
	add("ln_final.weight", 0.2, 1, t.Width)
	add("ln_final.bias", 0.1, 0, t.Width)
	return ts
}
