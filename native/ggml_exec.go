package native

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"

	"synth/native/ggml"
)

// The ggml executor: every op of the ops API recorded as ggml graph nodes and computed
// by a ggml backend device (ggml's CPU device, a GPU of a loaded module).
//
// Memory is planned by native, not by ggml: activations live in the Ctx's arena on the
// device, weights and KV caches in their own device buffers, and every node is given
// its memory when it is recorded (an op's result at its destination tensor, its
// intermediates in the executor's scratch). Nodes run in the order recorded, so the
// ops see memory exactly as the cpu executor's, which runs each op at once: a result is
// written before a later op reads it, and memory an arena Release gives back is only
// reused by ops recorded after the ones that read it.
//
// The graph is computed at sync points: when the host needs data (ToHost, Argmax,
// TopK), when a Release frees device memory, and when the graph is full. Host inputs of
// ops (ids, masks, values) are written at once to a staging buffer that is only reused
// after the graph that reads them has run.
//
// Differences from the cpu kernels, each covered by the op tests' stated tolerances:
//   - GEMMs follow the device's kernels: ggml's CPU device rounds activations to the
//     weights' vec_dot_type (f16, bf16, q8_0 blocks) before multiplying;
//   - LogSoftmax is log(softmax(x)), which is -inf where softmax underflows (below
//     ~1e-38, far below any token a search keeps);
//   - an F16 KV cache is widened to f32 before attention (as the cpu kernels read it);
//   - ggml's CPU device computes GELU (tanh) and QuickGELU from f16 tables, so on that
//     device they are composed from exact ops instead;
//   - Argmax breaks ties as the device's kernel does (the CPU device takes the last
//     maximum, CUDA any) and never picks a NaN (the cpu kernels follow torch.argmax:
//     the first maximum, NaN largest); float logits do not tie in practice;
//   - TopK and sampling read the logits on the host (a row of the vocabulary per
//     sequence per step; greedy search picks on the device).

type gdevice struct{ d *ggml.Device }

type gbuf struct{ b *ggml.Buffer }

type gmat struct {
	b   *ggml.Buffer
	typ ggml.Type
}

type gkv struct{ k, v *ggml.Buffer }

// OutOfMemory is what an op panics with when its device cannot hold the memory it needs
// (the arena growing, a scratch buffer): drivers recover it into an error that suggests
// a smaller batch (see Recover).
type OutOfMemory struct{ Err error }

func (e OutOfMemory) Error() string { return e.Err.Error() }
func (e OutOfMemory) Unwrap() error { return e.Err }

// Recover turns an OutOfMemory panic of the ops into *err; other panics go on. Use it
// as `defer native.Recover(&err)` in functions that run a forward pass for a caller.
func Recover(err *error) {
	if r := recover(); r != nil {
		if oom, ok := r.(OutOfMemory); ok {
			*err = fmt.Errorf("%w (a smaller --batch needs less)", oom.Err)
			return
		}
		panic(r)
	}
}

func ggmlDevices() []DeviceInfo {
	var out []DeviceInfo
	for _, d := range ggml.Devices() {
		free, total := d.Memory()
		out = append(out, DeviceInfo{Name: "ggml:" + d.Name, Description: d.Description, GPU: d.GPU, MemoryFree: free, MemoryTotal: total})
	}
	return out
}

func openGGML(name string) (*gdevice, error) {
	d, err := ggml.OpenDevice(name)
	if err != nil {
		return nil, err
	}
	return &gdevice{d: d}, nil
}

func (g *gdevice) alloc(bytes int) *ggml.Buffer {
	b, err := g.d.Alloc(bytes)
	if err != nil {
		panic(OutOfMemory{err})
	}
	return b
}

func (g *gdevice) newBuffer(d *Device, n int) *Buffer {
	b := g.alloc(4 * n)
	b.Clear(0)
	return &Buffer{dev: d, n: n, g: gbuf{b}}
}

func (g *gdevice) write(t Tensor, data []float32) { t.buf.g.b.Write(4*t.off, f32Bytes(data)) }

