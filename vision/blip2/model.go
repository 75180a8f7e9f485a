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
	// Device is where the model runs (nil: the cpu).
	Device *native.Device
}

// Model is Blip2ForConditionalGeneration's inference path.
type Model struct {
	Cfg     Config
	Vision  *Vision
	QFormer *QFormer
	Proj    *nn.Linear // language_projection [E, H]
	LM      *opt.Model // language_model
	// Linears are every Linear layer by its module name (what PEFT's target_modules
	// match: "qformer.encoder.layer.0.attention.attention.query"), for training adapters.
	Linears map[string]*nn.Linear
	trace   nn.Tracer
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
	l := nn.NewLoader(weights.NewScope(src), nn.Options{DType: o.DType, Adapter: o.Adapter, LiveLoRA: o.LiveLoRA, Device: o.Device})
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
	m.Linears = l.Linears()
	if err := l.Finish(); err != nil {
		return nil, fmt.Errorf("blip2: load %s: %w", src.Path(), err)
	}
	return m, nil
}

// Device is where the weights live.
func (m *Model) Device() *native.Device { return m.LM.Device() }

// SetTrace sends every intermediate block to t by its fixture name (see Vision.Forward,
// QFormer.Forward, plus qformer_last_hidden_state, language_projection,
// lm_inputs_embeds and lm_hidden_states.i); nil turns tracing off.
func (m *Model) SetTrace(t nn.Tracer) {
	m.trace, m.Vision.Trace, m.QFormer.Trace, m.LM.Trace = t, t, t, nil
	if t != nil {
		m.LM.Trace = func(name string, x native.Tensor) { t("lm_"+name, x) }
	}
}

// Encode turns images into the soft visual prompt for OPT: pixels [B, 3, S, S] (on the
// host or the model's device) ->
// language_projection(qformer(vision(pixels))) [B*Q, E], in the Ctx's arena (the
// vision and Q-Former activations are released before it returns).
func (m *Model) Encode(c *native.Ctx, pixels native.Tensor) native.Tensor {
	b := pixels.Dim(0)
	out := c.Alloc(b*m.Cfg.NumQueryTokens, m.Cfg.Text.Hidden)
	mk := c.Mark()
	q := m.QFormer.Forward(c, m.Vision.Forward(c, c.Import(pixels)), b)
	m.trace.At("qformer_last_hidden_state", q)
	m.Proj.ForwardInto(c, out, q, native.None, native.Tensor{})
	c.Release(mk)
	m.trace.At("language_projection", out)
	return out
}

// Forward is Blip2ForConditionalGeneration's forward pass: images pixels [B, 3, S, S]
// with prompts ids [B*Tp] (Tp tokens each) and their attention mask [B*Tp] (true: real
// token; nil: all real) -> logits [B*(Q+Tp), V] for every query and prompt position, in
// the Ctx's arena.
func (m *Model) Forward(c *native.Ctx, pixels native.Tensor, ids []int32, mask []bool) native.Tensor {
	b, nq, e := pixels.Dim(0), m.Cfg.NumQueryTokens, m.Cfg.Text.Hidden
	if len(ids)%b != 0 || (mask != nil && len(mask) != len(ids)) {
		panic(fmt.Sprintf("blip2: Forward: %d ids and %d mask values for %d images", len(ids), len(mask), b))
	}
	tp := len(ids) / b
	t := nq + tp
	lens := make([]int, b)
	for i := range lens {
		lens[i] = tp
	}
	x := m.inputsEmbeds(c, m.Encode(c, pixels), m.LM.EmbedTokens(c, ids), lens)
	m.trace.At("lm_inputs_embeds", x)
	kv := c.Device().NewKVCache(len(m.LM.Layers), b, t, e, m.LM.KVCache)
	defer c.FreeKV(kv)
	slots, qlens := make([]int, b), make([]int, b)
	var pos []int32
	var keyMask [][]bool
	for i := range b {
		slots[i], qlens[i] = i, t
		var row []bool
		if mask != nil {
			row = queryMask(nq, mask[i*tp:(i+1)*tp])
			keyMask = append(keyMask, row)
		}
		pos = opt.PositionIDs(pos, row, t, 0)
	}
	h := m.LM.Forward(c, kv, x, opt.Batch{Slots: slots, Lens: qlens, Pos: pos, KeyMask: keyMask})
	return m.LM.Logits(c, h)
}

// inputsEmbeds is the language model's input: per image its Q projected queries, then
// its prompt's token embeddings. prefix [B*Q, E]; prompts [sum(lens), E], image i's
// lens[i] rows in order. The result is [B*Q + sum(lens), E], image i's rows together.
func (m *Model) inputsEmbeds(c *native.Ctx, prefix, prompts native.Tensor, lens []int) native.Tensor {
	nq, e := m.Cfg.NumQueryTokens, m.Cfg.Text.Hidden
	n := 0
	for _, l := range lens {
		n += nq + l
	}
	x := c.Alloc(n, e)
	row, tok := 0, 0
	for i, l := range lens {
		c.Copy(x.Rows(row, row+nq), prefix.Rows(i*nq, (i+1)*nq))
		c.Copy(x.Rows(row+nq, row+nq+l), prompts.Rows(tok, tok+l))
		row, tok = row+nq+l, tok+l
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

// StoredDType is the dtype src keeps the language model's Linear weights in, as the
// kernels hold it (F32 when it is not one they run, or the tensor is missing): what
// --dtype auto means for BLIP-2.
func StoredDType(src *weights.Source) native.DType {
	t, err := src.Tensor("language_model.model.decoder.layers.0.fc1.weight")
	if err != nil {
		return native.F32
	}
	if dt, err := nn.ParseDType(t.DType.String()); err == nil {
		return dt
	}
	return native.F32
}
