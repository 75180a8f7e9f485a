package native

import (
	"fmt"

	"synth/kernels"
)

// AttnParams describes multi-head attention. Heads are split contiguously: head h is
// columns h*HeadDim .. (h+1)*HeadDim-1 of q, k, v and the output.
type AttnParams struct {
	Heads, HeadDim int
	Scale          float32 // applied to q.k; usually 1/sqrt(HeadDim)
	// Causal: query i (at absolute position QPos0+i) sees keys j <= QPos0+i.
	Causal bool
	QPos0  int
	// KeyMask, optional, [B*Tk]: false marks a padded key (HF attention_mask 0).
	KeyMask []bool
}

// MaxHeadDim is the largest HeadDim the attention kernels take.
const MaxHeadDim = kernels.MaxHeadDim

type attnJob struct {
	set        *kernels.Set
	q, k, v, o kernels.Mat
	k16, v16   kernels.Mat16 // f16 keys and values (an f16 cache) instead of k and v
	f16        bool
	seq        []int64
	mask       []byte
	h, d       int
	scale      float32
	causal     bool
}

func (j *attnJob) run(ith, nth int, sc []float32) error {
	if j.f16 {
		return j.set.AttentionF16(j.q, j.k16, j.v16, j.o, j.seq, j.mask, j.h, j.d, j.scale, j.causal, ith, nth, sc)
	}
	return j.set.Attention(j.q, j.k, j.v, j.o, j.seq, j.mask, j.h, j.d, j.scale, j.causal, ith, nth, sc)
}

func (p AttnParams) check(op string) {
	if p.Heads < 1 || p.HeadDim < 1 || p.HeadDim > MaxHeadDim {
		panic(fmt.Sprintf("native: %s: %d heads of %d (head dim 1..%d)", op, p.Heads, p.HeadDim, MaxHeadDim))
	}
}

func widthOf(op, name string, t Tensor, w int) int {
	t.mustCPU(op)
	rows, cols := t.Dims2()
	if cols != w {
		panic(fmt.Sprintf("native: %s: %s %v has %d columns, heads need %d", op, name, t.Shape(), cols, w))
	}
	return rows
}

// Attention is softmax(Scale q k^T + masks) v for each of batch sequences and each head:
// q [B*Tq, H*D], k and v [B*Tk, H*D] (column views of a packed projection allowed),
// sequence b being rows b*Tq.. of q and b*Tk.. of k and v. The result is [B*Tq, H*D].
// Covers encoder self-attention, causal text attention with padding, and
// cross-attention (Tk != Tq). The kernel is flash-style: it never holds more than a
// block of scores per worker.
//
// Masked keys are excluded; a query that sees no key at all (every key padded) gets the
// uniform average of v over the sequence's Tk keys, which is what HF's finfo.min
// masking gives.
func (c *Ctx) Attention(q, k, v Tensor, batch int, p AttnParams) Tensor {
	p.check("Attention")
	w := p.Heads * p.HeadDim
	qr := widthOf("Attention", "q", q, w)
	kr := widthOf("Attention", "k", k, w)
	if vr := widthOf("Attention", "v", v, w); vr != kr {
		panic(fmt.Sprintf("native: Attention: k has %d rows, v %d", kr, vr))
	}
	if batch < 1 || qr%batch != 0 || kr%batch != 0 {
		panic(fmt.Sprintf("native: Attention: %d query rows and %d key rows do not split into %d sequences", qr, kr, batch))
	}
	if p.KeyMask != nil && len(p.KeyMask) != kr {
		panic(fmt.Sprintf("native: Attention: key mask of %d for %d keys", len(p.KeyMask), kr))
	}
	tq, tk := qr/batch, kr/batch
	seq := c.seqBuf[:0]
	for b := 0; b < batch; b++ {
		moff := int64(-1)
		if p.KeyMask != nil {
			moff = int64(b * tk)
		}
		seq = append(seq, int64(b*tq), int64(tq), int64(b*tk), int64(tk), int64(p.QPos0), moff)
	}
	c.seqBuf = seq
	mask := c.maskBuf[:0]
	for _, ok := range p.KeyMask {
		mask = append(mask, b2u8(ok))
	}
	c.maskBuf = mask
	out := c.Alloc(qr, w)
	c.attend(q.mat(), k.mat(), v.mat(), out.mat(), seq, mask, p)
	return out
}

