package native

import (
	"fmt"
	"unsafe"

	"synth/kernels"
)

// Epilogue is an activation: what Linear applies after the bias, and what Activation
// applies elementwise.
type Epilogue uint8

const (
	None      = Epilogue(kernels.ActNone)
	GELU      = Epilogue(kernels.ActGELU)      // 0.5 x (1 + erf(x/sqrt 2)), torch's exact gelu
	GELUTanh  = Epilogue(kernels.ActGELUTanh)  // 0.5 x (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3)))
	QuickGELU = Epilogue(kernels.ActQuickGELU) // x sigmoid(1.702 x), OpenAI CLIP
	ReLU      = Epilogue(kernels.ActReLU)
)

func (e Epilogue) String() string { return kernels.Act(e).String() }

// allocLike allocates the result of a row op on x with cols columns: x's shape with the
// last dimension replaced (the 2-D form when x is a strided view).
func (c *Ctx) allocLike(x Tensor, cols int) Tensor {
	rows, _ := x.Dims2()
	if !x.Contiguous() || x.rank == 0 {
		return c.Alloc(rows, cols)
	}
	var s [MaxRank]int
	copy(s[:], x.shape[:x.rank])
	s[x.rank-1] = cols
	return c.Alloc(s[:x.rank]...)
}

// sameView reports whether a and b are the same storage with the same 2-D layout.
func sameView(a, b Tensor) bool {
	ar, ac := a.Dims2()
	br, bc := b.Dims2()
	if len(a.data) == 0 || len(b.data) == 0 || ar != br || ac != bc || a.ld != b.ld {
		return false
	}
	return unsafe.SliceData(a.data) == unsafe.SliceData(b.data)
}

type gemmJob struct {
	set     *kernels.Set
	x, y, r kernels.Mat
	w       *kernels.Weights
	bias    []float32
	act     kernels.Act
}

func (j *gemmJob) run(ith, nth int, sc []float32) error {
	return j.set.GEMM(j.x, j.w, j.bias, j.act, j.r, j.y, ith, nth, sc)
}

// Linear is y = act(x W^T + bias) + residual: x [.., K] onto y [.., N] (x's leading
// dimensions kept). bias has N values or is nil; residual is [.., N] or the empty
// Tensor{} for none, and is added after the activation. The bias, activation and
// residual are fused into the GEMM's store.
func (c *Ctx) Linear(x Tensor, w *Matrix, bias []float32, act Epilogue, residual Tensor) Tensor {
	y := c.allocLike(x, w.N())
	c.LinearInto(y, x, w, bias, act, residual)
	return y
}

// LinearInto is Linear writing into dst (any view of the output's 2-D shape). dst may be
// the residual itself (x = x + f(x) W^T in place); it must not overlap x.
func (c *Ctx) LinearInto(dst, x Tensor, w *Matrix, bias []float32, act Epilogue, residual Tensor) {
	x.mustCPU("Linear")
	dst.mustCPU("Linear")
	rows, k := x.Dims2()
	dr, dc := dst.Dims2()
	if k != w.K() || dr != rows || dc != w.N() {
		panic(fmt.Sprintf("native: Linear: x %v, W [%d, %d], dst %v", x.Shape(), w.N(), w.K(), dst.Shape()))
	}
	if bias != nil && len(bias) != w.N() {
		panic(fmt.Sprintf("native: Linear: %d bias values for W [%d, %d]", len(bias), w.N(), w.K()))
	}
	if !residual.Empty() {
		residual.mustCPU("Linear")
		if rr, rc := residual.Dims2(); rr != rows || rc != w.N() {
			panic(fmt.Sprintf("native: Linear: residual %v for output [%d, %d]", residual.Shape(), rows, w.N()))
		}
		if act != None && sameView(dst, residual) {
			// the kernel adds the residual after the activation, at the end of the K
			// loop, so it cannot accumulate into it: go through a temporary
			tmp := c.Alloc(rows, w.N())
			c.LinearInto(tmp, x, w, bias, act, residual)
			dst.CopyFrom(tmp)
			return
		}
	}
	c.gemm = gemmJob{set: c.set, x: x.mat(), y: dst.mat(), r: residual.mat(), w: w.weightsFor(c.set), bias: bias, act: kernels.Act(act)}
	c.run(&c.gemm)
	c.gemm = gemmJob{} // drop references to caller memory
}

