package ggml

/*
#include <stdlib.h>
#include "ggml.h"
#include "ggml-backend.h"

static struct ggml_context *synth_ctx(size_t tensors, size_t nodes) {
	struct ggml_init_params p = {
		.mem_size = ggml_tensor_overhead() * tensors + ggml_graph_overhead_custom(nodes, false),
		.mem_buffer = NULL,
		.no_alloc = true,
	};
	return ggml_init(p);
}

static int synth_place(ggml_backend_buffer_t buf, struct ggml_tensor *t, size_t off) {
	char *base = (char *)ggml_backend_buffer_get_base(buf);
	return ggml_backend_tensor_alloc(buf, t, base + off) == GGML_STATUS_SUCCESS;
}

static struct ggml_tensor *synth_view(struct ggml_context *ctx, struct ggml_tensor *a, int64_t n0, int64_t n1, int64_t n2, int64_t n3,
		size_t nb1, size_t nb2, size_t nb3, size_t off) {
	return ggml_view_4d(ctx, a, n0, n1, n2, n3, nb1, nb2, nb3, off);
}

static int synth_view_init(struct ggml_tensor *t) {
	return ggml_backend_view_init(t) == GGML_STATUS_SUCCESS;
}
*/
import "C"

import (
	"fmt"
)

// Type is a ggml tensor type id (GGUF's numbers).
type Type int32

const (
	F32  Type = 0
	F16  Type = 1
	Q4_0 Type = 2
	Q8_0 Type = 8
	Q4_K Type = 12
	Q5_K Type = 13
	Q6_K Type = 14
	I8   Type = 24
	I32  Type = 26
	I64  Type = 27
	BF16 Type = 30
)

// T is a tensor of the graph being recorded: a leaf at an address, or an op's result.
// It is valid until the graph is reset.
type T struct{ t *C.struct_ggml_tensor }

// Nil reports whether t is the absent tensor.
func (t T) Nil() bool { return t.t == nil }

// Ne are the dimensions, fastest first (ggml's order).
func (t T) Ne() [4]int64 {
	return [4]int64{int64(t.t.ne[0]), int64(t.t.ne[1]), int64(t.t.ne[2]), int64(t.t.ne[3])}
}

// Bytes is the tensor's size in memory (strides included).
func (t T) Bytes() int { return int(C.ggml_nbytes(t.t)) }

// Graph records ops for a backend and computes them in the order recorded. Every
// tensor of it gets its memory when it is made: a leaf at the address it names, an op's
// result where Place puts it, a view where its source is. So the graph never allocates
// and the caller's memory plan (native's arena) holds, ops running in program order.
type Graph struct {
	be              *Backend
	ctx             *C.struct_ggml_context
	gf              *C.struct_ggml_cgraph
	maxT, maxN, n   int
	tensors, nodes  int
	supportsChecked bool
}

// NewGraph starts a graph of at most maxNodes ops and maxTensors tensors in all.
func (b *Backend) NewGraph(maxTensors, maxNodes int) *Graph {
	g := &Graph{be: b, maxT: maxTensors, maxN: maxNodes}
	g.reset()
	return g
}

func (g *Graph) reset() {
	if g.ctx != nil {
		C.ggml_free(g.ctx)
	}
	g.ctx = C.synth_ctx(C.size_t(g.maxT), C.size_t(g.maxN))
	g.gf = C.ggml_new_graph_custom(g.ctx, C.size_t(g.maxN), false)
	g.tensors, g.nodes = 0, 0
}

// Free releases the graph's bookkeeping (not the memory its tensors point at).
func (g *Graph) Free() {
	if g.ctx != nil {
		C.ggml_free(g.ctx)
		g.ctx = nil
	}
}

// Room reports whether n more tensors and nodes fit; when not, Compute and start over.
func (g *Graph) Room(n int) bool { return g.tensors+n <= g.maxT && g.nodes+n <= g.maxN }

// Pending is the number of ops recorded since the last Compute.
func (g *Graph) Pending() int { return g.nodes }

// Compute runs the recorded ops and starts an empty graph.
func (g *Graph) Compute() error {
	if g.nodes > 0 {
		if st := C.ggml_backend_graph_compute(g.be.be, g.gf); st != C.GGML_STATUS_SUCCESS {
			g.reset()
			return fmt.Errorf("ggml: %s: graph compute failed (status %d)", g.be.dev.Name, int(st))
		}
	}
	g.reset()
	return nil
}

func (g *Graph) made(t *C.struct_ggml_tensor) T {
	if t == nil {
		panic("ggml: a tensor could not be made (context full)")
	}
	g.tensors++
	return T{t}
}

