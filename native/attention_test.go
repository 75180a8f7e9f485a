package native

import (
	"math"
	"testing"
)

// attnOracle is causal/masked attention of one sequence and head in float64 (fully
// masked queries: the uniform mean of v).
func attnOracle(q, k, v [][]float32, scale float64, causal bool, qpos0 int, valid []bool) [][]float32 {
	out := make([][]float32, len(q))
	for i := range q {
		sc := make([]float64, len(k))
		ok := make([]bool, len(k))
		any := false
		mx := math.Inf(-1)
		for j := range k {
			ok[j] = !(causal && j > qpos0+i) && (valid == nil || valid[j])
			for e := range q[i] {
				sc[j] += float64(q[i][e]) * float64(k[j][e])
			}
			sc[j] *= scale
			if ok[j] {
				any = true
				mx = math.Max(mx, sc[j])
			}
		}
		sum := 0.0
		p := make([]float64, len(k))
		for j := range k {
			if !any {
				p[j] = 1
			} else if ok[j] {
				p[j] = math.Exp(sc[j] - mx)
			}
			sum += p[j]
		}
		out[i] = make([]float32, len(v[0]))
		for e := range out[i] {
			s := 0.0
			for j := range v {
				s += p[j] * float64(v[j][e])
			}
			out[i][e] = float32(s / sum)
		}
	}
	return out
}

// head returns rows [r0, r0+n) of t, columns of head h.
func head(t Tensor, r0, n, h, d int) [][]float32 {
	out := make([][]float32, n)
	for i := range out {
		out[i] = t.Row(r0 + i)[h*d : (h+1)*d]
	}
	return out
}

// TestAttentionViews: q, k, v as column views of one packed qkv projection, two
// sequences, causal, with padding.
func TestAttentionViews(t *testing.T) {
	r := newRand(t)
	const b, tt, h, d = 2, 13, 3, 24
	w := h * d
	qkv := randTensor(r, 1, b*tt, 3*w)
	q, k, v := qkv.Cols(0, w), qkv.Cols(w, w), qkv.Cols(2*w, w)
	mask := make([]bool, b*tt)
	for i := range mask {
		mask[i] = !(i >= tt && i < tt+4) // left padding of 4 in sequence 1
	}
	p := AttnParams{Heads: h, HeadDim: d, Scale: float32(1 / math.Sqrt(d)), Causal: true, KeyMask: mask}
	forEachCtx(t, func(t *testing.T, c *Ctx) {
		out := c.Attention(q, k, v, b, p)
		for s := 0; s < b; s++ {
			for hd := 0; hd < h; hd++ {
				want := attnOracle(head(q, s*tt, tt, hd, d), head(k, s*tt, tt, hd, d), head(v, s*tt, tt, hd, d), float64(p.Scale), true, 0, mask[s*tt:(s+1)*tt])
				for i := range want {
					near(t, "attention", out.Row(s*tt + i)[hd*d:(hd+1)*d], want[i], 1e-5, 1)
				}
			}
		}
		c.Reset()
	})
}

// roundF16 returns t with every value rounded to f16 and back (exactly what an F16
// cache holds).
func roundF16(t *testing.T, x Tensor) Tensor {
	rows, cols := x.Dims2()
	m, err := QuantizeMatrix(x.Clone().F32(), rows, cols, F16)
	if err != nil {
		t.Fatal(err)
	}
	return FromF32(m.Dequantize(), rows, cols)
}

// TestKVCacheDecodeMatchesFullAttention: prefilling slots of different lengths, then
// decoding one position at a time through the cache, gives what causal attention over
// the whole sequence gives, at every layer, for F32 and F16 caches (keys and values
// that f16 holds exactly, so the same tolerance applies: see TestKVCacheF16Accuracy for
// the rounding).
func TestKVCacheDecodeMatchesFullAttention(t *testing.T) {
	for _, dt := range []DType{F32, F16} {
		t.Run("kv="+dt.String(), func(t *testing.T) { testKVCacheDecode(t, dt) })
	}
}

