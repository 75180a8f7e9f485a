package native

import (
	"fmt"

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
	return a.buf != nil && a.buf == b.buf && a.off == b.off && ar == br && ac == bc && a.ld == b.ld
}

// overlap reports whether a and b share any storage.
func overlap(a, b Tensor) bool {
	if a.buf == nil || a.buf != b.buf || a.Empty() || b.Empty() {
		return false
	}
	return a.off < b.off+b.span() && b.off < a.off+a.span()
}

func sameShape2(op string, a, b Tensor) {
	ar, ac := a.Dims2()
	br, bc := b.Dims2()
	if ar != br || ac != bc {
		panic(fmt.Sprintf("native: %s: shapes %v and %v differ", op, a.Shape(), b.Shape()))
	}
}

// vector checks that v is empty or a vector of n values (a bias, a norm's weight).
func vector(op, name string, v Tensor, n int) {
	if !v.Empty() && (v.Numel() != n || !v.Contiguous()) {
		panic(fmt.Sprintf("native: %s: %s %v for %d columns", op, name, v.Shape(), n))
	}
}

// Linear is y = act(x W^T + bias) + residual: x [.., K] onto y [.., N] (x's leading
// dimensions kept). bias is a vector of N values or the empty Tensor{}; residual is
// [.., N] or empty, and is added after the activation. The bias, activation and
// residual are fused into the GEMM's store.
func (c *Ctx) Linear(x Tensor, w *Matrix, bias Tensor, act Epilogue, residual Tensor) Tensor {
	y := c.allocLike(x, w.N())
	c.LinearInto(y, x, w, bias, act, residual)
	return y
}

// LinearInto is Linear writing into dst (any view of the output's 2-D shape). dst may be
// the residual itself (x = x + f(x) W^T in place); it must not overlap x.
func (c *Ctx) LinearInto(dst, x Tensor, w *Matrix, bias Tensor, act Epilogue, residual Tensor) {
	c.live("Linear")
	c.onDevice("Linear", dst, x, bias, residual)
	w.mustOn(c.dev, "Linear")
	rows, k := x.Dims2()
	dr, dc := dst.Dims2()
	if k != w.K() || dr != rows || dc != w.N() {
		panic(fmt.Sprintf("native: Linear: x %v, W [%d, %d], dst %v", x.Shape(), w.N(), w.K(), dst.Shape()))
	}
	vector("Linear", "bias", bias, w.N())
	if overlap(dst, x) {
		panic(fmt.Sprintf("native: Linear: dst %v overlaps x %v", dst.Shape(), x.Shape()))
	}
	if !residual.Empty() {
		if rr, rc := residual.Dims2(); rr != rows || rc != w.N() {
			panic(fmt.Sprintf("native: Linear: residual %v for output [%d, %d]", residual.Shape(), rows, w.N()))
		}
		if overlap(dst, residual) && !sameView(dst, residual) {
			panic(fmt.Sprintf("native: Linear: dst %v partly overlaps the residual", dst.Shape()))
		}
		if act != None && sameView(dst, residual) {
			// the kernel adds the residual after the activation, at the end of the K
			// loop, so it cannot accumulate into it: go through a temporary
			m := c.Mark()
			tmp := c.Alloc(rows, w.N())
			c.x.linear(tmp, x, w, bias, act, residual)
			c.x.copy(dst, tmp)
			c.Release(m)
			return
		}
	}
	c.x.linear(dst, x, w, bias, act, residual)
}

// LayerNorm normalises each row of x (torch.nn.LayerNorm: biased variance, eps inside
// the square root); gamma and beta are vectors of one value per column, or empty (1
// and 0).
func (c *Ctx) LayerNorm(x Tensor, gamma, beta Tensor, eps float32) Tensor {
	_, cols := x.Dims2()
	y := c.allocLike(x, cols)
	c.LayerNormInto(y, x, gamma, beta, eps)
	return y
}

// LayerNormInto is LayerNorm writing into dst, which may be x itself.
func (c *Ctx) LayerNormInto(dst, x Tensor, gamma, beta Tensor, eps float32) {
	c.live("LayerNorm")
	c.onDevice("LayerNorm", dst, x, gamma, beta)
	sameShape2("LayerNorm", dst, x)
	_, cols := x.Dims2()
	vector("LayerNorm", "gamma", gamma, cols)
	vector("LayerNorm", "beta", beta, cols)
	c.checkInPlace("LayerNorm", dst, x)
	c.x.layerNorm(dst, x, gamma, beta, eps)
}