func (g *gdevice) freeBuffer(b *Buffer) { b.g.b.Free() }

func (g *gdevice) newKV(rows, width int, dt DType) gkv {
	es := 4
	if dt == F16 {
		es = 2
	}
	kv := gkv{k: g.alloc(rows * width * es), v: g.alloc(rows * width * es)}
	kv.k.Clear(0)
	kv.v.Clear(0)
	return kv
}

func (g *gdevice) freeKV(kv gkv) { kv.k.Free(); kv.v.Free() }

var ggmlTypes = map[DType]ggml.Type{F32: ggml.F32, F16: ggml.F16, BF16: ggml.BF16, Q8_0: ggml.Q8_0, Q4_0: ggml.Q4_0}

func (g *gdevice) newMatrix(dt DType, raw []byte, n, k int) (gmat, error) {
	typ, ok := ggmlTypes[dt]
	if !ok {
		return gmat{}, fmt.Errorf("native: %s weights on %s: no ggml type", dt, g.d.Name)
	}
	b, err := g.d.Alloc(max(g.d.AllocSize(typ, k, n), len(raw)))
	if err != nil {
		return gmat{}, fmt.Errorf("native: weights [%d, %d] %s: %w", n, k, dt, err)
	}
	b.Clear(0)
	b.Write(0, raw)
	return gmat{b: b, typ: typ}, nil
}

func (g *gdevice) readMatrix(m *Matrix) []byte {
	raw := make([]byte, m.n*m.dt.RowBytes(m.k))
	m.g.b.Read(0, raw)
	return raw
}

func (g *gdevice) freeMatrix(m *Matrix) {
	if m.g.b != nil {
		m.g.b.Free()
	}
}

func (g *gdevice) newExec(d *Device, threads int) (executor, error) {
	be, err := g.d.NewBackend(threads)
	if err != nil {
		return nil, err
	}
	return &ggmlExec{dev: d, g: g, be: be, graph: be.NewGraph(graphTensors, graphNodes), nthreads: threads}, nil
}

// A graph holds up to graphNodes ops (a decoding step of a 32-layer decoder is ~500,
// an EVA encoder pass ~800) before it is computed.
const (
	graphNodes   = 16384
	graphTensors = 4 * graphNodes
)

type ggmlExec struct {
	dev      *Device
	g        *gdevice
	be       *ggml.Backend
	graph    *ggml.Graph
	nthreads int

	// staging: host inputs of the ops recorded since the last compute, written at once
	stage     *ggml.Buffer
	stageUsed int
	// scratch: one op's intermediates (ops run one after another, so each op reuses it
	// from the start); retired: scratch outgrown while its graph was pending
	scratch     *ggml.Buffer
	scratchUsed int
	retired     []*ggml.Buffer
}

func (x *ggmlExec) threads() int    { return x.nthreads }
func (x *ggmlExec) variant() string { return x.dev.name }

func (x *ggmlExec) close() {
	x.sync()
	x.graph.Free()
	for _, b := range append(x.retired, x.stage, x.scratch) {
		if b != nil {
			b.Free()
		}
	}
	x.be.Close()
}

func (x *ggmlExec) sync() {
	if err := x.graph.Compute(); err != nil {
		panic(fmt.Sprintf("native: %v", err))
	}
	x.stageUsed, x.scratchUsed = 0, 0
	for _, b := range x.retired {
		b.Free()
	}
	x.retired = nil
}

const gAlign = 256 // bytes: every staging and scratch block starts on it

func alignUp(n int) int { return (n + gAlign - 1) &^ (gAlign - 1) }

