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
// sequences, causal, with padding; and cross-attention with another key length.
func TestAttentionViews(t *testing.T) {
	r := newRand(t)
	const b, tt, tk, h, d = 2, 13, 7, 3, 24
	w := h * d
	qkv := randTensor(r, 1, b*tt, 3*w)
	q, k, v := qkv.Cols(0, w), qkv.Cols(w, w), qkv.Cols(2*w, w)
	kx, vx := randTensor(r, 1, b*tk, w), randTensor(r, 1, b*tk, w)
	mask := make([]bool, b*tt)
	for i := range mask {
		mask[i] = !(i >= tt && i < tt+4) // left padding of 4 in sequence 1
	}
	p := AttnParams{Heads: h, HeadDim: d, Scale: float32(1 / math.Sqrt(d)), Causal: true, KeyMask: mask}
	cross := AttnParams{Heads: h, HeadDim: d, Scale: float32(1 / math.Sqrt(d))}
	forEachCtx(t, func(t *testing.T, c *Ctx) {
		m0 := c.Mark()
		defer c.Release(m0)
		qd := on(c, qkv)
		out := back(c, c.Attention(qd.Cols(0, w), qd.Cols(w, w), qd.Cols(2*w, w), b, p))
		outX := back(c, c.Attention(qd.Cols(0, w), on(c, kx), on(c, vx), b, cross))
		for s := 0; s < b; s++ {
			for hd := 0; hd < h; hd++ {
				want := attnOracle(head(q, s*tt, tt, hd, d), head(k, s*tt, tt, hd, d), head(v, s*tt, tt, hd, d), float64(p.Scale), true, 0, mask[s*tt:(s+1)*tt])
				wantX := attnOracle(head(q, s*tt, tt, hd, d), head(kx, s*tk, tk, hd, d), head(vx, s*tk, tk, hd, d), float64(p.Scale), false, 0, nil)
				for i := range want {
					near(t, "attention", out.Row(s*tt + i)[hd*d:(hd+1)*d], want[i], 1e-5, 1)
					near(t, "cross-attention", outX.Row(s*tt + i)[hd*d:(hd+1)*d], wantX[i], 1e-5, 1)
				}
			}
		}
	})
}

// roundF16 returns t with every value rounded to f16 and back (exactly what an F16
// cache holds).
func roundF16(t *testing.T, x Tensor) Tensor {
	rows, cols := x.Dims2()
	m, err := QuantizeMatrix(dense(x), rows, cols, F16)
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
	// want[s]: full causal attention of sequence s, on the host
	want := make([]Tensor, len(total))
	for s, n := range total {
		want[s] = NewTensor(n, w)
		for hd := 0; hd < h; hd++ {
			o := attnOracle(head(seqQ[s], 0, n, hd, d), head(seqK[s], 0, n, hd, d), head(seqV[s], 0, n, hd, d), float64(p.Scale), true, 0, nil)
			for i := range o {
				copy(want[s].Row(i)[hd*d:], o[i])
			}
		}
	}
	forEachCtx(t, func(t *testing.T, c *Ctx) {
		kv := c.Device().NewKVCache(layers, 4, maxLen, w, dt)
		defer c.FreeKV(kv)
		if kv.DType() != dt {
			t.Fatalf("cache of %s", kv.DType())
		}
		slots := []int{3, 0, 1} // any slot order
		check := func(s, pos0 int, got Tensor, row0 int, n int) {
			gh := back(c, got)
			for i := 0; i < n; i++ {
				near(t, "cached attention", gh.Row(row0+i), want[s].Row(pos0+i), 1e-5, 1)
			}
		}
		// stack: rows [from[s], from[s]+lens[s]) of each sequence, stacked, on the device
		stack := func(ts []Tensor, from, lens []int) Tensor {
			rows := 0
			for _, n := range lens {
				rows += n
			}
			out := NewTensor(rows, w)
			at := 0
			for s, n := range lens {
				copy(out.F32()[at*w:], dense(ts[s].Rows(from[s], from[s]+n)))
				at += n
			}
			return on(c, out)
		}
		m0 := c.Mark()
		zero := make([]int, len(total))
		for l := 0; l < layers; l++ {
			c.AppendKV(kv, l, slots, prompt, stack(seqK, zero, prompt), stack(seqV, zero, prompt))
			out := c.AttentionCached(stack(seqQ, zero, prompt), kv, l, slots, prompt, p, nil)
			row := 0
			for s := range total {
				check(s, 0, out, row, prompt[s])
				row += prompt[s]
			}
		}
		c.Release(m0)
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
			lens, from := make([]int, len(total)), make([]int, len(total))
			for i, s := range act {
				lens[s], from[s] = 1, pos[i]
			}
			m := c.Mark()
			for l := 0; l < layers; l++ {
				c.AppendKV(kv, l, actSlots, nil, stack(seqK, from, lens), stack(seqV, from, lens))
				out := c.AttentionCached(stack(seqQ, from, lens), kv, l, actSlots, ones, p, nil)
				for i, s := range act {
					check(s, pos[i], out, i, 1)
				}
			}
			c.Release(m)
		}
		// beam-search style copy, truncation
		c.CopyKVSlot(kv, 2, slots[1])
		if kv.Len(2) != total[1] {
			t.Fatalf("copied slot len %d, want %d", kv.Len(2), total[1])
		}
		kv.SetLen(2, 6)
		q := on(c, seqQ[1].Rows(5, 6))
		out := c.AttentionCached(q, kv, 1, []int{2}, []int{1}, p, nil)
		check(1, 5, out, 0, 1)
		// a key mask over the cache: compare with the oracle
		valid := make([]bool, 6)
		for i := range valid {
			valid[i] = i%2 == 1
		}
		oh := back(c, c.AttentionCached(q, kv, 1, []int{2}, []int{1}, p, [][]bool{valid}))
		for hd := 0; hd < h; hd++ {
			wantH := attnOracle(head(seqQ[1], 5, 1, hd, d), head(seqK[1], 0, 6, hd, d), head(seqV[1], 0, 6, hd, d), float64(p.Scale), true, 5, valid)
			near(t, "masked cache", oh.Row(0)[hd*d:(hd+1)*d], wantH[0], 1e-5, 1)
		}
		c.Release(Mark{})
	})
}