func b2u8(b bool) byte {
	if b {
		return 1
	}
	return 0
}

func (c *Ctx) attend(q, k, v, o kernels.Mat, seq []int64, mask []byte, p AttnParams) {
	c.attn = attnJob{set: c.set, q: q, k: k, v: v, o: o, seq: seq, mask: mask, h: p.Heads, d: p.HeadDim, scale: p.Scale, causal: p.Causal}
	c.run(&c.attn)
	c.attn = attnJob{}
}

// KVCache holds a decoder's keys and values: per layer and slot (a sequence being
// generated), K and V [maxLen, width] in the cache's element type, F32 or F16, plus how
// many positions each holds. Slots have independent lengths, so a batch of sequences of
// different lengths needs no padding.
//
// An F16 cache takes half the memory and memory traffic of an F32 one: Append rounds
// keys and values to f16 (to nearest even) and AttentionCached widens them back exactly,
// so attention sees each key and value with a relative error of at most 2^-11.
//
// A forward step appends the new positions' k and v at every layer (Append), then
// attends over them (AttentionCached). Len is the length of the last layer, so it grows
// once every layer has appended: read it before the step for position ids.
//
// Memory is taken from the OS when the cache is made but only becomes resident as
// positions are written (fresh zero pages), so a slot costs what its sequence holds.
type KVCache struct {
	dt                           DType
	layers, slots, maxLen, width int
	k, v                         [][]float32 // F32: [layer][slot*maxLen*width + pos*width + col]
	k16, v16                     [][]uint16  // F16: the same layout
	lens                         [][]int     // [layer][slot]
	dst                          []int64     // Append's destination rows (F16), reused
}

// NewKVCache allocates a cache for layers x slots sequences of up to maxLen positions of
// width (heads*headDim) values each for K and for V, stored as dt: F32, or F16 for half
// the memory.
func NewKVCache(layers, slots, maxLen, width int, dt DType) *KVCache {
	if layers < 1 || slots < 1 || maxLen < 1 || width < 1 || (dt != F32 && dt != F16) {
		panic(fmt.Sprintf("native: NewKVCache(%d, %d, %d, %d, %s): every size must be positive, the type F32 or F16", layers, slots, maxLen, width, dt))
	}
	kv := &KVCache{dt: dt, layers: layers, slots: slots, maxLen: maxLen, width: width}
	for l := 0; l < layers; l++ {
		if dt == F16 {
			kv.k16 = append(kv.k16, make([]uint16, slots*maxLen*width))
			kv.v16 = append(kv.v16, make([]uint16, slots*maxLen*width))
		} else {
			kv.k = append(kv.k, alignedFloats(slots*maxLen*width))
			kv.v = append(kv.v, alignedFloats(slots*maxLen*width))
		}
		kv.lens = append(kv.lens, make([]int, slots))
	}
	return kv
}

// DType is the element type keys and values are stored in (F32 or F16).
func (kv *KVCache) DType() DType { return kv.dt }

// MaxLen is the number of positions a slot can hold.
func (kv *KVCache) MaxLen() int { return kv.maxLen }

// Slots is the number of slots.
func (kv *KVCache) Slots() int { return kv.slots }

// Len is the number of positions slot holds (at its last layer).
func (kv *KVCache) Len(slot int) int { return kv.lens[kv.layers-1][kv.checkSlot(slot)] }