// begin starts an op that records about nodes nodes, needs scratch bytes of
// intermediates and stages stage bytes of host inputs (each staged block rounded up
// to gAlign: count blocks with alignUp). It computes the pending graph first when the
// op would not fit: never later, since computing resets the graph and every tensor
// made for the op so far.
func (x *ggmlExec) begin(nodes, scratch, stage int) {
	if !x.graph.Room(4*nodes) || (x.stage != nil && x.stageUsed+stage > x.stage.Size()) {
		x.sync()
	}
	if x.stage == nil || stage > x.stage.Size() {
		x.sync()
		if x.stage != nil {
			x.stage.Free()
		}
		x.stage = x.g.alloc(max(2*stage, 1<<20))
	}
	x.scratchUsed = 0
	if x.scratch == nil || x.scratch.Size() < scratch {
		if x.scratch != nil {
			x.retired = append(x.retired, x.scratch) // pending ops may still read it
		}
		x.scratch = x.g.alloc(max(scratch, 2*sizeOr0(x.scratch), 1<<20))
	}
}

func sizeOr0(b *ggml.Buffer) int {
	if b == nil {
		return 0
	}
	return b.Size()
}

// tmp places op node in the op's scratch and records it.
func (x *ggmlExec) tmp(node ggml.T) ggml.T {
	return x.graph.Place(node, x.scratch, x.scratchAt(node))
}

// tmpLeaf places an input tensor (not an op) in the op's scratch.
func (x *ggmlExec) tmpLeaf(t ggml.T) ggml.T {
	return x.graph.PlaceLeaf(t, x.scratch, x.scratchAt(t))
}

// scratchAt takes room for t in the op's scratch and says where.
func (x *ggmlExec) scratchAt(t ggml.T) int {
	n := alignUp(t.Bytes())
	if x.scratchUsed+n > x.scratch.Size() {
		panic(fmt.Sprintf("native: ggml op scratch of %d bytes overflows (%d used of %d): the op's estimate is wrong", n, x.scratchUsed, x.scratch.Size()))
	}
	off := x.scratchUsed
	x.scratchUsed += n
	return off
}

// stageBytes writes host bytes to the staging buffer (room taken by begin) and returns
// where.
func (x *ggmlExec) stageBytes(data []byte) (*ggml.Buffer, int) {
	n := alignUp(len(data))
	if x.stageUsed+n > x.stage.Size() {
		panic(fmt.Sprintf("native: ggml op staging of %d bytes overflows (%d used of %d): the op's estimate is wrong", n, x.stageUsed, x.stage.Size()))
	}
	off := x.stageUsed
	x.stageUsed += n
	x.stage.Write(off, data)
	return x.stage, off
}

// stageF32, stageI32, stageI64 stage host values as a 2-D leaf [cols, rows] (ggml's
// order: cols fastest).
func (x *ggmlExec) stageF32(v []float32, cols, rows int) ggml.T {
	b, off := x.stageBytes(f32Bytes(v))
	return x.graph.At(b, off, ggml.F32, [4]int64{int64(cols), int64(rows), 1, 1}, contig(4, cols, rows))
}

func (x *ggmlExec) stageI32(v []int32) ggml.T {
	raw := make([]byte, 4*len(v))
	for i, id := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], uint32(id))
	}
	b, off := x.stageBytes(raw)
	return x.graph.At(b, off, ggml.I32, [4]int64{int64(len(v)), 1, 1, 1}, contig(4, len(v), 1))
}

func (x *ggmlExec) stageI64(v []int64) ggml.T {
	raw := make([]byte, 8*len(v))
	for i, id := range v {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(id))
	}
	b, off := x.stageBytes(raw)
	return x.graph.At(b, off, ggml.I64, [4]int64{int64(len(v)), 1, 1, 1}, contig(8, len(v), 1))
}

func contig(es, cols, rows int) [4]int64 {
	return [4]int64{int64(es), int64(es * cols), int64(es * cols * rows), int64(es * cols * rows)}
}

func f32Bytes(v []float32) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
}

// leaf is t's 2-D form as a ggml tensor [cols, rows] (row stride ld).
func (x *ggmlExec) leaf(t Tensor) ggml.T {
	rows, cols := t.Dims2()
	return x.graph.At(t.buf.g.b, 4*t.off, ggml.F32, [4]int64{int64(cols), int64(rows), 1, 1},
		[4]int64{4, int64(4 * t.ld), int64(4 * t.ld * rows), int64(4 * t.ld * rows)})
}