// At is a leaf: the tensor of type typ with dims ne (fastest first) and strides nb in
// bytes (nb[0] the element size), at byte off of buf. A strided layout is a view of a
// 1-D leaf over its span; a block type (quantized weights) must be contiguous.
func (g *Graph) At(buf *Buffer, off int, typ Type, ne [4]int64, nb [4]int64) T {
	if BlockSize(typ) != 1 {
		t := g.made(C.ggml_new_tensor_4d(g.ctx, C.enum_ggml_type(typ), C.int64_t(ne[0]), C.int64_t(ne[1]), C.int64_t(ne[2]), C.int64_t(ne[3])))
		for i := 1; i < 4; i++ {
			if int64(t.t.nb[i]) != nb[i] && ne[i] > 1 {
				panic(fmt.Sprintf("ggml: a %s leaf must be contiguous (dims %v, strides %v)", typeName(typ), ne, nb))
			}
		}
		return g.PlaceLeaf(t, buf, off)
	}
	es := int64(TypeSize(typ))
	span := es
	for i := 0; i < 4; i++ {
		span += (ne[i] - 1) * nb[i]
	}
	base := g.PlaceLeaf(g.made(C.ggml_new_tensor_1d(g.ctx, C.enum_ggml_type(typ), C.int64_t((span+es-1)/es))), buf, off)
	return g.View(base, ne, nb, 0)
}

// View is a view of t's memory with dims ne and strides nb (bytes) at byte offset off,
// of t's type.
func (g *Graph) View(t T, ne [4]int64, nb [4]int64, off int) T {
	r := g.made(C.synth_view(g.ctx, t.t, C.int64_t(ne[0]), C.int64_t(ne[1]), C.int64_t(ne[2]), C.int64_t(ne[3]),
		C.size_t(nb[1]), C.size_t(nb[2]), C.size_t(nb[3]), C.size_t(off)))
	g.viewInit(r)
	return r
}

func (g *Graph) viewInit(t T) {
	if C.synth_view_init(t.t) == 0 {
		panic("ggml: view of an unallocated tensor")
	}
}

// Place gives op result t its memory at byte off of buf (it may be where an input
// lies: elementwise ops run in place) and records it; ops run in the order placed.
func (g *Graph) Place(t T, buf *Buffer, off int) T {
	buf.check("op result", off, t.Bytes())
	if C.synth_place(buf.b, t.t, C.size_t(off)) == 0 {
		panic("ggml: op result could not be placed")
	}
	return g.record(t)
}

// Record records t, an op whose result is a view of an input (set_rows, cpy).
func (g *Graph) Record(t T) T {
	g.viewInit(t)
	return g.record(t)
}

func (g *Graph) record(t T) T {
	if !bool(C.ggml_backend_supports_op(g.be.be, t.t)) {
		panic(fmt.Sprintf("ggml: %s cannot run %s on %s %v", g.be.dev.Name, C.GoString(C.ggml_op_desc(t.t)), typeName(Type(t.t._type)), t.Ne()))
	}
	C.ggml_build_forward_expand(g.gf, t.t)
	g.nodes++
	return t
}

func typeName(t Type) string { return C.GoString(C.ggml_type_name(C.enum_ggml_type(t))) }

// Ops. Each returns the unplaced result (Place it), except the in-place ones (SetRows,
// Cpy) whose result is a view of their destination (Record them).

func (g *Graph) MulMat(w, x T) T {
	r := g.made(C.ggml_mul_mat(g.ctx, w.t, x.t))
	C.ggml_mul_mat_set_prec(r.t, C.GGML_PREC_F32) // f32 accumulation wherever the device offers a choice
	return r
}
func (g *Graph) Add(a, b T) T              { return g.made(C.ggml_add(g.ctx, a.t, b.t)) }
func (g *Graph) Sub(a, b T) T              { return g.made(C.ggml_sub(g.ctx, a.t, b.t)) }
func (g *Graph) Mul(a, b T) T              { return g.made(C.ggml_mul(g.ctx, a.t, b.t)) }
func (g *Graph) Div(a, b T) T              { return g.made(C.ggml_div(g.ctx, a.t, b.t)) }
func (g *Graph) Scale(a T, s float32) T    { return g.made(C.ggml_scale(g.ctx, a.t, C.float(s))) }
func (g *Graph) Norm(a T, eps float32) T   { return g.made(C.ggml_norm(g.ctx, a.t, C.float(eps))) }
func (g *Graph) L2Norm(a T, eps float32) T { return g.made(C.ggml_l2_norm(g.ctx, a.t, C.float(eps))) }
func (g *Graph) GELUErf(a T) T             { return g.made(C.ggml_gelu_erf(g.ctx, a.t)) }
func (g *Graph) GELU(a T) T                { return g.made(C.ggml_gelu(g.ctx, a.t)) }
func (g *Graph) GELUQuick(a T) T           { return g.made(C.ggml_gelu_quick(g.ctx, a.t)) }
func (g *Graph) ReLU(a T) T                { return g.made(C.ggml_relu(g.ctx, a.t)) }
func (g *Graph) Sigmoid(a T) T             { return g.made(C.ggml_sigmoid(g.ctx, a.t)) }
func (g *Graph) Tanh(a T) T                { return g.made(C.ggml_tanh(g.ctx, a.t)) }
func (g *Graph) Neg(a T) T                 { return g.made(C.ggml_neg(g.ctx, a.t)) }
func (g *Graph) Log(a T) T                 { return g.made(C.ggml_log(g.ctx, a.t)) }
func (g *Graph) Cont(a T) T                { return g.made(C.ggml_cont(g.ctx, a.t)) }
func (g *Graph) Argmax(a T) T              { return g.made(C.ggml_argmax(g.ctx, a.t)) }
func (g *Graph) GetRows(a, idx T) T        { return g.made(C.ggml_get_rows(g.ctx, a.t, idx.t)) }

