package native

import (
	"math"
	"runtime"
	"sync"
	"unsafe"

	"synth/kernels"
)

// The cpu executor's backward ops. The products go through the forward GEMM kernels:
// a transposed operand is transposed (and packed, for the weight side) into buffers the
// executor keeps, a cost linear in the operand's size against the product's cubic one.
// The row and element ops are plain Go over rows in parallel.

// gradBufs are the executor's reusable buffers for backward products.
type gradBufs struct {
	deq, tr [2][]float32
	pack    [2][]byte
}

func growF32(b []float32, n int) []float32 {
	if cap(b) < n {
		return alignedFloats(n)
	}
	return b[:n]
}

// parallelRows runs f over [0, n) split into contiguous shares on GOMAXPROCS
// goroutines (the backward ops' row loops; the pool's workers are for kernels).
func parallelRows(n int, f func(r0, r1 int)) {
	nth := min(runtime.GOMAXPROCS(0), max(n, 1))
	if nth <= 1 {
		f(0, n)
		return
	}
	var wg sync.WaitGroup
	for i := 0; i < nth; i++ {
		r0, r1 := n*i/nth, n*(i+1)/nth
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(r0, r1)
		}()
	}
	wg.Wait()
}

// transpose writes src [rows, cols] (row stride ld) transposed into dst [cols, rows].
func transpose(dst, src []float32, rows, cols, ld int) {
	const blk = 32
	parallelRows((cols+blk-1)/blk, func(b0, b1 int) {
		for cb := b0 * blk; cb < min(b1*blk, cols); cb += blk {
			for rb := 0; rb < rows; rb += blk {
				for c := cb; c < min(cb+blk, cols); c++ {
					d := dst[c*rows:]
					for r := rb; r < min(rb+blk, rows); r++ {
						d[r] = src[r*ld+c]
					}
				}
			}
		}
	})
}

// weightsOf makes kernel weights of the f32 matrix w [n, k] (row-major) for the
// executor's GEMM: w's bytes as raw rows, or packed into buffer slot.
func (x *cpuExec) weightsOf(w []float32, n, k, slot int) *kernels.Weights {
	raw := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(w))), 4*len(w))
	nr := x.set.PanelWidth(kernels.F32)
	if nr == 0 {
		return &kernels.Weights{DType: kernels.F32, N: n, K: k, Raw: raw}
	}
	size := kernels.PackedBytes(kernels.F32, n, k, nr)
	if cap(x.grad.pack[slot]) < size {
		x.grad.pack[slot] = alignedBytes(size)
	}
	out := x.grad.pack[slot][:size]
	x.runFunc(func(ith, nth int) error { return kernels.Pack(kernels.F32, raw, n, k, nr, out, ith, nth) })
	return &kernels.Weights{DType: kernels.F32, N: n, K: k, Packed: out, PanelNR: nr}
}

// funcJob runs a function as a pool job.
type funcJob func(ith, nth int) error

func (f funcJob) run(ith, nth int, _ []float32) error { return f(ith, nth) }

func (x *cpuExec) runFunc(f func(ith, nth int) error) { x.run(funcJob(f)) }

// gemmMat is y = x W^T (kernels' GEMM) on raw operands.
func (x *cpuExec) gemmMat(y, in kernels.Mat, w *kernels.Weights) {
	x.gemm = gemmJob{set: x.set, x: in, y: y, w: w}
	x.run(&x.gemm)
	x.gemm = gemmJob{}
}