// leaf4 is t (contiguous, or rows of stride ld) viewed as [d0, d1, d2, d3] with the
// given byte strides, starting at t's first element.
func (x *ggmlExec) leaf4(t Tensor, ne [4]int64, nb [4]int64) ggml.T {
	return x.graph.At(t.buf.g.b, 4*t.off, ggml.F32, ne, nb)
}

func (x *ggmlExec) matLeaf(m *Matrix) ggml.T {
	rb := int64(m.dt.RowBytes(m.k))
	n := int64(m.n)
	return x.graph.At(m.g.b, 0, m.g.typ, [4]int64{int64(m.k), n, 1, 1}, [4]int64{int64(ggml.TypeSize(m.g.typ)), rb, rb * n, rb * n})
}

// put records node as the op writing dst: placed at dst when dst is contiguous, else
// computed in scratch and copied into the view.
func (x *ggmlExec) put(node ggml.T, dst Tensor) {
	if dst.Contiguous() {
		x.graph.Place(node, dst.buf.g.b, 4*dst.off)
		return
	}
	x.graph.Record(x.graph.Cpy(x.tmp(node), x.leaf(dst)))
}

// chain records a sequence of elementwise steps from node: every step but the last in
// scratch, the last at dst.
func (x *ggmlExec) chain(dst Tensor, node ggml.T, steps ...func(ggml.T) ggml.T) {
	for _, s := range steps {
		node = s(x.tmp(node))
	}
	x.put(node, dst)
}

// act is the steps of an epilogue (none: no step).
func (x *ggmlExec) act(e Epilogue) []func(ggml.T) ggml.T {
	g := x.graph
	switch e {
	case GELU:
		return []func(ggml.T) ggml.T{g.GELUErf}
	case ReLU:
		return []func(ggml.T) ggml.T{g.ReLU}
	case QuickGELU:
		if x.g.d.CPU() { // x sigmoid(1.702 x), exact
			var in ggml.T
			return []func(ggml.T) ggml.T{
				func(t ggml.T) ggml.T { in = t; return g.Scale(t, 1.702) },
				g.Sigmoid,
				func(s ggml.T) ggml.T { return g.Mul(in, s) },
			}
		}
		return []func(ggml.T) ggml.T{g.GELUQuick}
	case GELUTanh:
		if x.g.d.CPU() { // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), exact
			var in, th ggml.T
			return []func(ggml.T) ggml.T{
				func(t ggml.T) ggml.T { in = t; return g.Mul(t, t) },
				func(t2 ggml.T) ggml.T { return g.Mul(t2, in) },
				func(t3 ggml.T) ggml.T { return g.Scale(t3, 0.044715) },
				func(c ggml.T) ggml.T { return g.Add(in, c) },
				func(a ggml.T) ggml.T { return g.Scale(a, float32(math.Sqrt(2/math.Pi))) },
				g.Tanh,
				func(t ggml.T) ggml.T { th = t; return g.Mul(in, th) },
				func(xt ggml.T) ggml.T { return g.Add(in, xt) },
				func(s ggml.T) ggml.T { return g.Scale(s, 0.5) },
			}
		}
		return []func(ggml.T) ggml.T{g.GELU}
	}
	return nil
}

func (x *ggmlExec) upload(dst Tensor, src []float32) {
	rows, cols := dst.Dims2()
	x.begin(2, 0, alignUp(4*len(src)))
	x.graph.Record(x.graph.Cpy(x.stageF32(src, cols, rows), x.leaf(dst)))
}

func (x *ggmlExec) download(dst []float32, src Tensor) {
	x.sync()
	rows, cols := src.Dims2()
	if rows == 0 || cols == 0 {
		return
	}
	if src.Contiguous() {
		src.buf.g.b.Read(4*src.off, f32Bytes(dst[:rows*cols]))
		return
	}
	span := make([]float32, src.span())
	src.buf.g.b.Read(4*src.off, f32Bytes(span))
	for r := 0; r < rows; r++ {
		copy(dst[r*cols:(r+1)*cols], span[r*src.ld:r*src.ld+cols])
	}
}

