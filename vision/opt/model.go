package opt

import (
	"fmt"

	"synth/native"
	"synth/vision/nn"
)

// Model is OPTForCausalLM's inference path. Each decoder layer is an nn.Block (pre-LN,
// separate q, k, v projections, attention over the KV cache).
type Model struct {
	Cfg       Config
	Embed     *native.Matrix // embed_tokens [V, P]; also the LM head (tied)
	Positions native.Tensor  // embed_positions [MaxPositions+2, H]
	ProjIn    *nn.Linear     // project_in [H, P], nil when P == H
	ProjOut   *nn.Linear     // project_out [P, H], nil when P == H
	Layers    []*nn.Block
	Norm      *nn.LayerNorm // decoder final_layer_norm, nil with _remove_final_layer_norm
	// KVCache is the element type of the KV caches its sessions allocate: native.F32 (the
	// zero value), or native.F16 for half the cache's memory, keys and values rounded to
	// f16 (see native.KVCache).
	KVCache native.DType
	// Trace, when set, receives transformers' hidden_states: "hidden_states.0" the input
	// of layer 0 (embeddings + positions), "hidden_states.i" the output of layer i-1,
	// "hidden_states.L" the result.
	Trace nn.Tracer
	dev   *native.Device
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
	m := &Model{Cfg: cfg, dev: l.Device()}
	d := l.Sub("model.decoder")
	m.Embed = d.Embedding("embed_tokens.weight", cfg.Vocab, p)
	m.Positions = d.Vector("embed_positions.weight", cfg.MaxPositions+2, h)
	if p != h {
		m.ProjIn = d.Linear("project_in", h, p, false)
		m.ProjOut = d.Linear("project_out", p, h, false)
	}
	names := nn.BlockNames{
		Norm1: "self_attn_layer_norm", Norm2: "final_layer_norm",
		Q: "self_attn.q_proj", K: "self_attn.k_proj", V: "self_attn.v_proj", Out: "self_attn.out_proj",
		FC1: "fc1", FC2: "fc2",
		QKVHasBias: cfg.EnableBias, OutHasBias: cfg.EnableBias, MLPHasBias: cfg.EnableBias,
	}
	if !cfg.LayerNormAffine {
		names.Norm1, names.Norm2 = "", ""
	}
	for i := 0; i < cfg.Layers; i++ {
		m.Layers = append(m.Layers, d.Sub("layers", i).Block(names, h, f, eps, act))
	}
	if !cfg.RemoveFinalLayerNorm {
		name := "final_layer_norm"
		if !cfg.LayerNormAffine {
			name = ""
		}
		m.Norm = d.LayerNorm(name, h, eps)
	}
	// tie_word_embeddings: the LM head is embed_tokens, whatever lm_head.weight holds.
	l.S.Skip("lm_head.weight")
	return m, nil
}

// Device is where the weights live.
func (m *Model) Device() *native.Device { return m.dev }

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
// attends causally to its slot's cache. The result is the final hidden state [N, P]
// (after the final LayerNorm and project_out), in the Ctx's arena.
func (m *Model) Forward(c *native.Ctx, kv *native.KVCache, x native.Tensor, b Batch) native.Tensor {
	cfg := m.Cfg
	if rows, _ := x.Dims2(); rows != len(b.Pos) {
		panic(fmt.Sprintf("opt: Forward: %d rows of embeddings, %d positions", rows, len(b.Pos)))
	}
	h := c.Alloc(len(b.Pos), cfg.Hidden) // [N, H], the residual stream
	if m.ProjIn != nil {
		m.ProjIn.ForwardInto(c, h, x, native.None, native.Tensor{})
	} else {
		c.Copy(h, x)
	}
	mk := c.Mark()
	c.AddInPlace(h, c.GatherRows(m.Positions, b.Pos))
	c.Release(mk)
	attn := native.AttnParams{Heads: cfg.Heads, HeadDim: cfg.HeadDim(), Scale: nn.InvSqrt(cfg.HeadDim()), Causal: true}
	for i, ly := range m.Layers {
		m.Trace.Layer("hidden_states", i, h)
		ly.Forward(c, h, func(q, k, v native.Tensor) native.Tensor {
			c.AppendKV(kv, i, b.Slots, b.Lens, k, v)
			return c.AttentionCached(q, kv, i, b.Slots, b.Lens, attn, b.KeyMask)
		})
	}
	if m.Norm != nil {
		h = m.Norm.Forward(c, h)
	}
	if m.ProjOut != nil {
		h = m.ProjOut.Forward(c, h, native.None, native.Tensor{})
	}
	m.Trace.Layer("hidden_states", len(m.Layers), h)
	return h
}

// Logits is the LM head on final hidden states: [N, P] -> [N, V].
func (m *Model) Logits(c *native.Ctx, h native.Tensor) native.Tensor {
	return c.Linear(h, m.Embed, native.Tensor{}, native.None, native.Tensor{})
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