func (x *cpuExec) linearBackward(dx, dy Tensor, w *Matrix) {
	if w.dt.BlockSize() > 1 {
		if t := w.transposedQ8(); t != nil {
			x.linear(dx, dy, t, Tensor{}, None, Tensor{})
			return
		}
	}
	n, k := w.N(), w.K()
	// dx = dy W = sum over chunks of W's rows of dy[:, chunk] W[chunk, :]; each chunk is
	// dequantized and transposed into the executor's buffers and is the weights of one
	// GEMM that adds into dx: buffers of a chunk, not of W (the tied LM head alone is
	// half a GB in f32)
	src := w.weightsFor(x.set)
	const chunk = 1024
	ids := make([]int32, min(n, chunk))
	for n0 := 0; n0 < n; n0 += chunk {
		cn := min(n, n0+chunk) - n0
		for i := range cn {
			ids[i] = int32(n0 + i)
		}
		x.grad.deq[0] = growF32(x.grad.deq[0], cn*k)
		deq := kernels.Mat{Data: x.grad.deq[0], Rows: cn, Cols: k, LD: k}
		x.runFunc(func(ith, nth int) error { return x.set.GatherRows(src, ids[:cn], deq, ith, nth) })
		x.grad.tr[0] = growF32(x.grad.tr[0], cn*k)
		transpose(x.grad.tr[0], x.grad.deq[0], cn, k, k)
		y := dx.mat()
		x.gemm = gemmJob{set: x.set, x: dy.Cols(n0, cn).mat(), y: y, w: x.weightsOf(x.grad.tr[0], k, cn, 0)}
		if n0 > 0 {
			x.gemm.r = y
		}
		x.run(&x.gemm)
		x.gemm = gemmJob{}
	}
}

func (x *cpuExec) matMulTN(out, a, b Tensor) {
	m, p := a.Dims2()
	_, q := b.Dims2()
	// a^T b = (a^T) (b^T)^T: a^T as the activations, b^T as the weights
	x.grad.tr[0] = growF32(x.grad.tr[0], m*p)
	x.grad.tr[1] = growF32(x.grad.tr[1], m*q)
	transpose(x.grad.tr[0], a.buf.host[a.off:], m, p, a.ld)
	transpose(x.grad.tr[1], b.buf.host[b.off:], m, q, b.ld)
	at := kernels.Mat{Data: x.grad.tr[0], Rows: p, Cols: m, LD: m}
	x.gemmMat(out.mat(), at, x.weightsOf(x.grad.tr[1], q, m, 1))
}

func (x *cpuExec) layerNormBackward(dx, dy, in, gamma Tensor, eps float32) {
	rows, cols := in.Dims2()
	g := gamma.vec()
	parallelRows(rows, func(r0, r1 int) {
		for r := r0; r < r1; r++ {
			xr, dr, out := in.Row(r), dy.Row(r), dx.Row(r)
			mean, vr := 0.0, 0.0
			for _, v := range xr {
				mean += float64(v)
			}
			mean /= float64(cols)
			for _, v := range xr {
				vr += (float64(v) - mean) * (float64(v) - mean)
			}
			inv := 1 / math.Sqrt(vr/float64(cols)+float64(eps))
			mg, mgx := 0.0, 0.0
			for j, v := range xr {
				gj := float64(dr[j])
				if g != nil {
					gj *= float64(g[j])
				}
				mg += gj
				mgx += gj * (float64(v) - mean) * inv
			}
			mg /= float64(cols)
			mgx /= float64(cols)
			for j, v := range xr {
				gj := float64(dr[j])
				if g != nil {
					gj *= float64(g[j])
				}
				xh := (float64(v) - mean) * inv
				out[j] = float32((gj - mg - xh*mgx) * inv)
			}
		}
	})
}

// actGrad is act'(x).
func actGrad(act Epilogue, x float64) float64 {
	switch act {
	case ReLU:
		if x > 0 {
			return 1
		}
		return 0
	case GELU: // Phi(x) + x phi(x)
		return 0.5*(1+math.Erf(x/math.Sqrt2)) + x*math.Exp(-x*x/2)/math.Sqrt(2*math.Pi)
	case GELUTanh:
		c := math.Sqrt(2 / math.Pi)
		u := c * (x + 0.044715*x*x*x)
		t := math.Tanh(u)
		return 0.5*(1+t) + 0.5*x*(1-t*t)*c*(1+3*0.044715*x*x)
	case QuickGELU:
		s := 1 / (1 + math.Exp(-1.702*x))
		return s + 1.702*x*s*(1-s)
	}
	return 1
}