// checkInPlace allows dst to be x itself or apart from it, never a partial overlap.
func (c *Ctx) checkInPlace(op string, dst, x Tensor) {
	if overlap(dst, x) && !sameView(dst, x) {
		panic(fmt.Sprintf("native: %s: output %v partly overlaps the input", op, dst.Shape()))
	}
}

// mapRows allocates the result of a row op on x, shaped like x.
func (c *Ctx) mapRows(op string, x Tensor) Tensor {
	c.live(op)
	c.onDevice(op, x)
	_, cols := x.Dims2()
	return c.allocLike(x, cols)
}

// Softmax is softmax(scale * x) over each row, with max subtraction. A row that is all
// -inf becomes uniform.
func (c *Ctx) Softmax(x Tensor, scale float32) Tensor {
	y := c.mapRows("Softmax", x)
	c.rowsNonEmpty("Softmax", x)
	c.x.softmax(y, x, scale, false)
	return y
}

// LogSoftmax is log(softmax(x)) over each row, computed as x - max - log(sum exp(x -
// max)) (beam search scores).
func (c *Ctx) LogSoftmax(x Tensor) Tensor {
	y := c.mapRows("LogSoftmax", x)
	c.rowsNonEmpty("LogSoftmax", x)
	c.x.softmax(y, x, 1, true)
	return y
}

func (c *Ctx) rowsNonEmpty(op string, x Tensor) {
	if rows, cols := x.Dims2(); rows > 0 && cols == 0 {
		panic(fmt.Sprintf("native: %s over rows of 0 values", op))
	}
}

// Activation applies act elementwise.
func (c *Ctx) Activation(x Tensor, act Epilogue) Tensor {
	y := c.mapRows("Activation", x)
	c.x.activation(y, x, act)
	return y
}

// ActivationInPlace applies act to x elementwise, in place.
func (c *Ctx) ActivationInPlace(x Tensor, act Epilogue) {
	c.live("Activation")
	c.onDevice("Activation", x)
	c.x.activation(x, x, act)
}

// checkBroadcast validates b against a for Add: same columns, and a's row count a
// multiple of b's (b's rows repeat: a [B*T, C] plus a position table [T, C]).
func checkBroadcast(op string, a, b Tensor) {
	ar, ac := a.Dims2()
	br, bc := b.Dims2()
	if ac != bc || br == 0 || ar%br != 0 {
		panic(fmt.Sprintf("native: %s: %v does not broadcast to %v", op, b.Shape(), a.Shape()))
	}
}

// Add is a + b. b may have fewer rows than a (in the 2-D form) if they divide a's: row r
// of a gets row r mod rows(b) of b.
func (c *Ctx) Add(a, b Tensor) Tensor {
	y := c.mapRows("Add", a)
	c.onDevice("Add", b)
	checkBroadcast("Add", a, b)
	c.x.axpby(y, a, 1, b, 1)
	return y
}

// AddInPlace is dst += b, with Add's broadcast.
func (c *Ctx) AddInPlace(dst, b Tensor) { c.AddScaledInPlace(dst, b, 1) }

// AddScaledInPlace is dst += s*b, with Add's broadcast (an unmerged LoRA update).
func (c *Ctx) AddScaledInPlace(dst, b Tensor, s float32) {
	c.live("AddScaledInPlace")
	c.onDevice("AddScaledInPlace", dst, b)
	checkBroadcast("AddScaledInPlace", dst, b)
	c.checkInPlace("AddScaledInPlace", dst, b)
	c.x.axpby(dst, dst, 1, b, s)
}

// L2Normalize divides each row by its Euclidean norm, floored at 1e-12 like
// torch.nn.functional.normalize (rows with a norm above that, x / ||x|| exactly as CLIP).
func (c *Ctx) L2Normalize(x Tensor) Tensor {
	y := c.mapRows("L2Normalize", x)
	c.x.l2Normalize(y, x)
	return y
}

