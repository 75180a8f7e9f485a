package native

import (
	"math"

	"synth/native/ggml"
)

// The ggml executor's backward ops, composed from ggml's forward ops (its own autodiff
// lacks LayerNorm's backward and F16 out_prod on the CPU, and would allocate behind
// native's memory plan). The GELU family's derivatives need erf or tanh of the
// pre-activations, which ggml's GELU kernels do not expose: they are computed on the
// host (Q-Former activations: small).

func (x *ggmlExec) linearBackward(dx, dy Tensor, w *Matrix) {
	rows, _ := dy.Dims2()
	n, k := w.N(), w.K()
	g := x.graph
	x.begin(4, alignUp(4*n*k)+alignUp(4*k*rows), alignUp(4*n))
	wt := x.matLeaf(w) // [K, N] in its stored type
	if w.dt != F32 {
		// out_prod multiplies f32 (CUDA; the CPU backend not F16): dequantize by rows
		ids := make([]int32, n)
		for i := range ids {
			ids[i] = int32(i)
		}
		wt = x.tmp(g.GetRows(wt, x.stageI32(ids)))
	}
	// dx[k, m] = sum_n W[n, k] dy[m, n]
	x.put(g.OutProd(wt, g.Transpose(x.leaf(dy))), dx)
}

func (x *ggmlExec) matMulTN(out, a, b Tensor) {
	// out[p][q] = sum_m a[m][p] b[m][q]: b and a in their natural ggml layouts
	x.begin(2, 0, 0)
	x.put(x.graph.OutProd(x.leaf(b), x.leaf(a)), out)
}

func (x *ggmlExec) layerNormBackward(dx, dy, in, gamma Tensor, eps float32) {
	rows, cols := in.Dims2()
	g := x.graph
	full, row := alignUp(4*rows*cols), alignUp(4*rows)
	x.begin(16, 8*full+6*row, 0)
	xt := x.leaf(in)
	xc := x.tmp(g.Sub(xt, x.tmp(g.Mean(xt))))                                        // x - mean
	sd := x.tmp(g.Sqrt(x.tmp(g.ScaleBias(x.tmp(g.Mean(x.tmp(g.Sqr(xc)))), 1, eps)))) // sqrt(var + eps) [1, R]
	xh := x.tmp(g.Div(xc, sd))
	gr := x.leaf(dy)
	if !gamma.Empty() {
		gr = x.tmp(g.Mul(gr, x.leaf(gamma)))
	}
	mg := x.tmp(g.Mean(gr))
	mgx := x.tmp(g.Mean(x.tmp(g.Mul(gr, xh))))
	num := x.tmp(g.Sub(x.tmp(g.Sub(gr, mg)), x.tmp(g.Mul(xh, mgx))))
	x.put(g.Div(num, sd), dx)
}

func (x *ggmlExec) activationBackward(dx, dy, pre Tensor, act Epilogue) {
	if act == ReLU {
		x.begin(2, alignUp(dy.Numel()*4), 0)
		x.put(x.graph.Mul(x.leaf(dy), x.tmp(x.graph.Step(x.leaf(pre)))), dx)
		return
	}
	rows, cols := pre.Dims2()
	p, d := make([]float32, rows*cols), make([]float32, rows*cols)
	x.download(p, pre)
	x.download(d, dy)
	for i, v := range p {
		d[i] = float32(float64(d[i]) * actGrad(act, float64(v)))
	}
	x.upload(dx, d)
}

func (x *ggmlExec) crossEntropy(dl, logits Tensor, targets []int32, scale float32) float64 {
	rows, cols := logits.Dims2()
	var at32 []int32
	var at64 []int64
	w := make([]float32, rows) // each row's share of the mean: scale, or 0 when ignored
	for r, t := range targets {
		if t != IgnoreIndex {
			at32 = append(at32, int32(r*cols)+t)
			at64 = append(at64, int64(r*cols)+int64(t))
			w[r] = scale
		}
	}
	g := x.graph
	n := len(at32)
	x.begin(8, 2*alignUp(4*rows*cols)+2*alignUp(4*max(n, 1)), alignUp(4*rows)+alignUp(4*n)+alignUp(8*n))
	wt := x.stageF32(w, 1, rows)
	var i32, i64 ggml.T
	if n > 0 {
		i32, i64 = x.stageI32(at32), x.stageI64(at64)
	}
	sm := x.tmp(g.SoftMax(x.contiguous(logits), ggml.T{}, 1)) // [V, R]
	x.put(g.Mul(sm, wt), dl)
	if n == 0 {
		x.sync()
		return 0
	}
	smElems := g.View(sm, [4]int64{1, int64(rows * cols), 1, 1}, [4]int64{4, 4, int64(4 * rows * cols), int64(4 * rows * cols)}, 0)
	pt := g.GetRows(smElems, i32) // [1, n]: each labelled row's probability of its target
	off := x.scratchAt(pt)
	g.Place(pt, x.scratch, off)
	g.Record(g.SetRows(x.elems(dl), x.tmp(g.ScaleBias(pt, scale, -scale)), i64))
	x.sync()
	ps := make([]float32, n)
	x.scratch.Read(off, f32Bytes(ps))
	loss := 0.0
	for _, p := range ps {
		loss -= math.Log(float64(p))
	}
	return loss
}