func (x *cpuExec) activationBackward(dx, dy, pre Tensor, act Epilogue) {
	rows, _ := pre.Dims2()
	parallelRows(rows, func(r0, r1 int) {
		for r := r0; r < r1; r++ {
			p, d, out := pre.Row(r), dy.Row(r), dx.Row(r)
			for j, v := range p {
				out[j] = float32(float64(d[j]) * actGrad(act, float64(v)))
			}
		}
	})
}

func (x *cpuExec) crossEntropy(dl, logits Tensor, targets []int32, scale float32) float64 {
	rows, _ := logits.Dims2()
	losses := make([]float64, rows)
	parallelRows(rows, func(r0, r1 int) {
		for r := r0; r < r1; r++ {
			out := dl.Row(r)
			t := targets[r]
			if t == IgnoreIndex {
				clear(out)
				continue
			}
			row := logits.Row(r)
			mx := math.Inf(-1)
			for _, v := range row {
				mx = math.Max(mx, float64(v))
			}
			sum := 0.0
			for _, v := range row {
				sum += math.Exp(float64(v) - mx)
			}
			lse := mx + math.Log(sum)
			losses[r] = lse - float64(row[t])
			for j, v := range row {
				out[j] = float32(math.Exp(float64(v)-lse)) * scale
			}
			out[t] -= scale
		}
	})
	total := 0.0
	for _, l := range losses {
		total += l
	}
	return total
}

func (x *cpuExec) dropout(t Tensor, p float32, seed uint64) {
	rows, cols := t.Dims2()
	s := 1 / (1 - p)
	parallelRows(rows, func(r0, r1 int) {
		for r := r0; r < r1; r++ {
			row := t.Row(r)
			for j := range row {
				if DropoutKeep(seed, r*cols+j, p) {
					row[j] *= s
				} else {
					row[j] = 0
				}
			}
		}
	})
}

