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

func (p AttnParams) check(op string) {
	if p.Heads < 1 || p.HeadDim < 1 || p.HeadDim > MaxHeadDim {
		panic(fmt.Sprintf("native: %s: %d heads of %d (head dim 1..%d)", op, p.Heads, p.HeadDim, MaxHeadDim))
	}
}

func widthOf(op, name string, t Tensor, w int) int {
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
// cross-attention (Tk != Tq). The cpu kernel is flash-style: it never holds more than a
// block of scores per worker.
//
// Masked keys are excluded; a query that sees no key at all (every key padded) gets the
// uniform average of v over the sequence's Tk keys, which is what HF's finfo.min
// masking gives.
func (c *Ctx) Attention(q, k, v Tensor, batch int, p AttnParams) Tensor {
	c.live("Attention")
	c.onDevice("Attention", q, k, v)
	p.check("Attention")
	qr, _, w, seq, mask := c.attnLayout("Attention", q, k, v, batch, p)
	out := c.Alloc(qr, w)
	c.x.attention(out, q, actOperand(k), actOperand(v), seq, mask, p)
	return out
}

// attnLayout checks q, k and v against p and batch and returns their row counts, the
// width H*D and the per-sequence table and key mask the attention kernels read (in the
// Ctx's reused buffers, valid until the next attention op).
func (c *Ctx) attnLayout(op string, q, k, v Tensor, batch int, p AttnParams) (qr, kr, w int, seq []int64, mask []byte) {
	w = p.Heads * p.HeadDim
	qr = widthOf(op, "q", q, w)
	kr = widthOf(op, "k", k, w)
	if vr := widthOf(op, "v", v, w); vr != kr {
		panic(fmt.Sprintf("native: %s: k has %d rows, v %d", op, kr, vr))
	}
	if batch < 1 || qr%batch != 0 || kr%batch != 0 {
		panic(fmt.Sprintf("native: %s: %d query rows and %d key rows do not split into %d sequences", op, qr, kr, batch))
	}
	if p.KeyMask != nil && len(p.KeyMask) != kr {
		panic(fmt.Sprintf("native: %s: key mask of %d for %d keys", op, len(p.KeyMask), kr))
	}
	tq, tk := qr/batch, kr/batch
	seq = c.seqBuf[:0]
	for b := 0; b < batch; b++ {
		moff := int64(-1)
		if p.KeyMask != nil {
			moff = int64(b * tk)
		}
		seq = append(seq, int64(b*tq), int64(tq), int64(b*tk), int64(tk), int64(p.QPos0), moff)
	}
	c.seqBuf = seq
	mask = c.maskBuf[:0]
	for _, ok := range p.KeyMask {
		mask = append(mask, b2u8(ok))
	}
	c.maskBuf = mask
	return qr, kr, w, seq, mask
}

func b2u8(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// KVCache holds a decoder's keys and values on a device: per layer and slot (a sequence
// being generated), K and V [maxLen, width] in the cache's element type, F32 or F16,
// plus how many positions each holds. Slots have independent lengths, so a batch of
// sequences of different lengths needs no padding.
//
// An F16 cache takes half the memory and memory traffic of an F32 one: appending rounds
// keys and values to f16 (to nearest even) and attention widens them back exactly, so
// attention sees each key and value with a relative error of at most 2^-11.
//
// A forward step appends the new positions' k and v at every layer (Ctx.AppendKV), then
// attends over them (Ctx.AttentionCached). Len is the length of the last layer, so it
// grows once every layer has appended: read it before the step for position ids. The
// lengths are host bookkeeping; the keys and values never leave the device.
//
// On the cpu, memory is taken from the OS when the cache is made but only becomes
// resident as positions are written (fresh zero pages), so a slot costs what its
// sequence holds.
type KVCache struct {
	dev                          *Device
	dt                           DType
	layers, slots, maxLen, width int
	k, v                         [][]float32 // cpu F32: [layer][(slot*maxLen + pos)*width + col]
	k16, v16                     [][]uint16  // cpu F16: the same layout
	g                            []gkv       // ggml devices: per layer
	lens                         [][]int     // [layer][slot]
	dst                          []int64     // AppendKV's destination rows, reused
}

// NewKVCache allocates a cache on dev for layers x slots sequences of up to maxLen
// positions of width (heads*headDim) values each for K and for V, stored as dt: F32,
// or F16 for half the memory.
func (d *Device) NewKVCache(layers, slots, maxLen, width int, dt DType) *KVCache {
	if layers < 1 || slots < 1 || maxLen < 1 || width < 1 || (dt != F32 && dt != F16) {
		panic(fmt.Sprintf("native: NewKVCache(%d, %d, %d, %d, %s): every size must be positive, the type F32 or F16", layers, slots, maxLen, width, dt))
	}
	kv := &KVCache{dev: d, dt: dt, layers: layers, slots: slots, maxLen: maxLen, width: width}
	for l := 0; l < layers; l++ {
		switch {
		case !d.host():
			kv.g = append(kv.g, d.g.newKV(slots*maxLen, width, dt))
		case dt == F16:
			kv.k16 = append(kv.k16, make([]uint16, slots*maxLen*width))
			kv.v16 = append(kv.v16, make([]uint16, slots*maxLen*width))
		default:
			kv.k = append(kv.k, alignedFloats(slots*maxLen*width))
			kv.v = append(kv.v, alignedFloats(slots*maxLen*width))
		}
		kv.lens = append(kv.lens, make([]int, slots))
	}
	return kv
}

// NewKVCache is Device.NewKVCache on the cpu device.
func NewKVCache(layers, slots, maxLen, width int, dt DType) *KVCache {
	return CPU.NewKVCache(layers, slots, maxLen, width, dt)
}

// FreeKV frees kv's device memory once the work c has recorded is done (host memory is
// left to the collector). kv must not be used afterwards.
func (c *Ctx) FreeKV(kv *KVCache) {
	kv.mustOn(c.dev, "FreeKV")
	c.Sync()
	for _, g := range kv.g {
		kv.dev.g.freeKV(g)
	}
	kv.g, kv.k, kv.v, kv.k16, kv.v16 = nil, nil, nil, nil, nil
}

// Device is where the cache lives.
func (kv *KVCache) Device() *Device { return kv.dev }

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

// CopyKVSlot makes slot dst of kv a copy of slot src at every layer (beam search
// reordering), on the device.
func (c *Ctx) CopyKVSlot(kv *KVCache, dst, src int) {
	c.live("CopyKVSlot")
	kv.mustOn(c.dev, "CopyKVSlot")
	kv.checkSlot(dst)
	kv.checkSlot(src)
	if dst == src {
		return
	}
	n := 0
	for l := 0; l < kv.layers; l++ {
		n = max(n, kv.lens[l][src])
	}
	if n > 0 {
		c.x.kvCopy(kv, dst*kv.maxLen, src*kv.maxLen, n)
	}
	for l := 0; l < kv.layers; l++ {
		kv.lens[l][dst] = kv.lens[l][src]
	}
}

func (kv *KVCache) checkSlot(s int) int {
	if s < 0 || s >= kv.slots {
		panic(fmt.Sprintf("native: KVCache: slot %d of %d", s, kv.slots))
	}
	return s
}

func (kv *KVCache) mustOn(dev *Device, op string) {
	if kv.dev != dev {
		panic(fmt.Sprintf("native: %s: KV cache on %s, the Ctx runs on %s", op, kv.dev, dev))
	}
}

// layerF32 and layerF16 are one layer's storage on the cpu (nil otherwise).
func (kv *KVCache) layerF32(s [][]float32, layer int) []float32 {
	if s == nil {
		return nil
	}
	return s[layer]
}

func (kv *KVCache) layerF16(s [][]uint16, layer int) []uint16 {
	if s == nil {
		return nil
	}
	return s[layer]
}

// mat32 and mat16 are one layer's K or V as a kernel operand: every slot's rows.
func (kv *KVCache) mat32(s []float32) kernels.Mat {
	return kernels.Mat{Data: s, Rows: kv.slots * kv.maxLen, Cols: kv.width, LD: kv.width}
}

func (kv *KVCache) mat16(s []uint16) kernels.Mat16 {
	return kernels.Mat16{Data: s, Rows: kv.slots * kv.maxLen, Cols: kv.width, LD: kv.width}
}

// AppendKV adds positions to slots at one layer of kv: for slots[i], lens[i] rows of k
// and v (the rows of all slots stacked in order; lens nil means k's rows split
// evenly). k and v are [sum(lens), width], views allowed.
func (c *Ctx) AppendKV(kv *KVCache, layer int, slots, lens []int, k, v Tensor) {
	c.live("AppendKV")
	c.onDevice("AppendKV", k, v)
	kv.mustOn(c.dev, "AppendKV")
	if layer < 0 || layer >= kv.layers {
		panic(fmt.Sprintf("native: AppendKV: layer %d of %d", layer, kv.layers))
	}
	rows := widthOf("AppendKV", "k", k, kv.width)
	if vr := widthOf("AppendKV", "v", v, kv.width); vr != rows {
		panic(fmt.Sprintf("native: AppendKV: k has %d rows, v %d", rows, vr))
	}
	if lens == nil && (len(slots) == 0 || rows%len(slots) != 0) {
		panic(fmt.Sprintf("native: AppendKV: %d rows do not split over %d slots", rows, len(slots)))
	}
	if lens != nil && len(lens) != len(slots) {
		panic(fmt.Sprintf("native: AppendKV: %d lengths for %d slots", len(lens), len(slots)))
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
			panic(fmt.Sprintf("native: AppendKV: slot %d holds %d of %d positions, cannot add %d (rows %d..%d of %d)", s, at, kv.maxLen, n, r, r+n, rows))
		}
		for j := 0; j < n; j++ {
			kv.dst = append(kv.dst, int64(s*kv.maxLen+at+j)) // the slot's next cache rows
		}
		kv.lens[layer][s] = at + n
		r += n
	}
	if r != rows {
		panic(fmt.Sprintf("native: AppendKV: lengths cover %d of %d rows", r, rows))
	}
	if rows > 0 {
		c.x.kvStore(kv, layer, k, v, kv.dst)
	}
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
	c.live("AttentionCached")
	c.onDevice("AttentionCached", q)
	kv.mustOn(c.dev, "AttentionCached")
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
	c.x.attention(out, q, kvOperand{cache: kv, layer: layer}, kvOperand{cache: kv, layer: layer, which: 1}, seq, mask, p)
	return out
}