func testKVCacheDecode(t *testing.T, dt DType) {
	r := newRand(t)
	const layers, h, d, maxLen = 2, 4, 20, 24
	w := h * d
	total := []int{9, 17, 5} // final length per sequence
	prompt := []int{4, 12, 1}
	seqQ := make([]Tensor, len(total))
	seqK := make([]Tensor, len(total))
	seqV := make([]Tensor, len(total))
	for s, n := range total {
		seqQ[s], seqK[s], seqV[s] = randTensor(r, 1, n, w), randTensor(r, 1, n, w), randTensor(r, 1, n, w)
		if dt == F16 {
			seqK[s], seqV[s] = roundF16(t, seqK[s]), roundF16(t, seqV[s])
		}
	}
	p := AttnParams{Heads: h, HeadDim: d, Scale: float32(1 / math.Sqrt(d)), Causal: true}
	forEachCtx(t, func(t *testing.T, c *Ctx) {
		kv := NewKVCache(layers, 4, maxLen, w, dt)
		if kv.DType() != dt {
			t.Fatalf("cache of %s", kv.DType())
		}
		slots := []int{3, 0, 1} // any slot order
		// want[s]: full causal attention of sequence s
		want := make([]Tensor, len(total))
		for s := range total {
			want[s] = c.Attention(seqQ[s], seqK[s], seqV[s], 1, p).Clone()
		}
		check := func(s, pos0 int, got Tensor, row0 int, n int) {
			for i := 0; i < n; i++ {
				near(t, "cached attention", got.Row(row0+i), want[s].Row(pos0+i), 1e-5, 1)
			}
		}
		// prefill: prompt[s] rows per slot, stacked
		stack := func(ts []Tensor, from, lens []int) Tensor {
			rows := 0
			for _, n := range lens {
				rows += n
			}
			out := c.Alloc(rows, w)
			at := 0
			for s, n := range lens {
				out.Rows(at, at+n).CopyFrom(ts[s].Rows(from[s], from[s]+n))
				at += n
			}
			return out
		}
		zero := make([]int, len(total))
		for l := 0; l < layers; l++ {
			kv.Append(l, slots, prompt, stack(seqK, zero, prompt), stack(seqV, zero, prompt))
			out := c.AttentionCached(stack(seqQ, zero, prompt), kv, l, slots, prompt, p, nil)
			row := 0
			for s := range total {
				check(s, 0, out, row, prompt[s])
				row += prompt[s]
			}
		}
		for s := range total {
			if kv.Len(slots[s]) != prompt[s] {
				t.Fatalf("slot %d len %d, want %d", slots[s], kv.Len(slots[s]), prompt[s])
			}
		}
		// decode: one position per still-running sequence per step
		for step := 0; ; step++ {
			var act, pos, ones []int
			var actSlots []int
			for s := range total {
				if n := kv.Len(slots[s]); n < total[s] {
					act = append(act, s)
					pos = append(pos, n)
					ones = append(ones, 1)
					actSlots = append(actSlots, slots[s])
				}
			}
			if len(act) == 0 {
				break
			}
			pick := func(ts []Tensor) Tensor {
				out := c.Alloc(len(act), w)
				for i, s := range act {
					out.Rows(i, i+1).CopyFrom(ts[s].Rows(pos[i], pos[i]+1))
				}
				return out
			}
			for l := 0; l < layers; l++ {
				kv.Append(l, actSlots, nil, pick(seqK), pick(seqV))
				out := c.AttentionCached(pick(seqQ), kv, l, actSlots, ones, p, nil)
				for i, s := range act {
					check(s, pos[i], out, i, 1)
				}
			}
			c.Reset()
		}
		// beam-search style copy, truncation
		kv.CopySlot(2, slots[1])
		if kv.Len(2) != total[1] {
			t.Fatalf("copied slot len %d, want %d", kv.Len(2), total[1])
		}
		kv.SetLen(2, 6)
		q := seqQ[1].Rows(5, 6)
		out := c.AttentionCached(q, kv, 1, []int{2}, []int{1}, p, nil)
		check(1, 5, out, 0, 1)
		// a key mask over the cache: compare with the oracle
		valid := make([]bool, 6)
		for i := range valid {
			valid[i] = i%2 == 1
		}
		out = c.AttentionCached(q, kv, 1, []int{2}, []int{1}, p, [][]bool{valid})
		for hd := 0; hd < h; hd++ {
			wantH := attnOracle(head(q, 0, 1, hd, d), head(seqK[1], 0, 6, hd, d), head(seqV[1], 0, 6, hd, d), float64(p.Scale), true, 5, valid)
			near(t, "masked cache", out.Row(0)[hd*d:(hd+1)*d], wantH[0], 1e-5, 1)
		}
		c.Reset()
	})
}

