package blip2

import (
	"fmt"

	"synth/native"
	"synth/vision/opt"
)

// TeacherForce scores given continuations instead of generating them: for each image it
// runs the queries, the prompt and the image's continuation (e.g. a caption generated
// earlier, by this model or another) through the language model in one pass, as
// generate() would have seen them had it chosen those tokens, and returns per image the
// logits [len(conts[i]) * V] (row-major) whose row j is the next-token distribution that
// predicts conts[i][j]. Comparing two models' rows on the same tokens measures how far
// their next-token distributions drift apart without letting one divergence change
// every later context (quantization benchmarks).
//
// pixels [B, 3, S, S] (on the host or the model's device); prompt as Prompt.IDs (empty:
// BOS alone), the same for every image; len(conts) == B. Continuations may differ in
// length; an empty one gives no rows.
func (m *Model) TeacherForce(c *native.Ctx, pixels native.Tensor, prompt []int32, conts [][]int32) (_ [][]float32, err error) {
	defer native.Recover(&err) // a device out of memory: an error, like Generate's
	cfg := m.Cfg
	b, nq := len(conts), cfg.NumQueryTokens
	if pixels.Rank() != 4 || pixels.Dim(0) != b || pixels.Dim(1) != 3 || pixels.Dim(2) != cfg.Vision.ImageSize || pixels.Dim(3) != cfg.Vision.ImageSize {
		return nil, fmt.Errorf("%w: pixels %v for %d continuations, want [%d, 3, %d, %d]", ErrInput, pixels.Shape(), b, b, cfg.Vision.ImageSize, cfg.Vision.ImageSize)
	}
	if len(prompt) == 0 {
		prompt = []int32{cfg.Text.BOS}
	}
	var ids, keep []int32 // every image's prompt + continuation but its last token; the rows to score
	var pos []int32
	lens, seqLens := make([]int, b), make([]int, b)
	row, longest := 0, 0
	for i, ct := range conts {
		for _, id := range append(prompt[:len(prompt):len(prompt)], ct...) {
			if id < 0 || int(id) >= cfg.Text.Vocab {
				return nil, fmt.Errorf("%w: continuation %d: id %d outside the vocabulary of %d", ErrInput, i, id, cfg.Text.Vocab)
			}
		}
		seq := append(prompt[:len(prompt):len(prompt)], ct[:max(len(ct)-1, 0)]...)
		ids = append(ids, seq...)
		seqLens[i], lens[i] = len(seq), nq+len(seq)
		// the last prompt position predicts ct[0], ct[j-1]'s position predicts ct[j]
		for j := range ct {
			keep = append(keep, int32(row+nq+len(prompt)-1+j))
		}
		pos = opt.PositionIDs(pos, nil, lens[i], 0)
		row += lens[i]
		longest = max(longest, lens[i])
	}
	if len(keep) == 0 {
		return make([][]float32, b), nil
	}

	mk := c.Mark()
	defer c.Release(mk)
	x := m.inputsEmbeds(c, m.Encode(c, c.Import(pixels)), m.LM.EmbedTokens(c, ids), seqLens) // [sum(Q+T_i), E]
	kv := c.Device().NewKVCache(len(m.LM.Layers), b, longest, cfg.Text.Hidden, m.LM.KVCache)
	defer c.FreeKV(kv)
	slots := make([]int, b)
	for i := range slots {
		slots[i] = i
	}
	h := m.LM.Forward(c, kv, x, opt.Batch{Slots: slots, Lens: lens, Pos: pos})
	all := c.ToHost(m.LM.Logits(c, c.GatherRows(h, keep))) // [len(keep), V]
	v := cfg.Text.Vocab
	out := make([][]float32, b)
	at := 0
	for i, ct := range conts {
		out[i] = all[at*v : (at+len(ct))*v : (at+len(ct))*v]
		at += len(ct)
	}
	return out, nil
}
