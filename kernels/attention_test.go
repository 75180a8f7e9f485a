package kernels

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// attnCase is one attention call: sequences over q/k/v rows, heads h of size d.
type attnCase struct {
	what    string
	q, k, v input
	qRows   int
	seq     []int64
	mask    []byte
	h, d    int
	scale   float32
	causal  bool
}

// uniformSeqs is b sequences of tq queries onto tk keys each (Attention's layout).
func uniformSeqs(b, tq, tk, qpos0 int, masked bool) []int64 {
	var seq []int64
	for i := 0; i < b; i++ {
		moff := int64(-1)
		if masked {
			moff = int64(i * tk)
		}
		seq = append(seq, int64(i*tq), int64(tq), int64(i*tk), int64(tk), int64(qpos0), moff)
	}
	return seq
}

// qkvViews makes q, k, v column views of one packed [rows, 3*h*d+pad] projection, the
// way a fused qkv Linear leaves them.
func qkvViews(r *rand.Rand, rows, h, d int, scale float32) (q, k, v input) {
	w := h * d
	ld := 3*w + 5
	all := randMat(r, rows, ld, ld, scale)
	view := func(off int) input {
		m := Mat{Data: all.m.Data[off:], Rows: rows, Cols: w, LD: ld}
		return input{m: m, orig: all.orig[off:]}
	}
	return view(0), view(w), view(2 * w)
}

func attnCases(r *rand.Rand) []attnCase {
	var cs []attnCase
	add := func(c attnCase) { cs = append(cs, c) }
	// ViT encoder self-attention: 257 tokens, 16 heads of 64, packed qkv views.
	q, k, v := qkvViews(r, 257, 16, 64, 1)
	add(attnCase{what: "vit", q: q, k: k, v: v, qRows: 257, seq: uniformSeqs(1, 257, 257, 0, false), h: 16, d: 64, scale: 0.125})
	// EVA head dim 88 (not a multiple of any vector width), two images.
	q, k, v = qkvViews(r, 2*40, 2, 88, 1)
	add(attnCase{what: "eva-d88", q: q, k: k, v: v, qRows: 80, seq: uniformSeqs(2, 40, 40, 0, false), h: 2, d: 88, scale: float32(1 / math.Sqrt(88))})
	// causal text self-attention, 248 tokens, 12 heads, with padded keys in the second
	// sequence (and so fully masked queries before its first valid key).
	q, k, v = qkvViews(r, 2*248, 12, 64, 1)
	mask := make([]byte, 2*248)
	for i := range mask {
		mask[i] = 1
	}
	for j := 0; j < 9; j++ {
		mask[248+j] = 0 // left padding of sequence 1
	}
	for j := 200; j < 248; j++ {
		mask[248+j] = 0
	}
	add(attnCase{what: "text-causal", q: q, k: k, v: v, qRows: 496, seq: uniformSeqs(2, 248, 248, 0, true), mask: mask, h: 12, d: 64, scale: 0.125, causal: true})
	// Q-Former cross-attention: 32 queries onto 257 image tokens, k/v views of one [Tk, 2w].
	qq := randMat(r, 2*32, 12*64, 12*64, 1)
	kv := randMat(r, 2*257, 2*12*64, 2*12*64, 1)
	kk := input{m: Mat{Data: kv.m.Data, Rows: 514, Cols: 768, LD: 1536}, orig: kv.orig}
	vv := input{m: Mat{Data: kv.m.Data[768:], Rows: 514, Cols: 768, LD: 1536}, orig: kv.orig[768:]}
	add(attnCase{what: "cross", q: qq, k: kk, v: vv, qRows: 64, seq: uniformSeqs(2, 32, 257, 0, false), h: 12, d: 64, scale: 0.125})
	// decoder over a KV cache: sequences of different lengths in one slab, queries at the
	// end of each (qpos0 = nk - nq), one sequence with padded keys. OPT's head dim 80;
	// then more heads than one decoding unit takes (HG, 8), not a multiple of it, and
	// sequences longer than a block of keys (BK, 64).
	add(decodeCase(r, "decode-cache", 4, 80, [][2]int{{5, 1}, {17, 1}, {33, 3}, {1, 1}, {40, 7}}, 2, []int{4, 30}))
	add(decodeCase(r, "decode-cache-heads", 19, 24, [][2]int{{70, 1}, {130, 2}, {1, 1}, {65, 4}}, 1, []int{0, 63, 64, 100}))
	// odd sizes: 1, 7, 17, 33 queries and keys, head dims 1, 7, 17, 33.
	for _, n := range []int{1, 7, 17, 33} {
		for _, d := range []int{1, 7, 17, 33} {
			tq, tk := n, 40-n
			qq := randMat(r, 2*tq, 3*d, 3*d+1, 1)
			kk := randMat(r, 2*tk, 3*d, 3*d, 1)
			vv := randMat(r, 2*tk, 3*d, 3*d+2, 1)
			add(attnCase{what: name("odd", n, "d", d), q: qq, k: kk, v: vv, qRows: 2 * tq, seq: uniformSeqs(2, tq, tk, tk-tq, false), h: 3, d: d, scale: 0.3, causal: n%2 == 1})
		}
	}
	// every key padded: the uniform mean of v.
	qq = randMat(r, 3, 2*16, 2*16, 1)
	kk = randMat(r, 5, 2*16, 2*16, 1)
	vv = randMat(r, 5, 2*16, 2*16, 1)
	add(attnCase{what: "all-masked", q: qq, k: kk, v: vv, qRows: 3, seq: uniformSeqs(1, 3, 5, 0, true), mask: make([]byte, 5), h: 2, d: 16, scale: 1})
	return cs
}