// TestKVCacheF16Accuracy: an F16 cache rounds keys and values to f16 (relative error
// e = 2^-11 each), so it attends with the f32 cache's result up to: e * max|v| for the
// values, plus the softmax's response to score errors of at most
// s = scale * e * max_j sum_d |q_d k_jd| (each weight moves by a factor within e^(+-2s),
// moving the output by at most (e^(2s) - 1) * 2 * max|v|), plus the f32 kernels'
// tolerance. Prefill and decode steps, with a padded position.
func TestKVCacheF16Accuracy(t *testing.T) {
	r := newRand(t)
	const h, d, n, prompt = 4, 80, 30, 23
	w := h * d
	q, k, v := randTensor(r, 1, n, w), randTensor(r, 1, n, w), randTensor(r, 1, n, w)
	p := AttnParams{Heads: h, HeadDim: d, Scale: float32(1 / math.Sqrt(d)), Causal: true}
	valid := make([]bool, n)
	for i := range valid {
		valid[i] = i != 3
	}
	e := math.Pow(2, -11)
	forEachCtx(t, func(t *testing.T, c *Ctx) {
		out := map[DType]Tensor{}
		for _, dt := range []DType{F32, F16} {
			kv := NewKVCache(1, 2, n, w, dt)
			kv.Append(0, []int{1}, []int{prompt}, k.Rows(0, prompt), v.Rows(0, prompt))
			res := NewTensor(n, w)
			res.Rows(0, prompt).CopyFrom(c.AttentionCached(q.Rows(0, prompt), kv, 0, []int{1}, []int{prompt}, p, [][]bool{valid[:prompt]}))
			for i := prompt; i < n; i++ {
				kv.Append(0, []int{1}, nil, k.Rows(i, i+1), v.Rows(i, i+1))
				res.Rows(i, i+1).CopyFrom(c.AttentionCached(q.Rows(i, i+1), kv, 0, []int{1}, []int{1}, p, [][]bool{valid[:i+1]}))
				c.Reset()
			}
			out[dt] = res
		}
		worst := 0.0
		for i := 0; i < n; i++ {
			for hd := 0; hd < h; hd++ {
				vmax, smax := 0.0, 0.0
				for j := 0; j <= i; j++ {
					dot := 0.0
					for col := hd * d; col < (hd+1)*d; col++ {
						vmax = math.Max(vmax, math.Abs(float64(v.Row(j)[col])))
						dot += math.Abs(float64(q.Row(i)[col]) * float64(k.Row(j)[col]))
					}
					smax = math.Max(smax, dot)
				}
				s := float64(p.Scale) * e * smax
				bound := e*vmax + (math.Exp(2*s)-1)*2*vmax + 1e-5*vmax*(1+float64(p.Scale)*smax)
				for col := hd * d; col < (hd+1)*d; col++ {
					diff := math.Abs(float64(out[F16].Row(i)[col] - out[F32].Row(i)[col]))
					if diff > bound {
						t.Fatalf("position %d head %d [%d]: f16 cache %v, f32 cache %v: |diff| %.3g > bound %.3g", i, hd, col, out[F16].Row(i)[col], out[F32].Row(i)[col], diff, bound)
					}
					worst = max(worst, diff/vmax)
				}
			}
		}
		t.Logf("largest |f16 - f32| / max|v|: %.3g", worst)
	})
}

func TestKVCacheMisusePanics(t *testing.T) {
	kv := NewKVCache(1, 2, 3, 4, F32)
	k := NewTensor(4, 4)
	cases := map[string]func(){
		"bad dtype":  func() { NewKVCache(1, 2, 3, 4, Q8_0) },
		"overflow":   func() { kv.Append(0, []int{0}, nil, k, k) },
		"bad slot":   func() { kv.Append(0, []int{2}, []int{1}, k.Rows(0, 1), k.Rows(0, 1)) },
		"bad layer":  func() { kv.Append(1, []int{0}, []int{1}, k.Rows(0, 1), k.Rows(0, 1)) },
		"lens cover": func() { kv.Append(0, []int{0, 1}, []int{1, 1}, k.Rows(0, 3), k.Rows(0, 3)) },
		"setlen":     func() { kv.SetLen(0, 4) },
	}
	for what, f := range cases {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", what)
				}
			}()
			f()
		}()
	}
}