func (x *ggmlExec) linear(dst, in Tensor, w *Matrix, bias Tensor, act Epilogue, res Tensor) {
	rows, _ := in.Dims2()
	steps := x.act(act)
	g := x.graph
	if !bias.Empty() { // leaves are made after begin: it may start a new graph
		steps = append([]func(ggml.T) ggml.T{func(t ggml.T) ggml.T { return g.Add(t, x.leaf(bias)) }}, steps...)
	}
	if !res.Empty() {
		steps = append(steps, func(t ggml.T) ggml.T { return g.Add(t, x.leaf(res)) })
	}
	x.begin(len(steps)+2, (len(steps)+1)*alignUp(4*rows*w.N()), 0)
	y := g.MulMat(x.matLeaf(w), x.leaf(in)) // [N, rows]
	x.chain(dst, y, steps...)
}

func (x *ggmlExec) layerNorm(dst, in, gamma, beta Tensor, eps float32) {
	rows, cols := in.Dims2()
	g := x.graph
	var steps []func(ggml.T) ggml.T
	if !gamma.Empty() {
		steps = append(steps, func(t ggml.T) ggml.T { return g.Mul(t, x.leaf(gamma)) })
	}
	if !beta.Empty() {
		steps = append(steps, func(t ggml.T) ggml.T { return g.Add(t, x.leaf(beta)) })
	}
	x.begin(3, 3*alignUp(4*rows*cols), 0)
	n := g.Norm(x.leaf(in), eps)
	if len(steps) == 0 && overlap(dst, in) {
		// the norm reads whole rows: write it apart, then copy
		x.graph.Record(g.Cpy(x.tmp(n), x.leaf(dst)))
		return
	}
	x.chain(dst, n, steps...)
}

// contiguous is t as a contiguous ggml tensor: t's leaf, or a copy in scratch.
func (x *ggmlExec) contiguous(t Tensor) ggml.T {
	if t.Contiguous() {
		return x.leaf(t)
	}
	return x.tmp(x.graph.Cont(x.leaf(t)))
}

func (x *ggmlExec) softmax(dst, in Tensor, scale float32, log bool) {
	rows, cols := in.Dims2()
	x.begin(4, 3*alignUp(4*rows*cols), 0)
	sm := x.graph.SoftMax(x.contiguous(in), ggml.T{}, scale)
	if log {
		x.chain(dst, sm, x.graph.Log)
		return
	}
	x.put(sm, dst)
}

func (x *ggmlExec) activation(dst, in Tensor, act Epilogue) {
	steps := x.act(act)
	rows, cols := in.Dims2()
	x.begin(len(steps)+2, (len(steps)+1)*alignUp(4*rows*cols), 0)
	if len(steps) == 0 {
		x.copy(dst, in)
		return
	}
	// the first step reads in directly
	first := steps[0](x.leaf(in))
	x.chain(dst, first, steps[1:]...)
}

func (x *ggmlExec) axpby(dst, a Tensor, alpha float32, b Tensor, beta float32) {
	rows, cols := a.Dims2()
	g := x.graph
	x.begin(4, 3*alignUp(4*rows*cols), 0)
	at, bt := x.leaf(a), x.leaf(b)
	if alpha != 1 {
		at = x.tmp(g.Scale(at, alpha))
	}
	if beta != 1 {
		bt = x.tmp(g.Scale(bt, beta))
	}
	x.put(g.Add(at, bt), dst)
}

func (x *ggmlExec) l2Normalize(dst, in Tensor) {
	rows, cols := in.Dims2()
	x.begin(2, 2*alignUp(4*rows*cols), 0)
	x.put(x.graph.L2Norm(x.contiguous(in), 1e-12), dst)
}

