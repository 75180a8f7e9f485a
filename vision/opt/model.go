package opt

import (
	"fmt"

	"synth/native"
	"synth/vision/nn"
)

// Layer is one OPTDecoderLayer (pre-LN).
type Layer struct {
	AttnNorm   *nn.LayerNorm // self_attn_layer_norm
	Q, K, V, O *nn.Linear    // self_attn.{q,k,v,out}_proj, [H, H]
	FFNNorm    *nn.LayerNorm // final_layer_norm (of the layer)
	FC1        *nn.Linear    // [F, H]
	FC2        *nn.Linear    // [H, F]
}

// Model is OPTForCausalLM's inference path.
type Model struct {
	Cfg       Config
	Embed     *native.Matrix // embed_tokens [V, P]; also the LM head (tied)
	Positions native.Tensor  // embed_positions [MaxPositions+2, H]
	ProjIn    *nn.Linear     // project_in [H, P], nil when P == H
	ProjOut   *nn.Linear     // project_out [P, H], nil when P == H
	Layers    []Layer
	Norm      *nn.LayerNorm // decoder final_layer_norm, nil with _remove_final_layer_norm
	// KVCache is the element type of the KV caches its sessions allocate: native.F32 (the
	// zero value), or native.F16 for half the cache's memory, keys and values rounded to
	// f16 (see native.KVCache).
	KVCache native.DType
	act     native.Epilogue
}

// eps is OPT's LayerNorm eps: OPT has no setting, so torch.nn.LayerNorm's default.
const eps = 1e-5

// Load builds the model from l, scoped at the OPTForCausalLM level: it reads
// model.decoder.* and skips lm_head.weight (tied to embed_tokens). It returns an error for
// an unsupported config; checkpoint errors are recorded in the loader, so check its
// Finish before using the model.
func Load(l *nn.Loader, cfg Config) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	act, _ := cfg.epilogue()
	h, p, f := cfg.Hidden, cfg.ProjDim(), cfg.FFN
	m := &Model{Cfg: cfg, act: act}
	d := l.Sub("model.decoder")
	m.Embed = d.Embedding("embed_tokens.weight", cfg.Vocab, p)
	if pos := d.F32("embed_positions.weight", cfg.MaxPositions+2, h); pos != nil {
		m.Positions = native.FromF32(pos, cfg.MaxPositions+2, h)
	}
	if p != h {
		m.ProjIn = d.Linear("project_in", h, p, false)
		m.ProjOut = d.Linear("project_out", p, h, false)
	}
	norm := func(s *nn.Loader, name string) *nn.LayerNorm {
		if cfg.LayerNormAffine {
			return s.LayerNorm(name, h, eps)
		}
		return &nn.LayerNorm{Eps: eps}
	}
	bias := cfg.EnableBias
	for i := 0; i < cfg.Layers; i++ {
		s := d.Sub("layers", i)
		m.Layers = append(m.Layers, Layer{
			AttnNorm: norm(s, "self_attn_layer_norm"),
			Q:        s.Linear("self_attn.q_proj", h, h, bias),
			K:        s.Linear("self_attn.k_proj", h, h, bias),
			V:        s.Linear("self_attn.v_proj", h, h, bias),
			O:        s.Linear("self_attn.out_proj", h, h, bias),
			FFNNorm:  norm(s, "final_layer_norm"),
			FC1:      s.Linear("fc1", f, h, bias),
			FC2:      s.Linear("fc2", h, f, bias),
		})
	}
	if !cfg.RemoveFinalLayerNorm {
		m.Norm = norm(d, "final_layer_norm")
	}
	// tie_word_embeddings: the LM head is embed_tokens, whatever lm_head.weight holds.
	l.S.Skip("lm_head.weight")
	return m, nil
}

// EmbedTokens looks up token embeddings: [len(ids), P].
func (m *Model) EmbedTokens(c *native.Ctx, ids []int32) native.Tensor {
	return c.Gather(m.Embed, ids)
}