type rowKind uint8

const (
	rowLayerNorm rowKind = iota
	rowSoftmax
	rowLogSoftmax
	rowAct
	rowAxpby
	rowL2
	rowArgmax
)

// rowJob is every op that maps rows of x (and b) to rows of y.
type rowJob struct {
	set         *kernels.Set
	kind        rowKind
	x, b, y     kernels.Mat
	gamma, bias []float32 // LayerNorm's
	eps         float32
	alpha, beta float32 // softmax's scale (alpha); axpby's factors
	act         kernels.Act
	idx         []int64 // argmax's output
}

func (j *rowJob) run(ith, nth int, _ []float32) error {
	switch j.kind {
	case rowLayerNorm:
		return j.set.LayerNorm(j.x, j.gamma, j.bias, j.eps, j.y, ith, nth)
	case rowSoftmax, rowLogSoftmax:
		return j.set.Softmax(j.x, j.alpha, j.kind == rowLogSoftmax, j.y, ith, nth)
	case rowAct:
		return j.set.Activation(j.x, j.act, j.y, ith, nth)
	case rowAxpby:
		return j.set.Axpby(j.x, j.alpha, j.b, j.beta, j.y, ith, nth)
	case rowL2:
		return j.set.L2Normalize(j.x, j.y, ith, nth)
	default:
		return j.set.Argmax(j.x, j.idx, ith, nth)
	}
}

// mapRows runs j from x into a new tensor shaped like x (op names x's op for errors).
func (c *Ctx) mapRows(op string, x Tensor, j rowJob) Tensor {
	x.mustCPU(op)
	_, cols := x.Dims2()
	y := c.allocLike(x, cols)
	j.x, j.y = x.mat(), y.mat()
	c.runRows(j)
	return y
}

func (c *Ctx) runRows(j rowJob) {
	j.set = c.set
	c.rowJob = j
	c.run(&c.rowJob)
	c.rowJob = rowJob{}
}

func sameShape2(op string, a, b Tensor) {
	ar, ac := a.Dims2()
	br, bc := b.Dims2()
	if ar != br || ac != bc {
		panic(fmt.Sprintf("native: %s: shapes %v and %v differ", op, a.Shape(), b.Shape()))
	}
}

// LayerNorm normalises each row of x (torch.nn.LayerNorm: biased variance, eps inside
// the square root); gamma and beta have one value per column, or are nil (1 and 0).
func (c *Ctx) LayerNorm(x Tensor, gamma, beta []float32, eps float32) Tensor {
	_, cols := x.Dims2()
	y := c.allocLike(x, cols)
	c.LayerNormInto(y, x, gamma, beta, eps)
	return y
}

// LayerNormInto is LayerNorm writing into dst, which may be x itself.
func (c *Ctx) LayerNormInto(dst, x Tensor, gamma, beta []float32, eps float32) {
	x.mustCPU("LayerNorm")
	dst.mustCPU("LayerNorm")
	sameShape2("LayerNorm", dst, x)
	_, cols := x.Dims2()
	if (gamma != nil && len(gamma) != cols) || (beta != nil && len(beta) != cols) {
		panic(fmt.Sprintf("native: LayerNorm: %d gamma, %d beta values for rows of %d", len(gamma), len(beta), cols))
	}
	c.runRows(rowJob{kind: rowLayerNorm, x: x.mat(), y: dst.mat(), gamma: gamma, bias: beta, eps: eps})
}

// Softmax is softmax(scale * x) over each row, with max subtraction. A row that is all
// -inf becomes uniform.
func (c *Ctx) Softmax(x Tensor, scale float32) Tensor {
	return c.mapRows("Softmax", x, rowJob{kind: rowSoftmax, alpha: scale})
}

// LogSoftmax is log(softmax(x)) over each row, computed as x - max - log(sum exp(x -
// max)) (beam search scores).
func (c *Ctx) LogSoftmax(x Tensor) Tensor {
	return c.mapRows("LogSoftmax", x, rowJob{kind: rowLogSoftmax, alpha: 1})
}