// attentionBackward runs, for each sequence and head, the four products of attention's
// gradient through the GEMM kernels, with the weights recomputed in f64-accumulated
// softmax rows under the forward pass's masks:
//
//	P = softmax(scale q k^T + mask);  dV = P^T dO;  dP = dO V^T
//	dS = P (dP - rowsum(P dP));  dQ = scale dS K;  dK = scale dS^T Q
func (x *cpuExec) attentionBackward(dq, dk, dv, q, k, v, dout Tensor, seq []int64, mask []byte, p AttnParams) {
	const f = kernels.SeqFields
	d := p.HeadDim
	for s := 0; s < len(seq)/f; s++ {
		q0, nq, k0, nk, qpos0, moff := int(seq[s*f]), int(seq[s*f+1]), int(seq[s*f+2]), int(seq[s*f+3]), int(seq[s*f+4]), seq[s*f+5]
		if nq == 0 {
			continue
		}
		for h := 0; h < p.Heads; h++ {
			col := h * d
			qh := headRows(q, q0, nq, col, d)
			kh := headRows(k, k0, nk, col, d)
			vh := headRows(v, k0, nk, col, d)
			doh := headRows(dout, q0, nq, col, d)
			// P [nq, nk]
			pm := make([]float32, nq*nk)
			x.gemmMat(kernels.Mat{Data: pm, Rows: nq, Cols: nk, LD: nk}, kernels.Mat{Data: qh, Rows: nq, Cols: d, LD: d}, x.weightsOf(kh, nk, d, 0))
			sees := make([]bool, nq) // a query that sees no key averages v: no gradient to q and k
			for i := 0; i < nq; i++ {
				row := pm[i*nk : (i+1)*nk]
				sees[i] = softmaxMasked(row, p.Scale, func(j int) bool {
					return !(p.Causal && j > qpos0+i) && (moff < 0 || mask[int(moff)+j] != 0)
				})
			}
			// dP = dO V^T [nq, nk]
			dp := make([]float32, nq*nk)
			x.gemmMat(kernels.Mat{Data: dp, Rows: nq, Cols: nk, LD: nk}, kernels.Mat{Data: doh, Rows: nq, Cols: d, LD: d}, x.weightsOf(vh, nk, d, 0))
			// dS = P (dP - rowsum(P dP)), then scaled: the score is scale q.k
			for i := 0; i < nq; i++ {
				pr, dr := pm[i*nk:(i+1)*nk], dp[i*nk:(i+1)*nk]
				if !sees[i] {
					clear(dr)
					continue
				}
				dot := 0.0
				for j := range pr {
					dot += float64(pr[j]) * float64(dr[j])
				}
				for j := range pr {
					dr[j] = float32(float64(pr[j])*(float64(dr[j])-dot)) * p.Scale
				}
			}
			// dV = P^T dO [nk, d], dK = dS^T Q [nk, d]: transposed P and dS as activations
			pt, dst := make([]float32, nq*nk), make([]float32, nq*nk)
			transpose(pt, pm, nq, nk, nk)
			transpose(dst, dp, nq, nk, nk)
			dvh, dkh, dqh := make([]float32, nk*d), make([]float32, nk*d), make([]float32, nq*d)
			x.grad.tr[1] = growF32(x.grad.tr[1], nq*d)
			transpose(x.grad.tr[1], doh, nq, d, d) // dO^T [d, nq]
			x.gemmMat(kernels.Mat{Data: dvh, Rows: nk, Cols: d, LD: d}, kernels.Mat{Data: pt, Rows: nk, Cols: nq, LD: nq}, x.weightsOf(x.grad.tr[1], d, nq, 1))
			transpose(x.grad.tr[1], qh, nq, d, d) // Q^T [d, nq]
			x.gemmMat(kernels.Mat{Data: dkh, Rows: nk, Cols: d, LD: d}, kernels.Mat{Data: dst, Rows: nk, Cols: nq, LD: nq}, x.weightsOf(x.grad.tr[1], d, nq, 1))
			// dQ = dS K [nq, d]: K^T as the weights
			x.grad.tr[1] = growF32(x.grad.tr[1], nk*d)
			transpose(x.grad.tr[1], kh, nk, d, d) // K^T [d, nk]
			x.gemmMat(kernels.Mat{Data: dqh, Rows: nq, Cols: d, LD: d}, kernels.Mat{Data: dp, Rows: nq, Cols: nk, LD: nk}, x.weightsOf(x.grad.tr[1], d, nk, 1))
			putHeadRows(dq, q0, nq, col, d, dqh)
			putHeadRows(dk, k0, nk, col, d, dkh)
			putHeadRows(dv, k0, nk, col, d, dvh)
		}
	}
}

// softmaxMasked turns raw scores into softmax(scale s) over the keys valid says are
// seen; a row that sees no key is uniform over all (HF's finfo.min masking), as the
// forward kernels do, and softmaxMasked reports false.
func softmaxMasked(row []float32, scale float32, valid func(j int) bool) bool {
	mx := math.Inf(-1)
	any := false
	for j, s := range row {
		if valid(j) {
			any = true
			mx = math.Max(mx, float64(s*scale))
		}
	}
	if !any {
		for j := range row {
			row[j] = 1 / float32(len(row))
		}
		return false
	}
	sum := 0.0
	for j, s := range row {
		if valid(j) {
			sum += math.Exp(float64(s*scale) - mx)
		}
	}
	for j, s := range row {
		if valid(j) {
			row[j] = float32(math.Exp(float64(s*scale)-mx) / sum)
		} else {
			row[j] = 0
		}
	}
	return true
}

// headRows copies rows [r0, r0+n) of t, columns [col, col+d), into a new [n, d] slice.
func headRows(t Tensor, r0, n, col, d int) []float32 {
	out := make([]float32, n*d)
	for i := 0; i < n; i++ {
		copy(out[i*d:(i+1)*d], t.Row(r0 + i)[col:col+d])
	}
	return out
}

func putHeadRows(t Tensor, r0, n, col, d int, src []float32) {
	for i := 0; i < n; i++ {
		copy(t.Row(r0 + i)[col:col+d], src[i*d:(i+1)*d])
	}
}