// Batch says where the rows of a forward pass go: Lens[i] new positions for the sequence
// in cache slot Slots[i], stacked in that order, with position ids Pos (one per row, OPT's
// offset 2 included, see PositionIDs) and KeyMask as for native.Ctx.AttentionCached (nil:
// nothing padded).
type Batch struct {
	Slots, Lens []int
	Pos         []int32
	KeyMask     [][]bool
}

// Forward runs new positions of a batch of sequences through the decoder. x [N, P] holds
// the input embeddings of the new positions (token embeddings, or BLIP-2's projected
// queries), laid out as b says. Keys and values are appended to kv, and every position
// attends causally to its slot's cache. s holds the residual stream between calls (nil:
// allocate). The result is the final hidden state
// [N, P] (after the final LayerNorm and project_out), in the arena. Forward resets the
// Ctx's arena as it goes (after reading x): callers must not hold other arena tensors
// across it. capture, when set, receives
// transformers' hidden_states: i = 0 the input of layer 0 (embeddings + positions),
// i = 1..L-1 the output of layer i-1, i = L the result; later layers overwrite them, so
// Clone what must be kept.
func (m *Model) Forward(c *native.Ctx, kv *native.KVCache, x native.Tensor, b Batch, s *nn.Scratch,
	capture func(i int, h native.Tensor)) native.Tensor {
	cfg := m.Cfg
	if rows, _ := x.Dims2(); rows != len(b.Pos) {
		panic(fmt.Sprintf("opt: Forward: %d rows of embeddings, %d positions", rows, len(b.Pos)))
	}
	// The residual stream lives outside the arena, which is reset after every layer so
	// that a pass over many positions needs one layer's temporaries, not L layers'.
	h := s.Tensor("opt.residual", len(b.Pos), cfg.Hidden) // [N, H]
	if m.ProjIn != nil {
		m.ProjIn.ForwardInto(c, h, x, native.None, native.Tensor{})
	} else {
		h.CopyFrom(x)
	}
	c.AddInPlace(h, c.GatherRows(m.Positions, b.Pos))
	c.Reset()
	attn := native.AttnParams{Heads: cfg.Heads, HeadDim: cfg.HeadDim(), Scale: nn.InvSqrt(cfg.HeadDim()), Causal: true}
	for i := range m.Layers {
		if capture != nil {
			capture(i, h)
		}
		ly := &m.Layers[i]
		a := ly.AttnNorm.Forward(c, h)
		q := ly.Q.Forward(c, a, native.None, native.Tensor{})
		k := ly.K.Forward(c, a, native.None, native.Tensor{})
		v := ly.V.Forward(c, a, native.None, native.Tensor{})
		kv.Append(i, b.Slots, b.Lens, k, v)
		o := c.AttentionCached(q, kv, i, b.Slots, b.Lens, attn, b.KeyMask)
		ly.O.ForwardInto(c, h, o, native.None, h) // h += out_proj(attention)
		f := ly.FFNNorm.Forward(c, h)
		f = ly.FC1.Forward(c, f, m.act, native.Tensor{})
		ly.FC2.ForwardInto(c, h, f, native.None, h) // h += fc2(act(fc1(.)))
		c.Reset()
	}
	if m.Norm != nil {
		h = m.Norm.Forward(c, h)
	}
	if m.ProjOut != nil {
		h = m.ProjOut.Forward(c, h, native.None, native.Tensor{})
	}
	if capture != nil {
		capture(len(m.Layers), h)
	}
	return h
}

// Logits is the LM head on final hidden states: [N, P] -> [N, V].
func (m *Model) Logits(c *native.Ctx, h native.Tensor) native.Tensor {
	return c.Linear(h, m.Embed, nil, native.None, native.Tensor{})
}

// PositionIDs returns the position ids of a sequence's next positions from their
// attention mask (true: a real token), given seen real tokens before them: upstream's
// cumsum(mask)*mask - 1 plus OPT's offset 2. Padding gets id 1. mask nil means len
// positions all real.
func PositionIDs(dst []int32, mask []bool, n, seen int) []int32 {
	for j := 0; j < n; j++ {
		if mask != nil && !mask[j] {
			dst = append(dst, 1)
			continue
		}
		seen++
		dst = append(dst, int32(seen+1))
	}
	return dst
}
