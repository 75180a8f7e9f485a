package longclip

import (
	"fmt"

	"synth/native"
	"synth/vision/nn"
)

// EncodeImage is upstream encode_image: pixels [B, 3, S, S] (contiguous, normalised as
// preprocess.CLIP makes them) -> [B, E], not L2-normalised.
//
// Memory: the residual stream lives on the heap and c's arena holds one block at a time,
// so EncodeImage calls c.Reset() between blocks and at the end. Tensors the caller
// allocated from c are invalid after the call (pixels are read before the first Reset).
// The result is a heap tensor.
func (m *Model) EncodeImage(c *native.Ctx, pixels native.Tensor) native.Tensor {
	v, cfg := &m.Vision, m.Config.Vision
	s := cfg.Resolution
	if pixels.Rank() != 4 || pixels.Dim(1) != 3 || pixels.Dim(2) != s || pixels.Dim(3) != s {
		panic(fmt.Sprintf("longclip: EncodeImage: pixels %v, want [B, 3, %d, %d]", pixels.Shape(), s, s))
	}
	b, t, w := pixels.Dim(0), cfg.Tokens(), cfg.Width
	g := t - 1
	if b == 0 {
		return native.NewTensor(0, m.Config.EmbedDim)
	}

	patches := c.PatchEmbed(pixels, v.Conv1, nil, cfg.PatchSize) // [B*G, Wv]
	m.trace("vision.patch_embeds", patches.Reshape(b, g, w))
	x := native.NewTensor(b*t, w) // [B*T, Wv], class token first in each image
	for i := 0; i < b; i++ {
		x.Rows(i*t, i*t+1).CopyFrom(v.Class)
		x.Rows(i*t+1, (i+1)*t).CopyFrom(patches.Rows(i*g, (i+1)*g))
	}
	c.AddInPlace(x, v.Pos)
	c.LayerNormInto(x, x, v.LNPre.W, v.LNPre.B, v.LNPre.Eps)
	m.trace("vision.embeddings_ln_pre", x.Reshape(b, t, w))
	c.Reset()

	h := cfg.Heads
	p := native.AttnParams{Heads: h, HeadDim: w / h, Scale: nn.InvSqrt(w / h)}
	pick := make([]int32, b) // the class token of each image
	for i := range pick {
		pick[i] = int32(i * t)
	}
	pooled := m.blocks(c, "vision", v.Blocks, x, b, p, pick, nil) // [B, Wv]
	pooled = v.LNPost.Forward(c, pooled)
	m.trace("vision.pooled_ln_post", pooled)
	out := v.Proj.Forward(c, pooled, native.None, native.Tensor{}).Clone() // [B, E]
	c.Reset()
	return out
}

// EncodeText is upstream encode_text: one row of token ids per text (cliptok.Encode or
// cliptok.Pad output, at most Context ids, each in [0, V)) -> [B, E], not L2-normalised.
// Row b is pooled at argmax(ids[b]), the first maximum: the end-of-text token 49407 is
// the largest id, so a literal <|endoftext|> inside a text ends it there, as upstream.
// Rows shorter than the context are the same as rows padded with zeros.
//
// Only positions up to the last pooled position of the batch are computed: with the
// causal mask, later positions cannot reach a pooled row. Memory is handled as in
// EncodeImage (c is Reset between blocks; the result is a heap tensor).
func (m *Model) EncodeText(c *native.Ctx, ids [][]int32) native.Tensor {
	tx, cfg := &m.Text, m.Config.Text
	b, w := len(ids), cfg.Width
	if b == 0 {
		return native.NewTensor(0, m.Config.EmbedDim)
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

	x := native.NewTensor(b*l, w) // [B*L, Wt]
	x.CopyFrom(c.Gather(tx.Tokens, flat))
	c.AddInPlace(x, tx.Pos.Rows(0, l))
	m.trace("text.embeddings", x.Reshape(b, l, w))
	c.Reset()

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
	pooled := m.blocks(c, "text", tx.Blocks, x, b, p, pick, keys) // [B, Wt]
	pooled = tx.LNFinal.Forward(c, pooled)
	m.trace("text.pooled", pooled)
	out := tx.Proj.Forward(c, pooled, native.None, native.Tensor{}).Clone() // [B, E]
	c.Reset()
	return out
}

// blocks runs the residual blocks over x [B*T, W] in place and returns the last block's
// output at the rows pick ([B, W], from c's arena). Every block but the last runs on all
// rows; the last computes attention and MLP for the picked rows only (their keys and
// values still come from every row), under keys (one flag per row of x: which keys the
// picked query of that sequence may see; nil = all) instead of the causal mask.
func (m *Model) blocks(c *native.Ctx, tower string, blocks []Block, x native.Tensor, batch int, p native.AttnParams, pick []int32, keys []bool) native.Tensor {
	rows, w := x.Dims2()
	t := rows / batch
	if len(blocks) == 0 {
		return c.GatherRows(x, pick)
	}
	last := len(blocks) - 1
	for i := range blocks[:last] {
		blocks[i].forward(c, x, batch, p)
		m.trace(fmt.Sprintf("%s.block%d.output", tower, i), x.Reshape(batch, t, w))
		c.Reset()
	}
	pp := p
	pp.Causal, pp.KeyMask = false, keys
	out := blocks[last].forwardRows(c, x, batch, pp, pick)
	m.trace(fmt.Sprintf("%s.block%d.pooled", tower, last), out)
	return out
}

// forward is one block on every row: x [B*T, W] is updated in place.
func (blk *Block) forward(c *native.Ctx, x native.Tensor, batch int, p native.AttnParams) {
	_, w := x.Dims2()
	h := blk.LN1.Forward(c, x)
	qkv := blk.QKV.Forward(c, h, native.None, native.Tensor{}) // [B*T, 3W]
	a := c.Attention(qkv.Cols(0, w), qkv.Cols(w, w), qkv.Cols(2*w, w), batch, p)
	blk.Out.ForwardInto(c, x, a, native.None, x) // x += out_proj(attn)
	h = blk.LN2.Forward(c, x)
	f := blk.FC.Forward(c, h, native.QuickGELU, native.Tensor{}) // [B*T, 4W]
	blk.Proj.ForwardInto(c, x, f, native.None, x)                // x += c_proj(f)
}

// forwardRows is the block's output at the rows pick only (one per sequence): keys and
// values are computed for every row of x [B*T, W], the query, residual and MLP for the
// picked rows. Returns [B, W] from c's arena; x is not changed.
func (blk *Block) forwardRows(c *native.Ctx, x native.Tensor, batch int, p native.AttnParams, pick []int32) native.Tensor {
	_, w := x.Dims2()
	h := blk.LN1.Forward(c, x)
	qkv := blk.QKV.Forward(c, h, native.None, native.Tensor{}) // [B*T, 3W]
	q := c.GatherRows(qkv, pick).Cols(0, w)                    // [B, W]
	a := c.Attention(q, qkv.Cols(w, w), qkv.Cols(2*w, w), batch, p)
	r := c.GatherRows(x, pick) // [B, W]
	blk.Out.ForwardInto(c, r, a, native.None, r)
	h = blk.LN2.Forward(c, r)
	f := blk.FC.Forward(c, h, native.QuickGELU, native.Tensor{})
	blk.Proj.ForwardInto(c, r, f, native.None, r)
	return r
}

func (m *Model) trace(name string, x native.Tensor) {
	if m.Trace != nil {
		m.Trace(name, x)
	}
}