// Argmax is the column of the largest value in each row of x (the first on ties; a NaN
// counts as the largest, like torch.argmax), on the host: it waits for x.
func (c *Ctx) Argmax(x Tensor) []int {
	c.live("Argmax")
	c.onDevice("Argmax", x)
	c.rowsNonEmpty("Argmax", x)
	rows, _ := x.Dims2()
	c.idBuf = append(c.idBuf[:0], make([]int64, rows)...)
	c.x.argmax(x, c.idBuf)
	out := make([]int, rows)
	for i, v := range c.idBuf {
		out[i] = int(v)
	}
	return out
}

// TopK returns, for each row of x, its k largest values and their columns, largest
// first (ties: the lower column first; NaN is ignored), on the host: it waits for x. k is
// capped at the row length.
func (c *Ctx) TopK(x Tensor, k int) (idx [][]int32, vals [][]float32) {
	c.live("TopK")
	c.onDevice("TopK", x)
	rows, cols := x.Dims2()
	k = min(max(k, 0), cols)
	idx, vals = make([][]int32, rows), make([][]float32, rows)
	for r := range idx {
		idx[r], vals[r] = make([]int32, 0, k), make([]float32, 0, k)
	}
	c.x.topK(x, k, idx, vals)
	return idx, vals
}

// topKRow appends the k largest values of row (NaN ignored, ties: lower index first),
// largest first, to idx and vals.
func topKRow(row []float32, k int, idx []int32, vals []float32) ([]int32, []float32) {
	if k <= 0 {
		return idx, vals
	}
	// a min-heap of the best k so far, worst at the root
	heap := make([]int, 0, k)
	less := func(a, b int) bool { // a ranks below b
		if row[a] != row[b] {
			return row[a] < row[b]
		}
		return a > b
	}
	down := func(i int) {
		for {
			l, s := 2*i+1, i
			if l < len(heap) && less(heap[l], heap[s]) {
				s = l
			}
			if l+1 < len(heap) && less(heap[l+1], heap[s]) {
				s = l + 1
			}
			if s == i {
				return
			}
			heap[i], heap[s] = heap[s], heap[i]
			i = s
		}
	}
	for i, v := range row {
		if v != v {
			continue
		}
		if len(heap) < k {
			heap = append(heap, i)
			for j := len(heap) - 1; j > 0 && less(heap[j], heap[(j-1)/2]); j = (j - 1) / 2 {
				heap[j], heap[(j-1)/2] = heap[(j-1)/2], heap[j]
			}
		} else if less(heap[0], i) {
			heap[0] = i
			down(0)
		}
	}
	// pop worst-first into the back of the result
	out := make([]int, len(heap))
	for n := len(heap) - 1; n >= 0; n-- {
		out[n] = heap[0]
		heap[0] = heap[len(heap)-1]
		heap = heap[:len(heap)-1]
		down(0)
	}
	for _, j := range out {
		idx = append(idx, int32(j))
		vals = append(vals, row[j])
	}
	return idx, vals
}

// PatchEmbed is a ViT patch embedding, a conv with kernel = stride = patch and no
// padding, as im2col + GEMM: img [B, C, H, W] (contiguous), w [width, C*patch*patch] (the
// conv weight [width, C, patch, patch] flattened), bias [width] or empty. The result is
// [B*gh*gw, width] with gh = H/patch, gw = W/patch, patches in row-major order (y, then
// x) per image: torch's conv(img).flatten(2).transpose(1, 2).
func (c *Ctx) PatchEmbed(img Tensor, w *Matrix, bias Tensor, patch int) Tensor {
	c.live("PatchEmbed")
	c.onDevice("PatchEmbed", img, bias)
	if img.Rank() != 4 || patch < 1 || !img.Contiguous() {
		panic(fmt.Sprintf("native: PatchEmbed: image %v, patch %d: want [B, C, H, W]", img.Shape(), patch))
	}
	b, ch, h, wd := img.Dim(0), img.Dim(1), img.Dim(2), img.Dim(3)
	if h < patch || wd < patch || w.K() != ch*patch*patch {
		panic(fmt.Sprintf("native: PatchEmbed: image %v, patch %d, W [%d, %d]", img.Shape(), patch, w.N(), w.K()))
	}
	// the patch rows stay in the arena beside the result until the caller's Release
	cols := c.Alloc(b*(h/patch)*(wd/patch), ch*patch*patch)
	c.x.im2col(cols, img, patch)
	return c.Linear(cols, w, bias, None, Tensor{})
}