// Activation applies act elementwise.
func (c *Ctx) Activation(x Tensor, act Epilogue) Tensor {
	return c.mapRows("Activation", x, rowJob{kind: rowAct, act: kernels.Act(act)})
}

// ActivationInPlace applies act to x elementwise, in place.
func (c *Ctx) ActivationInPlace(x Tensor, act Epilogue) {
	x.mustCPU("Activation")
	c.runRows(rowJob{kind: rowAct, x: x.mat(), y: x.mat(), act: kernels.Act(act)})
}

// checkBroadcast validates b against a for Add: same columns, and a's row count a
// multiple of b's (b's rows repeat: a [B*T, C] plus a position table [T, C]).
func checkBroadcast(op string, a, b Tensor) {
	a.mustCPU(op)
	b.mustCPU(op)
	ar, ac := a.Dims2()
	br, bc := b.Dims2()
	if ac != bc || br == 0 || ar%br != 0 {
		panic(fmt.Sprintf("native: %s: %v does not broadcast to %v", op, b.Shape(), a.Shape()))
	}
}

// Add is a + b. b may have fewer rows than a (in the 2-D form) if they divide a's: row r
// of a gets row r mod rows(b) of b.
func (c *Ctx) Add(a, b Tensor) Tensor {
	checkBroadcast("Add", a, b)
	return c.mapRows("Add", a, rowJob{kind: rowAxpby, b: b.mat(), alpha: 1, beta: 1})
}

// AddInPlace is dst += b, with Add's broadcast.
func (c *Ctx) AddInPlace(dst, b Tensor) { c.AddScaledInPlace(dst, b, 1) }

// AddScaledInPlace is dst += s*b, with Add's broadcast (an unmerged LoRA update).
func (c *Ctx) AddScaledInPlace(dst, b Tensor, s float32) {
	checkBroadcast("AddScaledInPlace", dst, b)
	c.runRows(rowJob{kind: rowAxpby, x: dst.mat(), b: b.mat(), y: dst.mat(), alpha: 1, beta: s})
}

// Scale is s*x.
func (c *Ctx) Scale(x Tensor, s float32) Tensor {
	return c.mapRows("Scale", x, rowJob{kind: rowAxpby, alpha: s})
}

// L2Normalize divides each row by its Euclidean norm, floored at 1e-12 like
// torch.nn.functional.normalize (rows with a norm above that, x / ||x|| exactly as CLIP).
func (c *Ctx) L2Normalize(x Tensor) Tensor {
	return c.mapRows("L2Normalize", x, rowJob{kind: rowL2})
}

// Argmax is the column of the largest value in each row of x (the first on ties; a NaN
// counts as the largest, like torch.argmax).
func (c *Ctx) Argmax(x Tensor) []int {
	x.mustCPU("Argmax")
	rows, cols := x.Dims2()
	if rows > 0 && cols == 0 {
		panic("native: Argmax over rows of 0 values")
	}
	idx := make([]int64, rows)
	c.runRows(rowJob{kind: rowArgmax, x: x.mat(), idx: idx})
	out := make([]int, rows)
	for i, v := range idx {
		out[i] = int(v)
	}
	return out
}

type im2colJob struct {
	set                *kernels.Set
	img, out           []float32
	b, ch, h, w, patch int
}

func (j *im2colJob) run(ith, nth int, _ []float32) error {
	return j.set.Im2col(j.img, j.b, j.ch, j.h, j.w, j.patch, j.out, ith, nth)
}