// attnScale is each output's error scale: max |v| over the head's keys times (1 + the
// largest |score| terms, scale * sum_d |q_d k_d|). The output is a convex combination of
// v rows, and an error e in a score moves it by about e * max |v|.
func attnScale(c attnCase) []float32 {
	w := c.h * c.d
	out := make([]float32, c.qRows*w)
	for s := 0; s < len(c.seq)/SeqFields; s++ {
		sq := c.seq[s*SeqFields:]
		qr0, nq, kr0, nk := int(sq[0]), int(sq[1]), int(sq[2]), int(sq[3])
		for hd := 0; hd < c.h; hd++ {
			vmax, smax := 0.0, 0.0
			for j := kr0; j < kr0+nk; j++ {
				for e := 0; e < c.d; e++ {
					vmax = math.Max(vmax, math.Abs(float64(c.v.m.Data[j*c.v.m.LD+hd*c.d+e])))
				}
				for i := qr0; i < qr0+nq; i++ {
					sum := 0.0
					for e := 0; e < c.d; e++ {
						sum += math.Abs(float64(c.q.m.Data[i*c.q.m.LD+hd*c.d+e]) * float64(c.k.m.Data[j*c.k.m.LD+hd*c.d+e]))
					}
					smax = math.Max(smax, sum*float64(c.scale))
				}
			}
			for i := qr0; i < qr0+nq; i++ {
				for e := 0; e < c.d; e++ {
					out[i*w+hd*c.d+e] = float32(vmax*(1+smax)) + 1e-30
				}
			}
		}
	}
	return out
}

// TestAttentionParity: every variant against the two-pass double reference. Tolerance
// 1e-5 of attnScale: scores are f32 dot products of <= 88 terms (error well below 1e-6
// of their scale), the online softmax rescales in f32, and exp is within a few ulp.
func TestAttentionParity(t *testing.T) {
	r := newRand(t)
	ref := refSet(t)
	for _, c := range attnCases(r) {
		w := c.h * c.d
		want := newGuarded(c.qRows, w, w)
		if err := ref.Attention(c.q.m, c.k.m, c.v.m, want.mat(), c.seq, c.mask, c.h, c.d, c.scale, c.causal, 0, 1, alignedFloats(ScratchFloats)); err != nil {
			t.Fatalf("%s ref: %v", c.what, err)
		}
		scale := attnScale(c)
		for _, s := range variants(t) {
			for _, nth := range threadCounts {
				what := c.what + "/" + name("isa", s.ISA(), "nth", nth)
				o := newGuarded(c.qRows, w, w+7)
				if err := runShares(nth, func(ith int, sc []float32) error {
					return s.Attention(c.q.m, c.k.m, c.v.m, o.mat(), c.seq, c.mask, c.h, c.d, c.scale, c.causal, ith, nth, sc)
				}); err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				o.checkGuards(t, what)
				compare(t, what, o.dense(), want.dense(), scale, w, 1e-5)
				c.q.checkUnmodified(t, what+" q")
				c.k.checkUnmodified(t, what+" k")
				c.v.checkUnmodified(t, what+" v")
			}
		}
	}
}