func (x *ggmlExec) argmax(in Tensor, out []int64) {
	rows, cols := in.Dims2()
	x.begin(2, alignUp(4*rows*cols)+alignUp(4*rows), 0)
	am := x.graph.Argmax(x.contiguous(in)) // I32 [rows]
	off := x.scratchAt(am)
	x.graph.Place(am, x.scratch, off)
	x.sync()
	raw := make([]byte, 4*rows)
	x.scratch.Read(off, raw)
	for i := range out {
		out[i] = int64(int32(binary.LittleEndian.Uint32(raw[4*i:])))
	}
}

func (x *ggmlExec) topK(in Tensor, k int, idx [][]int32, vals [][]float32) {
	rows, cols := in.Dims2()
	host := make([]float32, rows*cols)
	x.download(host, in)
	for r := 0; r < rows; r++ {
		idx[r], vals[r] = topKRow(host[r*cols:(r+1)*cols], k, idx[r][:0], vals[r][:0])
	}
}

func (x *ggmlExec) im2col(dst, img Tensor, patch int) {
	b, ch, h, w := img.Dim(0), img.Dim(1), img.Dim(2), img.Dim(3)
	g := x.graph
	x.begin(2, alignUp(2*patch*patch*ch), 0)
	kernel := x.tmpLeaf(g.NewTensor(ggml.F16, [4]int64{int64(patch), int64(patch), int64(ch), 1})) // its shape only
	in := x.leaf4(img, [4]int64{int64(w), int64(h), int64(ch), int64(b)}, [4]int64{4, int64(4 * w), int64(4 * w * h), int64(4 * w * h * ch)})
	x.put(g.Im2col(kernel, in, patch, patch), dst)
}

func (x *ggmlExec) gather(dst Tensor, w *Matrix, ids []int32) {
	x.begin(2, 0, alignUp(4*len(ids)))
	idx := x.stageI32(ids)
	x.put(x.graph.GetRows(x.matLeaf(w), idx), dst)
}

func (x *ggmlExec) gatherRows(dst, table Tensor, ids []int32) {
	x.begin(2, 0, alignUp(4*len(ids)))
	idx := x.stageI32(ids)
	x.put(x.graph.GetRows(x.leaf(table), idx), dst)
}

func (x *ggmlExec) copy(dst, src Tensor) {
	x.begin(1, 0, 0)
	x.graph.Record(x.graph.Cpy(x.leaf(src), x.leaf(dst)))
}

func (x *ggmlExec) zero(t Tensor) {
	x.begin(2, 0, 0)
	l := x.leaf(t)
	x.put(x.graph.Fill(l, 0), t)
}

// elems is contiguous t as [1, numel]: one element per row, for row scatters.
func (x *ggmlExec) elems(t Tensor) ggml.T {
	n := int64(t.Numel())
	return x.leaf4(t, [4]int64{1, n, 1, 1}, [4]int64{4, 4, 4 * n, 4 * n})
}

func widen(at []int32) []int64 {
	out := make([]int64, len(at))
	for i, v := range at {
		out[i] = int64(v)
	}
	return out
}

func (x *ggmlExec) fillAt(t Tensor, at []int32, v float32) {
	vals := make([]float32, len(at))
	for i := range vals {
		vals[i] = v
	}
	x.begin(2, 0, alignUp(4*len(at))+alignUp(8*len(at)))
	v4, idx := x.stageF32(vals, 1, len(at)), x.stageI64(widen(at))
	x.graph.Record(x.graph.SetRows(x.elems(t), v4, idx))
}

func (x *ggmlExec) penalizeAt(t Tensor, at []int32, p float32) {
	n := len(at)
	g := x.graph
	x.begin(8, 7*alignUp(4*n), 2*alignUp(4*n)+alignUp(8*n))
	ps := make([]float32, n)
	for i := range ps {
		ps[i] = p
	}
	pt, idx32, idx64 := x.stageF32(ps, 1, n), x.stageI32(at), x.stageI64(widen(at))
	s := x.tmp(g.GetRows(x.elems(t), idx32)) // [1, n]
	pos := x.tmp(g.ReLU(s))
	neg := x.tmp(g.ReLU(x.tmp(g.Neg(s))))
	// s/p where s >= 0, s*p where s < 0: each term exact, the other an exact zero
	r := x.tmp(g.Sub(x.tmp(g.Div(pos, pt)), x.tmp(g.Mul(neg, pt))))
	g.Record(g.SetRows(x.elems(t), r, idx64))
}

