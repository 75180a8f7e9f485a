package longclip

import (
	"fmt"

	"synth/native"
	"synth/vision/nn"
)

// EncodeImage is upstream encode_image: pixels [B, 3, S, S] (contiguous, normalised as
// preprocess.CLIP makes them; on the host or the model's device) -> [B, E], not
// L2-normalised, in the Ctx's arena.
func (m *Model) EncodeImage(c *native.Ctx, pixels native.Tensor) native.Tensor {
	v, cfg := &m.Vision, m.Config.Vision
	s := cfg.Resolution
	if pixels.Rank() != 4 || pixels.Dim(1) != 3 || pixels.Dim(2) != s || pixels.Dim(3) != s {
		panic(fmt.Sprintf("longclip: EncodeImage: pixels %v, want [B, 3, %d, %d]", pixels.Shape(), s, s))
	}
	b, t, w := pixels.Dim(0), cfg.Tokens(), cfg.Width
	g := t - 1
	out := c.Alloc(b, m.Config.EmbedDim) // [B, E]
	if b == 0 {
		return out
	}
	mk := c.Mark()
	defer c.Release(mk)
	x := c.Alloc(b*t, w) // [B*T, Wv], class token first in each image
	{
		m0 := c.Mark()
		patches := c.PatchEmbed(c.Import(pixels), v.Conv1, native.Tensor{}, cfg.PatchSize) // [B*G, Wv]
		m.Trace.At("vision.patch_embeds", patches.Reshape(b, g, w))
		for i := 0; i < b; i++ {
			c.Copy(x.Rows(i*t, i*t+1), v.Class)
			c.Copy(x.Rows(i*t+1, (i+1)*t), patches.Rows(i*g, (i+1)*g))
		}
		c.Release(m0)
	}
	c.AddInPlace(x, v.Pos)
	v.LNPre.Into(c, x, x)
	m.Trace.At("vision.embeddings_ln_pre", x.Reshape(b, t, w))

	h := cfg.Heads
	p := native.AttnParams{Heads: h, HeadDim: w / h, Scale: nn.InvSqrt(w / h)}
	pick := make([]int32, b) // the class token of each image
	for i := range pick {
		pick[i] = int32(i * t)
	}
	pooled := v.LNPost.Forward(c, m.blocks(c, "vision", v.Blocks, x, b, p, pick, nil)) // [B, Wv]
	m.Trace.At("vision.pooled_ln_post", pooled)
	v.Proj.ForwardInto(c, out, pooled, native.None, native.Tensor{})
	return out
}

// EncodeText is upstream encode_text: one row of token ids per text (cliptok.Encode or
// cliptok.Pad output, at most Context ids, each in [0, V)) -> [B, E], not L2-normalised,
// in the Ctx's arena. Row b is pooled at argmax(ids[b]), the first maximum: the
// end-of-text token 49407 is the largest id, so a literal <|endoftext|> inside a text
// ends it there, as upstream. Rows shorter than the context are the same as rows padded
// with zeros.
//
// Only positions up to the last pooled position of the batch are computed: with the
// causal mask, later positions cannot reach a pooled row.
func (m *Model) EncodeText(c *native.Ctx, ids [][]int32) native.Tensor {
	tx, cfg := &m.Text, m.Config.Text
	b, w := len(ids), cfg.Width
	out := c.Alloc(b, m.Config.EmbedDim) // [B, E]
	if b == 0 {
		return out
	}
	pos := make([]int, b) // pooled position of each row
	l := 0                // L: positions computed
	for i, row := range ids {
		if len(row) == 0 || len(row) > cfg.Context {
			panic(fmt.Sprintf("longclip: EncodeText: row %d has %d ids, want 1..%d", i, len(row), cfg.Context))
		}
		for j, id := range row {
			if id < 0 || int(id) >= cfg.Vocab {
				panic(fmt.Sprintf("longclip: EncodeText: row %d position %d: id %d outside the vocabulary of %d", i, j, id, cfg.Vocab))
			}
			if id > row[pos[i]] {
				pos[i] = j
			}
		}
		l = max(l, pos[i]+1)
	}
	flat := make([]int32, b*l) // [B, L], zero-padded like upstream's rows
	for i, row := range ids {
		copy(flat[i*l:(i+1)*l], row)
	}

	mk := c.Mark()
	defer c.Release(mk)
	x := c.Gather(tx.Tokens, flat) // [B*L, Wt]
	c.AddInPlace(x, tx.Pos.Rows(0, l))
	m.Trace.At("text.embeddings", x.Reshape(b, l, w))

	h := cfg.Heads
	p := native.AttnParams{Heads: h, HeadDim: w / h, Scale: nn.InvSqrt(w / h), Causal: true}
	pick := make([]int32, b)
	keys := make([]bool, b*l) // what the pooled query of each row may see: keys <= its position
	for i := range pick {
		pick[i] = int32(i*l + pos[i])
		for j := 0; j <= pos[i]; j++ {
			keys[i*l+j] = true
		}
	}
	pooled := tx.LNFinal.Forward(c, m.blocks(c, "text", tx.Blocks, x, b, p, pick, keys)) // [B, Wt]
	m.Trace.At("text.pooled", pooled)
	tx.Proj.ForwardInto(c, out, pooled, native.None, native.Tensor{})
	return out
}

// blocks runs the residual blocks over x [B*T, W] in place and returns the last block's
// output at the rows pick ([B, W], in the arena). Every block but the last runs on all
// rows; the last computes attention and MLP for the picked rows only (their keys and
// values still come from every row), under keys (one flag per row of x: which keys the
// picked query of that sequence may see; nil = all) instead of the causal mask.
func (m *Model) blocks(c *native.Ctx, tower string, blocks []*nn.Block, x native.Tensor, batch int, p native.AttnParams, pick []int32, keys []bool) native.Tensor {
	rows, w := x.Dims2()
	t := rows / batch
	if len(blocks) == 0 {
		return c.GatherRows(x, pick)
	}
	last := len(blocks) - 1
	attend := nn.SelfAttention(c, batch, p)
	for i, blk := range blocks[:last] {
		blk.Forward(c, x, attend)
		m.Trace.At(fmt.Sprintf("%s.block%d.output", tower, i), x.Reshape(batch, t, w))
	}
	// the last block at the picked rows: keys and values of every row, the query,
	// residual and MLP of the picked ones
	blk := blocks[last]
	r := c.GatherRows(x, pick) // [B, W], the residual of the picked rows
	mk := c.Mark()
	q, k, v := blk.Project(c, blk.Norm1.Forward(c, x))
	pp := p
	pp.Causal, pp.KeyMask = false, keys
	a := c.Attention(c.GatherRows(q, pick), k, v, batch, pp)
	blk.Out.ForwardInto(c, r, a, native.None, r)
	c.Release(mk)
	blk.MLPInto(c, r)
	m.Trace.At(fmt.Sprintf("%s.block%d.pooled", tower, last), r)
	return r
}