// TestAttentionRefOracle checks the reference against the textbook formula in Go,
// including causal masks, padded keys and the fully masked (uniform) case.
func TestAttentionRefOracle(t *testing.T) {
	r := newRand(t)
	for _, c := range attnCases(r) {
		if c.qRows*c.h > 2000 {
			continue // the big shapes cost seconds in this oracle and add nothing
		}
		w := c.h * c.d
		o := make([]float32, c.qRows*w)
		if err := refSet(t).Attention(c.q.m, c.k.m, c.v.m, Mat{Data: o, Rows: c.qRows, Cols: w, LD: w}, c.seq, c.mask, c.h, c.d, c.scale, c.causal, 0, 1, alignedFloats(ScratchFloats)); err != nil {
			t.Fatal(err)
		}
		for s := 0; s < len(c.seq)/SeqFields; s++ {
			sq := c.seq[s*SeqFields:]
			qr0, nq, kr0, nk, qpos0, moff := int(sq[0]), int(sq[1]), int(sq[2]), int(sq[3]), int(sq[4]), int(sq[5])
			for i := 0; i < nq; i++ {
				for hd := 0; hd < c.h; hd++ {
					scores := make([]float64, nk)
					valid := make([]bool, nk)
					anyValid := false
					for j := 0; j < nk; j++ {
						valid[j] = !(c.causal && j > qpos0+i) && !(c.mask != nil && moff >= 0 && c.mask[moff+j] == 0)
						anyValid = anyValid || valid[j]
						for e := 0; e < c.d; e++ {
							scores[j] += float64(c.q.m.Data[(qr0+i)*c.q.m.LD+hd*c.d+e]) * float64(c.k.m.Data[(kr0+j)*c.k.m.LD+hd*c.d+e])
						}
						scores[j] *= float64(c.scale)
					}
					mx := math.Inf(-1)
					for j := range scores {
						if valid[j] || !anyValid {
							mx = math.Max(mx, scores[j])
						}
					}
					sum := 0.0
					p := make([]float64, nk)
					for j := range scores {
						switch {
						case !anyValid:
							p[j] = 1
						case valid[j]:
							p[j] = math.Exp(scores[j] - mx)
						}
						sum += p[j]
					}
					for e := 0; e < c.d; e++ {
						want := 0.0
						for j := 0; j < nk; j++ {
							want += p[j] / sum * float64(c.v.m.Data[(kr0+j)*c.v.m.LD+hd*c.d+e])
						}
						got := o[(qr0+i)*w+hd*c.d+e]
						if math.Abs(float64(got)-want) > 1e-6*(1+math.Abs(want)) {
							t.Fatalf("%s: seq %d query %d head %d [%d] = %v, want %v", c.what, s, i, hd, e, got, want)
						}
					}
				}
			}
		}
	}
}

// halves rounds an input's values to f16: the halfs (same layout) and their exact f32
// widening (same layout), so that attention over the f16 operand can be compared with
// attention over the f32 one.
func halves(t testing.TB, in input) (Mat16, input) {
	t.Helper()
	raw := make([]byte, 2*len(in.m.Data))
	if err := Quantize(F16, in.m.Data, raw); err != nil {
		t.Fatal(err)
	}
	h := make([]uint16, len(in.m.Data))
	for i := range h {
		h[i] = uint16(raw[2*i]) | uint16(raw[2*i+1])<<8
	}
	wide := make([]float32, len(h))
	if err := Dequantize(F16, raw, wide); err != nil {
		t.Fatal(err)
	}
	m := in.m
	return Mat16{Data: h, Rows: m.Rows, Cols: m.Cols, LD: m.LD}, input{m: Mat{Data: wide, Rows: m.Rows, Cols: m.Cols, LD: m.LD}, orig: append([]float32(nil), wide...)}
}