// SoftMax is softmax(a*scale + mask) over rows; mask may be absent.
func (g *Graph) SoftMax(a, mask T, scale float32) T {
	return g.made(C.ggml_soft_max_ext(g.ctx, a.t, mask.t, C.float(scale), 0))
}

// Permute moves a's dim i to position ax[i].
func (g *Graph) Permute(a T, ax0, ax1, ax2, ax3 int) T {
	r := g.made(C.ggml_permute(g.ctx, a.t, C.int(ax0), C.int(ax1), C.int(ax2), C.int(ax3)))
	g.viewInit(r)
	return r
}

// Im2col unfolds img [W, H, C, N] for a conv of kernel's shape [KW, KH, C, OC] with
// stride (s0, s1) and no padding: [C*KH*KW, OW, OH, N] in f32.
func (g *Graph) Im2col(kernel, img T, s0, s1 int) T {
	return g.made(C.ggml_im2col(g.ctx, kernel.t, img.t, C.int(s0), C.int(s1), 0, 0, 1, 1, true, C.GGML_TYPE_F32))
}

// SetRows writes row i of src to row idx[i] of dst (converting to dst's type); the
// result is a view of dst: Record it.
func (g *Graph) SetRows(dst, src, idx T) T {
	return g.made(C.ggml_set_rows(g.ctx, dst.t, src.t, idx.t))
}

// Cpy copies src into dst (any layouts of the same number of elements); the result is
// a view of dst: Record it.
func (g *Graph) Cpy(src, dst T) T { return g.made(C.ggml_cpy(g.ctx, src.t, dst.t)) }

// NewTensor is an unplaced tensor (an op's scratch input such as im2col's kernel
// shape), to Place before use.
func (g *Graph) NewTensor(typ Type, ne [4]int64) T {
	return g.made(C.ggml_new_tensor_4d(g.ctx, C.enum_ggml_type(typ), C.int64_t(ne[0]), C.int64_t(ne[1]), C.int64_t(ne[2]), C.int64_t(ne[3])))
}

// PlaceLeaf gives an unplaced leaf (NewTensor) its memory without recording it as an op.
func (g *Graph) PlaceLeaf(t T, buf *Buffer, off int) T {
	buf.check("leaf", off, t.Bytes())
	if C.synth_place(buf.b, t.t, C.size_t(off)) == 0 {
		panic("ggml: leaf could not be placed")
	}
	return t
}

// TypeSize is the bytes of a block of typ; BlockSize the values in one.
func TypeSize(t Type) int  { return int(C.ggml_type_size(C.enum_ggml_type(t))) }
func BlockSize(t Type) int { return int(C.ggml_blck_size(C.enum_ggml_type(t))) }

// Ops of the backward passes.

func (g *Graph) Sqr(a T) T     { return g.made(C.ggml_sqr(g.ctx, a.t)) }
func (g *Graph) Sqrt(a T) T    { return g.made(C.ggml_sqrt(g.ctx, a.t)) }
func (g *Graph) Step(a T) T    { return g.made(C.ggml_step(g.ctx, a.t)) }
func (g *Graph) SumRows(a T) T { return g.made(C.ggml_sum_rows(g.ctx, a.t)) }
func (g *Graph) Mean(a T) T    { return g.made(C.ggml_mean(g.ctx, a.t)) }

// ScaleBias is s*a + b elementwise.
func (g *Graph) ScaleBias(a T, s, b float32) T {
	return g.made(C.ggml_scale_bias(g.ctx, a.t, C.float(s), C.float(b)))
}

// OutProd is a b^T over their second dims: a [n0, j], b [n1, j] -> [n0, n1] with
// result[i0, i1] = sum_j a[i0, j] b[i1, j].
func (g *Graph) OutProd(a, b T) T { return g.made(C.ggml_out_prod(g.ctx, a.t, b.t)) }

// Transpose swaps a's first two dims (a view).
func (g *Graph) Transpose(a T) T {
	r := g.made(C.ggml_transpose(g.ctx, a.t))
	g.viewInit(r)
	return r
}

// Fill is a tensor of a's shape with every element v.
func (g *Graph) Fill(a T, v float32) T { return g.made(C.ggml_fill(g.ctx, a.t, C.float(v))) }