// Gather returns the rows ids of table, dequantized: [len(ids), K] (embedding lookup;
// the same Matrix can serve as a tied output projection in Linear).
func (c *Ctx) Gather(table *Matrix, ids []int32) Tensor {
	c.live("Gather")
	table.mustOn(c.dev, "Gather")
	for _, id := range ids {
		if id < 0 || int(id) >= table.N() {
			panic(fmt.Sprintf("native: Gather: id %d outside a table of %d rows", id, table.N()))
		}
	}
	out := c.Alloc(len(ids), table.K())
	if len(ids) > 0 {
		c.x.gather(out, table, ids)
	}
	return out
}

// GatherRows returns the rows ids of an f32 table (any rank: its 2-D form): [len(ids),
// cols].
func (c *Ctx) GatherRows(table Tensor, ids []int32) Tensor {
	c.live("GatherRows")
	c.onDevice("GatherRows", table)
	rows, cols := table.Dims2()
	for _, id := range ids {
		if id < 0 || int(id) >= rows {
			panic(fmt.Sprintf("native: GatherRows: id %d outside a table of %d rows", id, rows))
		}
	}
	out := c.Alloc(len(ids), cols)
	if len(ids) > 0 && cols > 0 {
		c.x.gatherRows(out, table, ids)
	}
	return out
}

// Copy copies src into dst: the same 2-D shape, views allowed, no overlap. It is how
// rows move inside a forward pass (a class token before the patches, a prompt after
// the image queries).
func (c *Ctx) Copy(dst, src Tensor) {
	c.live("Copy")
	c.onDevice("Copy", dst, src)
	sameShape2("Copy", dst, src)
	if overlap(dst, src) {
		panic(fmt.Sprintf("native: Copy: %v overlaps its source", dst.Shape()))
	}
	if !dst.Empty() {
		c.x.copy(dst, src)
	}
}

// Zero sets every element of t (any view) to 0.
func (c *Ctx) Zero(t Tensor) {
	c.live("Zero")
	c.onDevice("Zero", t)
	if !t.Empty() {
		c.x.zero(t)
	}
}

// Repeat stacks n copies of x's rows: [n*rows, cols] (one set of learned query tokens
// per image).
func (c *Ctx) Repeat(x Tensor, n int) Tensor {
	c.live("Repeat")
	c.onDevice("Repeat", x)
	rows, cols := x.Dims2()
	if n < 0 {
		panic(fmt.Sprintf("native: Repeat %d times", n))
	}
	out := c.Alloc(n*rows, cols)
	for i := 0; i < n && rows > 0; i++ {
		c.x.copy(out.Rows(i*rows, (i+1)*rows), x)
	}
	return out
}

// flatIndices checks that every index lies in x (a contiguous tensor).
func flatIndices(op string, x Tensor, at []int32) {
	if !x.Contiguous() {
		panic(fmt.Sprintf("native: %s of a strided view %v", op, x.Shape()))
	}
	n := x.Numel()
	for _, i := range at {
		if i < 0 || int(i) >= n {
			panic(fmt.Sprintf("native: %s: index %d outside %v", op, i, x.Shape()))
		}
	}
}

// FillAt sets the elements at flat indices at (row*cols + col of x's 2-D form) to v
// (tokens a logits processor bans get -inf).
func (c *Ctx) FillAt(x Tensor, at []int32, v float32) {
	c.live("FillAt")
	c.onDevice("FillAt", x)
	flatIndices("FillAt", x, at)
	if len(at) > 0 {
		c.x.fillAt(x, at, v)
	}
}

// PenalizeAt applies transformers' repetition penalty to the elements at flat indices
// at: a negative score is multiplied by p, any other divided by it. Indices must be
// distinct.
func (c *Ctx) PenalizeAt(x Tensor, at []int32, p float32) {
	c.live("PenalizeAt")
	c.onDevice("PenalizeAt", x)
	flatIndices("PenalizeAt", x, at)
	if len(at) > 0 {
		c.x.penalizeAt(x, at, p)
	}
}