// TestAttentionF16Parity: attention over f16 keys and values (an f16 KV cache) is, for
// every variant and thread count, bit for bit the same variant's attention over f32
// keys and values holding the same (widened) values: the kernels widen exactly and then
// run the f32 arithmetic. Against the reference the tolerance of TestAttentionParity
// applies.
func TestAttentionF16Parity(t *testing.T) {
	r := newRand(t)
	ref := refSet(t)
	for _, c := range attnCases(r) {
		w := c.h * c.d
		k16, kw := halves(t, c.k)
		v16, vw := halves(t, c.v)
		wide := c
		wide.k, wide.v = kw, vw
		scale := attnScale(wide)
		want := newGuarded(c.qRows, w, w)
		if err := ref.Attention(c.q.m, kw.m, vw.m, want.mat(), c.seq, c.mask, c.h, c.d, c.scale, c.causal, 0, 1, alignedFloats(ScratchFloats)); err != nil {
			t.Fatalf("%s ref: %v", c.what, err)
		}
		k16orig, v16orig := append([]uint16(nil), k16.Data...), append([]uint16(nil), v16.Data...)
		for _, s := range variants(t) {
			for _, nth := range threadCounts {
				what := c.what + "/" + name("isa", s.ISA(), "kv", "f16", "nth", nth)
				o32, o16 := newGuarded(c.qRows, w, w+7), newGuarded(c.qRows, w, w+7)
				if err := runShares(nth, func(ith int, sc []float32) error {
					return s.Attention(c.q.m, kw.m, vw.m, o32.mat(), c.seq, c.mask, c.h, c.d, c.scale, c.causal, ith, nth, sc)
				}); err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				if err := runShares(nth, func(ith int, sc []float32) error {
					return s.AttentionF16(c.q.m, k16, v16, o16.mat(), c.seq, c.mask, c.h, c.d, c.scale, c.causal, ith, nth, sc)
				}); err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				o16.checkGuards(t, what)
				got := o16.dense()
				sameBits(t, what+" against the f32 kernel on the widened values", got, o32.dense())
				compare(t, what, got, want.dense(), scale, w, 1e-5)
				c.q.checkUnmodified(t, what+" q")
				if !slices.Equal(k16.Data, k16orig) || !slices.Equal(v16.Data, v16orig) {
					t.Fatalf("%s: k or v modified", what)
				}
			}
		}
	}
}

// decodeCase is attention over a KV cache slab: sequence s holds lens[s] = {keys,
// queries} at rows s*maxLen.., its queries at the end (qpos0 = nk - nq); sequence
// padded has its keys at the padded positions masked.
func decodeCase(r *rand.Rand, what string, h, d int, lens [][2]int, padded int, pads []int) attnCase {
	maxLen := 0
	for _, l := range lens {
		maxLen = max(maxLen, l[0])
	}
	var seq []int64
	qrow := 0
	mask := make([]byte, len(lens)*maxLen)
	for i := range mask {
		mask[i] = 1
	}
	for _, j := range pads {
		mask[padded*maxLen+j] = 0
	}
	for s, l := range lens {
		nk, nq := l[0], l[1]
		seq = append(seq, int64(qrow), int64(nq), int64(s*maxLen), int64(nk), int64(nk-nq), int64(s*maxLen))
		qrow += nq
	}
	qq := randMat(r, qrow, h*d, h*d, 1)
	kc := randMat(r, len(lens)*maxLen, h*d, h*d, 1)
	vc := randMat(r, len(lens)*maxLen, h*d, h*d, 1)
	return attnCase{what: what, q: qq, k: kc, v: vc, qRows: qrow, seq: seq, mask: mask, h: h, d: d, scale: float32(1 / math.Sqrt(float64(d))), causal: true}
}