// PatchEmbed is a ViT patch embedding, a conv with kernel = stride = patch and no
// padding, as im2col + GEMM: img [B, C, H, W] (contiguous), w [width, C*patch*patch] (the
// conv weight [width, C, patch, patch] flattened), bias [width] or nil. The result is
// [B*gh*gw, width] with gh = H/patch, gw = W/patch, patches in row-major order (y, then
// x) per image: torch's conv(img).flatten(2).transpose(1, 2).
func (c *Ctx) PatchEmbed(img Tensor, w *Matrix, bias []float32, patch int) Tensor {
	img.mustCPU("PatchEmbed")
	if img.Rank() != 4 || patch < 1 {
		panic(fmt.Sprintf("native: PatchEmbed: image %v, patch %d: want [B, C, H, W]", img.Shape(), patch))
	}
	b, ch, h, wd := img.Dim(0), img.Dim(1), img.Dim(2), img.Dim(3)
	if h < patch || wd < patch || w.K() != ch*patch*patch {
		panic(fmt.Sprintf("native: PatchEmbed: image %v, patch %d, W [%d, %d]", img.Shape(), patch, w.N(), w.K()))
	}
	cols := c.Alloc(b*(h/patch)*(wd/patch), ch*patch*patch)
	c.im2col = im2colJob{set: c.set, img: img.F32(), out: cols.data, b: b, ch: ch, h: h, w: wd, patch: patch}
	c.run(&c.im2col)
	c.im2col = im2colJob{}
	return c.Linear(cols, w, bias, None, Tensor{})
}

type gatherJob struct {
	set *kernels.Set
	w   *kernels.Weights
	ids []int32
	out kernels.Mat
}

func (j *gatherJob) run(ith, nth int, _ []float32) error {
	return j.set.GatherRows(j.w, j.ids, j.out, ith, nth)
}

// Gather returns the rows ids of table, dequantized: [len(ids), K] (embedding lookup;
// the same Matrix can serve as a tied output projection in Linear). The rows are read
// from the Matrix's one copy, its panels (see Matrix), exactly.
func (c *Ctx) Gather(table *Matrix, ids []int32) Tensor {
	for _, id := range ids {
		if id < 0 || int(id) >= table.N() {
			panic(fmt.Sprintf("native: Gather: id %d outside a table of %d rows", id, table.N()))
		}
	}
	out := c.Alloc(len(ids), table.K())
	c.gather = gatherJob{set: c.set, w: table.host, ids: ids, out: out.mat()}
	c.run(&c.gather)
	c.gather = gatherJob{}
	return out
}

// GatherRows returns the rows ids of an f32 table (any rank: its 2-D form).
func (c *Ctx) GatherRows(table Tensor, ids []int32) Tensor {
	table.mustCPU("GatherRows")
	rows, cols := table.Dims2()
	out := c.Alloc(len(ids), cols)
	for i, id := range ids {
		if id < 0 || int(id) >= rows {
			panic(fmt.Sprintf("native: GatherRows: id %d outside a table of %d rows", id, rows))
		}
		copy(out.Row(i), table.Row(int(id)))
	}
	return out
}

// TopK returns the k largest values of row and their indices, largest first (ties: the
// lower index first; NaN is ignored). k is capped at len(row).
func (c *Ctx) TopK(row []float32, k int) ([]int, []float32) {
	if k > len(row) {
		k = len(row)
	}
	if k <= 0 {
		return nil, nil
	}
	// a min-heap of the best k so far, worst at the root
	idx := make([]int, 0, k)
	less := func(a, b int) bool { // a ranks below b
		if row[a] != row[b] {
			return row[a] < row[b]
		}
		return a > b
	}
	down := func(i int) {
		for {
			l, s := 2*i+1, i
			if l < len(idx) && less(idx[l], idx[s]) {
				s = l
			}
			if l+1 < len(idx) && less(idx[l+1], idx[s]) {
				s = l + 1
			}
			if s == i {
				return
			}
			idx[i], idx[s] = idx[s], idx[i]
			i = s
		}
	}
	for i, v := range row {
		if v != v {
			continue
		}
		if len(idx) < k {
			idx = append(idx, i)
			for j := len(idx) - 1; j > 0 && less(idx[j], idx[(j-1)/2]); j = (j - 1) / 2 {
				idx[j], idx[(j-1)/2] = idx[(j-1)/2], idx[j]
			}
		} else if less(idx[0], i) {
			idx[0] = i
			down(0)
		}
	}
	// pop worst-first into the back of the result
	out := make([]int, len(idx))
	for n := len(idx) - 1; n >= 0; n-- {
		out[n] = idx[0]
		idx[0] = idx[len(idx)-1]
		idx = idx[:len(idx)-1]
		down(0)
	}
	vals := make([]float32, len(out))
	for i, j := range out {
		vals[i] = row[j]
	}
	return out, vals
}