func (x *ggmlExec) kvStore(kv *KVCache, layer int, k, v Tensor, dst []int64) {
	x.begin(4, 0, alignUp(8*len(dst)))
	idx := x.stageI64(dst)
	for i, src := range []Tensor{k, v} {
		x.graph.Record(x.graph.SetRows(x.kvLeaf(kv, layer, i), x.leaf(src), idx))
	}
}

// kvLeaf is a cache layer's keys (which 0) or values (1): [width, rows] in its type.
func (x *ggmlExec) kvLeaf(kv *KVCache, layer, which int) ggml.T {
	b := kv.g[layer].k
	if which == 1 {
		b = kv.g[layer].v
	}
	typ, es := ggml.F32, int64(4)
	if kv.dt == F16 {
		typ, es = ggml.F16, 2
	}
	w, rows := int64(kv.width), int64(kv.slots*kv.maxLen)
	return x.graph.At(b, 0, typ, [4]int64{w, rows, 1, 1}, [4]int64{es, es * w, es * w * rows, es * w * rows})
}

func (x *ggmlExec) kvCopy(kv *KVCache, dst, src, n int) {
	es := int64(4)
	if kv.dt == F16 {
		es = 2
	}
	w := int64(kv.width)
	for l := 0; l < kv.layers; l++ {
		for which := 0; which < 2; which++ {
			x.begin(3, 0, 0)
			c := x.kvLeaf(kv, l, which)
			ne := [4]int64{w, int64(n), 1, 1}
			nb := [4]int64{es, es * w, es * w * int64(n), es * w * int64(n)}
			x.graph.Record(x.graph.Cpy(x.graph.View(c, ne, nb, int(es*w)*src), x.graph.View(c, ne, nb, int(es*w)*dst)))
		}
	}
}

// attention runs the sequences in groups that one set of batched ops covers: runs of
// sequences with the same number of queries whose keys are evenly spaced (an encoder
// batch; consecutive cache slots). Each group is
//
//	scores = k q^T [L, nq, H, B]; softmax(scale scores + mask); out = v^T-weighted sum
//
// with L the group's longest key run and an additive mask (-FLT_MAX, so a query that
// sees no key at all gets the uniform average, like HF's finfo.min) for keys past a
// sequence's end, later than a causal query, or padded.
func (x *ggmlExec) attention(o, q Tensor, k, v kvOperand, seq []int64, mask []byte, p AttnParams) {
	const f = 6 // kernels.SeqFields
	n := len(seq) / f
	for s0 := 0; s0 < n; {
		s1 := s0 + 1
		step := int64(-1)
		for s1 < n && seq[s1*f+1] == seq[s0*f+1] {
			d := seq[s1*f+2] - seq[(s1-1)*f+2]
			if d <= 0 || (step >= 0 && d != step) {
				break
			}
			step = d
			s1++
		}
		x.attendGroup(o, q, k, v, seq[s0*f:s1*f], mask, p, step)
		s0 = s1
	}
}