func (x *ggmlExec) dropout(t Tensor, p float32, seed uint64) {
	rows, cols := t.Dims2()
	m := make([]float32, rows*cols)
	s := 1 / (1 - p)
	for i := range m {
		if DropoutKeep(seed, i, p) {
			m[i] = s
		}
	}
	x.begin(2, 0, alignUp(4*len(m)))
	mt := x.stageF32(m, cols, rows)
	x.put(x.graph.Mul(x.leaf(t), mt), t)
}

// attentionBackward composes attention's gradient per group of sequences (like the
// forward pass, attendGroup): P recomputed from q and k under the mask, then
//
//	dV = P^T dO;  dP = dO V^T;  dS = scale P (dP - rowsum(P dP));  dQ = dS K;  dK = dS^T Q
//
// with every product batched over heads and sequences.
func (x *ggmlExec) attentionBackward(dq, dk, dv, q, k, v, dout Tensor, seq []int64, mask []byte, p AttnParams) {
	const f = 6
	n := len(seq) / f
	step := int64(0)
	if n > 1 {
		step = seq[f+2] - seq[2]
	}
	b := n
	nq, l := int(seq[1]), int(seq[3])
	d, h := p.HeadDim, p.Heads
	g := x.graph
	scores := alignUp(4 * l * nq * h * b)
	kvs := alignUp(4 * l * d * h * b)
	qs := alignUp(4 * nq * d * h * b)
	m, need := attnMask(seq, mask, p.Causal, l)
	sees, blind := make([]float32, nq*b), false // 1 where a query sees some key
	for i := range sees {
		for _, v := range m[i*l : (i+1)*l] {
			if v == 0 {
				sees[i] = 1
				break
			}
		}
		blind = blind || sees[i] == 0
	}
	x.begin(32, 12*scores+4*kvs+4*qs, alignUp(4*len(m))+alignUp(4*len(sees)))
	var mt, rt ggml.T
	if need {
		mt = x.stageF32(m, l, nq*b)
		mt = g.View(mt, [4]int64{int64(l), int64(nq), 1, int64(b)}, [4]int64{4, int64(4 * l), int64(4 * l * nq), int64(4 * l * nq)}, 0)
	}
	if blind {
		rt = x.stageF32(sees, 1, nq*b)
		rt = g.View(rt, [4]int64{1, int64(nq), 1, int64(b)}, [4]int64{4, 4, int64(4 * nq), int64(4 * nq)}, 0)
	}
	rows4 := func(t Tensor, r0, per int) ggml.T { // [D, H, per, B] view of rows
		return x.leaf4(t.Rows(r0, r0+b*per), [4]int64{int64(d), int64(h), int64(per), int64(b)},
			[4]int64{4, int64(4 * d), int64(4 * t.ld), int64(4 * t.ld * per)})
	}
	kt := x.keys(actOperand(k), int(seq[2]), l, int(step), b, d, h) // [D, L, H, B]
	vt := x.keys(actOperand(v), int(seq[2]), l, int(step), b, d, h)
	qp := g.Permute(rows4(q, int(seq[0]), nq), 0, 2, 1, 3)       // [D, nq, H, B]
	dop := g.Permute(rows4(dout, int(seq[0]), nq), 0, 2, 1, 3)   // [D, nq, H, B]
	pm := x.tmp(g.SoftMax(x.tmp(g.MulMat(kt, qp)), mt, p.Scale)) // [L, nq, H, B]
	dp := x.tmp(g.MulMat(vt, dop))                               // [L, nq, H, B]
	rs := x.tmp(g.SumRows(x.tmp(g.Mul(pm, dp))))                 // [1, nq, H, B]
	ds := x.tmp(g.Scale(x.tmp(g.Mul(pm, x.tmp(g.Sub(dp, rs)))), p.Scale))
	if !rt.Nil() {
		ds = x.tmp(g.Mul(ds, rt)) // a query that sees no key averages v: no gradient to q and k
	}
	// dV [D, L] = sum_i dO[d, i] P[l, i]: both with nq first
	dvt := x.tmp(g.MulMat(x.tmp(g.Cont(g.Permute(dop, 1, 0, 2, 3))), x.tmp(g.Cont(g.Permute(pm, 1, 0, 2, 3)))))
	// dQ [D, nq] = sum_l K[d, l] dS[l, i]
	dqt := x.tmp(g.MulMat(x.tmp(g.Cont(g.Permute(kt, 1, 0, 2, 3))), ds))
	// dK [D, L] = sum_i Q[d, i] dS[l, i]
	dkt := x.tmp(g.MulMat(x.tmp(g.Cont(g.Permute(qp, 1, 0, 2, 3))), x.tmp(g.Cont(g.Permute(ds, 1, 0, 2, 3)))))
	g.Record(g.Cpy(g.Permute(dqt, 0, 2, 1, 3), rows4(dq, int(seq[0]), nq)))
	for _, o := range []struct {
		t   ggml.T
		dst Tensor
	}{{dkt, dk}, {dvt, dv}} {
		view := x.leaf4(o.dst.Rows(int(seq[2]), int(seq[2])+(b-1)*int(step)+l), [4]int64{int64(d), int64(h), int64(l), int64(b)},
			[4]int64{4, int64(4 * d), int64(4 * o.dst.ld), int64(4 * o.dst.ld * int(step))})
		g.Record(g.Cpy(g.Permute(o.t, 0, 2, 1, 3), view))
	}
}