// SetLen sets the length of slot at every layer to n (truncation, or 0 to reuse the
// slot); positions past the old length hold stale values until appended.
func (kv *KVCache) SetLen(slot, n int) {
	kv.checkSlot(slot)
	if n < 0 || n > kv.maxLen {
		panic(fmt.Sprintf("native: KVCache.SetLen(%d, %d): length outside 0..%d", slot, n, kv.maxLen))
	}
	for l := range kv.lens {
		kv.lens[l][slot] = n
	}
}

// CopySlot makes slot dst a copy of slot src at every layer (beam search reordering).
func (kv *KVCache) CopySlot(dst, src int) {
	kv.checkSlot(dst)
	kv.checkSlot(src)
	if dst == src {
		return
	}
	for l := 0; l < kv.layers; l++ {
		n, d, s := kv.lens[l][src]*kv.width, dst*kv.maxLen*kv.width, src*kv.maxLen*kv.width
		if kv.dt == F16 {
			copy(kv.k16[l][d:][:n], kv.k16[l][s:][:n])
			copy(kv.v16[l][d:][:n], kv.v16[l][s:][:n])
		} else {
			copy(kv.k[l][d:][:n], kv.k[l][s:][:n])
			copy(kv.v[l][d:][:n], kv.v[l][s:][:n])
		}
		kv.lens[l][dst] = kv.lens[l][src]
	}
}

func (kv *KVCache) checkSlot(s int) int {
	if s < 0 || s >= kv.slots {
		panic(fmt.Sprintf("native: KVCache: slot %d of %d", s, kv.slots))
	}
	return s
}

// Append adds positions to slots at one layer: for slots[i], lens[i] rows of k and v
// (the rows of all slots stacked in order; lens nil means k's rows split evenly). k and
// v are [sum(lens), width], views allowed.
func (kv *KVCache) Append(layer int, slots, lens []int, k, v Tensor) {
	if layer < 0 || layer >= kv.layers {
		panic(fmt.Sprintf("native: KVCache.Append: layer %d of %d", layer, kv.layers))
	}
	rows := widthOf("KVCache.Append", "k", k, kv.width)
	if vr := widthOf("KVCache.Append", "v", v, kv.width); vr != rows {
		panic(fmt.Sprintf("native: KVCache.Append: k has %d rows, v %d", rows, vr))
	}
	if lens == nil && (len(slots) == 0 || rows%len(slots) != 0) {
		panic(fmt.Sprintf("native: KVCache.Append: %d rows do not split over %d slots", rows, len(slots)))
	}
	if lens != nil && len(lens) != len(slots) {
		panic(fmt.Sprintf("native: KVCache.Append: %d lengths for %d slots", len(lens), len(slots)))
	}
	r := 0
	kv.dst = kv.dst[:0]
	for i, s := range slots {
		n := rows / max(len(slots), 1)
		if lens != nil {
			n = lens[i]
		}
		kv.checkSlot(s)
		at := kv.lens[layer][s]
		if n < 0 || at+n > kv.maxLen || r+n > rows {
			panic(fmt.Sprintf("native: KVCache.Append: slot %d holds %d of %d positions, cannot add %d (rows %d..%d of %d)", s, at, kv.maxLen, n, r, r+n, rows))
		}
		base := s*kv.maxLen + at // the slot's next cache row
		for j := 0; j < n; j++ {
			if kv.dt == F16 {
				kv.dst = append(kv.dst, int64(base+j))
				continue
			}
			copy(kv.k[layer][(base+j)*kv.width:][:kv.width], k.Row(r+j))
			copy(kv.v[layer][(base+j)*kv.width:][:kv.width], v.Row(r+j))
		}
		kv.lens[layer][s] = at + n
		r += n
	}
	if r != rows {
		panic(fmt.Sprintf("native: KVCache.Append: lengths cover %d of %d rows", r, rows))
	}
	if kv.dt == F16 && rows > 0 {
		// one conversion call for all rows of k, one for v, on the caller's goroutine
		for _, kv16 := range []struct {
			src Tensor
			dst []uint16
		}{{k, kv.k16[layer]}, {v, kv.v16[layer]}} {
			if err := hostSet.StoreRowsF16(kv16.src.mat(), kv.dst, kv.mat16(kv16.dst), 0, 1); err != nil {
				panic(fmt.Sprintf("native: KVCache.Append: %v", err)) // rows were checked above
			}
		}
	}
}