// TestKVCacheF16Accuracy: an F16 cache rounds keys and values to f16 (relative error
// e = 2^-11 each), so it attends with the f32 cache's result up to: e * max|v| for the
// values, plus the softmax's response to score errors of at most
// s = scale * e * max_j sum_d |q_d k_jd| (each weight moves by a factor within e^(+-2s),
// moving the output by at most (e^(2s) - 1) * 2 * max|v|), plus the f32 kernels'
// tolerance. Prefill and decode steps, with a padded position. (Where a device also
// rounds the queries to f16 to multiply them with f16 keys, as ggml's CPU backend does,
// the score error doubles: 2s.)
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
		qRound := 1.0
		if c.Device() != CPU {
			qRound = 2
		}
		out := map[DType]Tensor{}
		for _, dt := range []DType{F32, F16} {
			kv := c.Device().NewKVCache(1, 2, n, w, dt)
			res := NewTensor(n, w)
			m := c.Mark()
			c.AppendKV(kv, 0, []int{1}, []int{prompt}, on(c, k.Rows(0, prompt)), on(c, v.Rows(0, prompt)))
			copy(res.F32(), c.ToHost(c.AttentionCached(on(c, q.Rows(0, prompt)), kv, 0, []int{1}, []int{prompt}, p, [][]bool{valid[:prompt]})))
			c.Release(m)
			for i := prompt; i < n; i++ {
				c.AppendKV(kv, 0, []int{1}, nil, on(c, k.Rows(i, i+1)), on(c, v.Rows(i, i+1)))
				copy(res.Row(i), c.ToHost(c.AttentionCached(on(c, q.Rows(i, i+1)), kv, 0, []int{1}, []int{1}, p, [][]bool{valid[:i+1]})))
				c.Release(m)
			}
			c.FreeKV(kv)
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
				s := qRound * float64(p.Scale) * e * smax
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
	c := NewCtx(1)
	defer c.Close()
	cases := map[string]func(){
		"bad dtype":  func() { NewKVCache(1, 2, 3, 4, Q8_0) },
		"overflow":   func() { c.AppendKV(kv, 0, []int{0}, nil, k, k) },
		"bad slot":   func() { c.AppendKV(kv, 0, []int{2}, []int{1}, k.Rows(0, 1), k.Rows(0, 1)) },
		"bad layer":  func() { c.AppendKV(kv, 1, []int{0}, []int{1}, k.Rows(0, 1), k.Rows(0, 1)) },
		"lens cover": func() { c.AppendKV(kv, 0, []int{0, 1}, []int{1, 1}, k.Rows(0, 3), k.Rows(0, 3)) },
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