func (x *ggmlExec) attendGroup(o, q Tensor, k, v kvOperand, seq []int64, mask []byte, p AttnParams, kstep int64) {
	const f = 6
	b := len(seq) / f
	nq := int(seq[1])
	d, h := p.HeadDim, p.Heads
	if nq == 0 {
		return
	}
	l := 0
	for i := 0; i < b; i++ {
		l = max(l, int(seq[i*f+3]))
	}
	if kstep < 0 {
		kstep = 0
	}
	g := x.graph
	scores := 4 * l * nq * h * b
	m, need := attnMask(seq, mask, p.Causal, l) // additive mask [L, nq, 1, B], where some key must be hidden
	x.begin(16, 2*alignUp(scores)+3*alignUp(4*l*d*h*b)+alignUp(4*d*nq*h*b), alignUp(4*len(m)))
	var mt ggml.T
	if need {
		mt = x.stageF32(m, l, nq*b)
		mt = g.View(mt, [4]int64{int64(l), int64(nq), 1, int64(b)}, [4]int64{4, int64(4 * l), int64(4 * l * nq), int64(4 * l * nq)}, 0)
	}

	q4 := x.leaf4(q.Rows(int(seq[0]), int(seq[0])+b*nq), [4]int64{int64(d), int64(h), int64(nq), int64(b)},
		[4]int64{4, int64(4 * d), int64(4 * q.ld), int64(4 * q.ld * nq)}) // [D, H, nq, B]
	kt := x.keys(k, int(seq[2]), l, int(kstep), b, d, h) // [D, L, H, B], f32
	vt := x.keys(v, int(seq[2]), l, int(kstep), b, d, h)
	kq := x.tmp(g.MulMat(kt, g.Permute(q4, 0, 2, 1, 3))) // [L, nq, H, B]
	kq = x.tmp(g.SoftMax(kq, mt, p.Scale))
	vT := x.tmp(g.Cont(g.Permute(vt, 1, 0, 2, 3))) // [L, D, H, B]
	out := x.tmp(g.MulMat(vT, kq))                 // [D, nq, H, B]
	o4 := x.leaf4(o.Rows(int(seq[0]), int(seq[0])+b*nq), [4]int64{int64(d), int64(h), int64(nq), int64(b)},
		[4]int64{4, int64(4 * d), int64(4 * o.ld), int64(4 * o.ld * nq)})
	g.Record(g.Cpy(g.Permute(out, 0, 2, 1, 3), o4))
}

// keys is a group's keys or values as [D, L, H, B] f32: L rows from row r0 of the
// source, sequence i's at r0 + i*step; an F16 cache is widened into scratch.
func (x *ggmlExec) keys(src kvOperand, r0, l, step, b, d, h int) ggml.T {
	g := x.graph
	if src.cache == nil {
		t := src.t
		return x.leaf4(t.Rows(r0, r0+(b-1)*step+l), [4]int64{int64(d), int64(l), int64(h), int64(b)},
			[4]int64{4, int64(4 * t.ld), int64(4 * d), int64(4 * t.ld * step)})
	}
	kv := src.cache
	c := x.kvLeaf(kv, src.layer, src.which)
	es, w := int64(4), int64(kv.width)
	if kv.dt == F16 {
		es = 2
	}
	view := g.View(c, [4]int64{int64(d), int64(l), int64(h), int64(b)}, [4]int64{es, es * w, es * int64(d), es * w * int64(step)}, int(es*w)*r0)
	if kv.dt == F32 {
		return view
	}
	wide := x.tmpLeaf(g.NewTensor(ggml.F32, [4]int64{int64(d), int64(l), int64(h), int64(b)}))
	return g.Record(g.Cpy(view, wide))
}

// attnMask builds the additive mask [B][nq][L] of a group (0: the key is seen,
// -FLT_MAX: not), and reports whether any key is hidden.
func attnMask(seq []int64, mask []byte, causal bool, l int) ([]float32, bool) {
	const f = 6
	b := len(seq) / f
	nq := int(seq[1])
	out := make([]float32, b*nq*l)
	need := false
	for i := 0; i < b; i++ {
		nk, qpos0, moff := int(seq[i*f+3]), int(seq[i*f+4]), seq[i*f+5]
		for qi := 0; qi < nq; qi++ {
			row := out[(i*nq+qi)*l : (i*nq+qi+1)*l]
			for j := range row {
				ok := j < nk && (!causal || j <= qpos0+qi) && (moff < 0 || mask[int(moff)+j] != 0)
				if !ok {
					row[j] = -math.MaxFloat32
					need = true
				}
			}
		}
	}
	return out, need
}