// mat16 is one layer's K or V of an F16 cache as a kernel operand: every slot's rows.
func (kv *KVCache) mat16(s []uint16) kernels.Mat16 {
	return kernels.Mat16{Data: s, Rows: kv.slots * kv.maxLen, Cols: kv.width, LD: kv.width}
}

// AttentionCached is decoder attention over the cache at one layer for a batch of
// slots: q [sum(qLens), H*D] holds qLens[i] query rows for slots[i], which attend to all
// positions of that slot at this layer, the new ones (appended already) included. The
// queries are the last qLens[i] positions, so query j of slots[i] is at position
// Len - qLens[i] + j, and p.Causal masks later keys (p.QPos0 and p.KeyMask are not used
// here). keyMask, optional, gives per entry i a []bool over the slot's positions (false
// = padded); nil or a nil entry means every position is valid. Fully masked queries get
// the uniform average, as in Attention. The result is [sum(qLens), H*D].
func (c *Ctx) AttentionCached(q Tensor, kv *KVCache, layer int, slots []int, qLens []int, p AttnParams, keyMask [][]bool) Tensor {
	p.check("AttentionCached")
	w := p.Heads * p.HeadDim
	if w != kv.width {
		panic(fmt.Sprintf("native: AttentionCached: %d heads of %d for a cache of width %d", p.Heads, p.HeadDim, kv.width))
	}
	if layer < 0 || layer >= kv.layers || len(qLens) != len(slots) || (keyMask != nil && len(keyMask) != len(slots)) {
		panic(fmt.Sprintf("native: AttentionCached: layer %d of %d, %d slots, %d query lengths, %d masks", layer, kv.layers, len(slots), len(qLens), len(keyMask)))
	}
	qr := widthOf("AttentionCached", "q", q, w)
	seq := c.seqBuf[:0]
	mask := c.maskBuf[:0]
	row := 0
	for i, s := range slots {
		nk := kv.lens[layer][kv.checkSlot(s)]
		nq := qLens[i]
		if nq < 0 || nq > nk || row+nq > qr {
			panic(fmt.Sprintf("native: AttentionCached: slot %d: %d queries over %d cached positions (rows %d of %d)", s, nq, nk, row+nq, qr))
		}
		moff := int64(-1)
		if keyMask != nil && keyMask[i] != nil {
			if len(keyMask[i]) < nk {
				panic(fmt.Sprintf("native: AttentionCached: mask of %d for slot %d with %d positions", len(keyMask[i]), s, nk))
			}
			moff = int64(len(mask))
			for _, ok := range keyMask[i][:nk] {
				mask = append(mask, b2u8(ok))
			}
		}
		seq = append(seq, int64(row), int64(nq), int64(s*kv.maxLen), int64(nk), int64(nk-nq), moff)
		row += nq
	}
	if row != qr {
		panic(fmt.Sprintf("native: AttentionCached: query lengths cover %d of %d rows", row, qr))
	}
	c.seqBuf, c.maskBuf = seq, mask
	out := c.Alloc(qr, w)
	if kv.dt == F16 {
		c.attn = attnJob{set: c.set, q: q.mat(), k16: kv.mat16(kv.k16[layer]), v16: kv.mat16(kv.v16[layer]), f16: true, o: out.mat(),
			seq: seq, mask: mask, h: p.Heads, d: p.HeadDim, scale: p.Scale, causal: p.Causal}
		c.run(&c.attn)
		c.attn = attnJob{}
		return out
	}
	cache := func(s []float32) kernels.Mat {
		return kernels.Mat{Data: s, Rows: kv.slots * kv.maxLen, Cols: w, LD: w}
	}
	c.attend(q.mat(), cache(kv.k[layer]), cache(kv.v[layer]), out.mat(), seq, mask, p)
	return out
}
