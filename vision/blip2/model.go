package blip2

import (
	"fmt"

	"synth/native"
	"synth/vision/nn"
	"synth/vision/opt"
	"synth/weights"
)

// Options say how a checkpoint becomes a model.
type Options struct {
	// DType is what Linear weights and the token embeddings (the tied LM head) become;
	// weights stored quantized (GGUF) are used as stored.
	DType native.DType
	// Adapter is an optional PEFT LoRA adapter on any Linear of the three parts.
	Adapter *weights.Adapter
	// LiveLoRA keeps the adapter unmerged instead of folding it into F32 weights at load.
	LiveLoRA bool
	// KVCache is the element type of OPT's KV cache: native.F32 (the zero value) or
	// native.F16 (half the memory; see opt.Model.KVCache).
	KVCache native.DType
}

// Model is Blip2ForConditionalGeneration's inference path.
type Model struct {
	Cfg     Config
	Vision  *Vision
	QFormer *QFormer
	Proj    *nn.Linear // language_projection [E, H]
	LM      *opt.Model // language_model
}

// Load builds the model from an opened checkpoint: a Hugging Face folder or a GGUF from
// synth convert (its config.json comes from src.Config()). Every tensor must be used and
// every adapter module must match a Linear layer.
func Load(src *weights.Source, o Options) (*Model, error) {
	js := src.Config()
	if js == nil {
		return nil, fmt.Errorf("blip2: %s has no config.json (a GGUF needs %s metadata: convert it with synth convert)", src.Path(), weights.ConfigKey)
	}
	cfg, err := Parse(js)
	if err != nil {
		return nil, fmt.Errorf("blip2: %s: %w", src.Path(), err)
	}
	l := nn.NewLoader(weights.NewScope(src), nn.Options{DType: o.DType, Adapter: o.Adapter, LiveLoRA: o.LiveLoRA})
	m := &Model{Cfg: cfg}
	m.Vision = loadVision(l.Sub("vision_model"), cfg.Vision)
	m.QFormer = loadQFormer(l, cfg.QFormer, cfg.NumQueryTokens)
	m.Proj = l.Linear("language_projection", cfg.Text.Hidden, cfg.QFormer.Hidden, true)
	lm, err := opt.Load(l.Sub("language_model"), cfg.Text)
	if err != nil {
		return nil, fmt.Errorf("blip2: %s: %w", src.Path(), err)
	}
	if o.KVCache != native.F32 && o.KVCache != native.F16 {
		return nil, fmt.Errorf("blip2: KV cache of %s: want F32 or F16", o.KVCache)
	}
	lm.KVCache = o.KVCache
	m.LM = lm
	if err := l.Finish(); err != nil {
		return nil, fmt.Errorf("blip2: load %s: %w", src.Path(), err)
	}
	return m, nil
}

// Encode turns images into the soft visual prompt for OPT: pixels [B, 3, S, S] ->
// language_projection(qformer(vision(pixels))) [B*Q, E], outside the arena (in s, or
// allocated when s is nil). It resets the Ctx's arena as it goes: callers must not hold
// arena tensors across it. capture, when set,
// receives every intermediate block by its fixture name (see Vision.Forward,
// QFormer.Forward, plus qformer_last_hidden_state and language_projection).
func (m *Model) Encode(c *native.Ctx, pixels native.Tensor, s *nn.Scratch, capture func(string, native.Tensor)) native.Tensor {
	b := pixels.Dim(0)
	img := m.Vision.Forward(c, pixels, s, capture)
	q := m.QFormer.Forward(c, img, b, s, capture)
	if capture != nil {
		capture("qformer_last_hidden_state", q)
	}
	out := s.Tensor("blip2.prefix", b*m.Cfg.NumQueryTokens, m.Cfg.Text.Hidden)
	m.Proj.ForwardInto(c, out, q, native.None, native.Tensor{})
	c.Reset()
	if capture != nil {
		capture("language_projection", out)
	}
	return out
}

// Forward is Blip2ForConditionalGeneration's forward pass: images pixels [B, 3, S, S]
// with prompts ids [B*Tp] (Tp tokens each) and their attention mask [B*Tp] (true: real
// token; nil: all real) -> logits [B*(Q+Tp), V] for every query and prompt position.
// capture, when set, also receives lm_inputs_embeds and lm_hidden_states.i.
func (m *Model) Forward(c *native.Ctx, pixels native.Tensor, ids []int32, mask []bool, capture func(string, native.Tensor)) native.Tensor {
	b, nq, e := pixels.Dim(0), m.Cfg.NumQueryTokens, m.Cfg.Text.Hidden
	if len(ids)%b != 0 || (mask != nil && len(mask) != len(ids)) {
		panic(fmt.Sprintf("blip2: Forward: %d ids and %d mask values for %d images", len(ids), len(mask), b))
	}
	tp := len(ids) / b
	t := nq + tp
	x := m.inputsEmbeds(c, m.Encode(c, pixels, nil, capture), m.LM.EmbedTokens(c, ids), b, tp)
	if capture != nil {
		capture("lm_inputs_embeds", x)
	}
	kv := native.NewKVCache(len(m.LM.Layers), b, t, e, m.LM.KVCache)
	slots, lens := make([]int, b), make([]int, b)
	var pos []int32
	var keyMask [][]bool
	for i := range b {
		slots[i], lens[i] = i, t
		var row []bool
		if mask != nil {
			row = queryMask(nq, mask[i*tp:(i+1)*tp])
			keyMask = append(keyMask, row)
		}
		pos = opt.PositionIDs(pos, row, t, 0)
	}
	h := m.LM.Forward(c, kv, x, opt.Batch{Slots: slots, Lens: lens, Pos: pos, KeyMask: keyMask}, nil, func(i int, h native.Tensor) {
		if capture != nil {
			capture(fmt.Sprintf("lm_hidden_states.%d", i), h)
		}
	})
	return m.LM.Logits(c, h)
}

// inputsEmbeds interleaves per image its Q projected queries and its prompt embeddings:
// [B*(Q+Tp), E] with image i at rows i*(Q+Tp).
func (m *Model) inputsEmbeds(c *native.Ctx, prefix, prompt native.Tensor, b, tp int) native.Tensor {
	nq, e := m.Cfg.NumQueryTokens, m.Cfg.Text.Hidden
	t := nq + tp
	x := c.Alloc(b*t, e)
	for i := range b {
		x.Rows(i*t, i*t+nq).CopyFrom(prefix.Rows(i*nq, (i+1)*nq))
		if tp > 0 {
			x.Rows(i*t+nq, (i+1)*t).CopyFrom(prompt.Rows(i*tp, (i+1)*tp))
		}
	}
	return x
}

// queryMask is the language model's attention mask for one image: ones for the Q query
// positions, then the prompt's mask.
func queryMask(nq int, prompt []bool) []bool {
	row := make([]bool, nq, nq+len(prompt))
	for j := range row {
		row[j] = true
	}
	return append(row, prompt...)
}
