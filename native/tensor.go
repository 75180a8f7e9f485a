package native

import (
	"fmt"
	"slices"

	"synth/kernels"
)

// DType is an element type. Activations (Tensor) are F32; weights (Matrix) may be any of
// F32, F16, BF16, Q8_0 and Q4_0. The block types use ggml's layouts, so GGUF tensors are
// used in place:
//
//	Q8_0: 32 values per 34-byte block {f16 d; int8 qs[32]}, value = qs[j]*d
//	Q4_0: 32 values per 18-byte block {f16 d; uint8 qs[16]}, element j in the low nibble
//	      of qs[j], element j+16 in the high nibble, value = (nibble-8)*d
type DType uint8

const (
	F32  DType = DType(kernels.F32)
	F16  DType = DType(kernels.F16)
	BF16 DType = DType(kernels.BF16)
	Q8_0 DType = DType(kernels.Q8_0)
	Q4_0 DType = DType(kernels.Q4_0)
	I32  DType = 5 // token ids and indices; not a weight dtype
)

func (d DType) String() string {
	if d == I32 {
		return "I32"
	}
	return kernels.DType(d).String()
}

// BlockSize is the number of values per block: 32 for Q8_0 and Q4_0, else 1.
func (d DType) BlockSize() int { return kernels.DType(d).BlockSize() }

// RowBytes is the size of a row of k values of a weight dtype d (k a multiple of
// BlockSize).
func (d DType) RowBytes(k int) int { return kernels.RowBytes(kernels.DType(d), k) }

// MaxRank is the largest number of dimensions a Tensor has ([B, C, H, W] images).
const MaxRank = 4

// Buffer is f32 storage on a device: a slice of host memory on the cpu device, device
// memory on a ggml device. Tensors are views of a Buffer at an offset.
type Buffer struct {
	dev  *Device
	n    int       // floats
	host []float32 // cpu
	g    gbuf      // ggml devices: the device allocation
}

// Tensor is an f32 activation: a view of a device Buffer (an offset and a shape). A
// Tensor is a small value (copy it freely); copies share storage. Its storage is
// contiguous row-major, except for 2-D views made by Cols, whose rows are a fixed stride
// apart (so q, k and v can be column slices of one packed projection without a copy).
// The "2-D form" of a tensor of any rank is [product of all dims but the last, last dim].
//
// Only tensors on the cpu device expose their memory (F32, Row); the ops never need
// that, and code that must see values asks for a copy (Ctx.ToHost).
//
// The zero Tensor is empty (Numel 0) and means "none" where an op takes an optional
// tensor (e.g. Linear's bias and residual).
type Tensor struct {
	buf   *Buffer
	off   int // first element, in floats
	shape [MaxRank]int
	rank  uint8
	ld    int // row stride of the 2-D form, in floats
}

// NewTensor returns a zeroed tensor in host memory (the cpu device). Inside forward
// passes use Ctx.Alloc, which reuses memory and is on the Ctx's device.
func NewTensor(shape ...int) Tensor {
	n := numel(shape)
	return makeTensor(hostBuffer(make([]float32, n)), 0, shape)
}

// FromF32 wraps host data (not copied) as a cpu tensor of the given shape; len(data)
// must equal the product of the shape.
func FromF32(data []float32, shape ...int) Tensor {
	if n := numel(shape); n != len(data) {
		panic(fmt.Sprintf("native: FromF32: %d values for shape %v (%d)", len(data), slices.Clone(shape), n))
	}
	return makeTensor(hostBuffer(data), 0, shape)
}

func hostBuffer(data []float32) *Buffer { return &Buffer{dev: CPU, n: len(data), host: data} }

func numel(shape []int) int {
	if len(shape) == 0 || len(shape) > MaxRank {
		// formatting a copy keeps shape itself from escaping, so variadic calls like
		// Ctx.Alloc(rows, cols) stay off the heap
		panic(fmt.Sprintf("native: shape %v: rank must be 1..%d", slices.Clone(shape), MaxRank))
	}
	n := 1
	for _, d := range shape {
		if d < 0 {
			panic(fmt.Sprintf("native: shape %v has a negative dimension", slices.Clone(shape)))
		}
		n *= d
	}
	return n
}

func makeTensor(buf *Buffer, off int, shape []int) Tensor {
	if off+numel(shape) > buf.n {
		panic(fmt.Sprintf("native: view of %d floats at %d in a buffer of %d", numel(shape), off, buf.n))
	}
	t := Tensor{buf: buf, off: off, rank: uint8(len(shape))}
	copy(t.shape[:], shape)
	t.ld = shape[len(shape)-1]
	return t
}

// Shape returns a copy of the dimensions.
func (t Tensor) Shape() []int { return append([]int(nil), t.shape[:t.rank]...) }

// Rank is the number of dimensions (0 for the empty Tensor).
func (t Tensor) Rank() int { return int(t.rank) }

// Dim is dimension i; negative i counts from the end (-1 is the last).
func (t Tensor) Dim(i int) int {
	if i < 0 {
		i += int(t.rank)
	}
	if i < 0 || i >= int(t.rank) {
		panic(fmt.Sprintf("native: Dim(%d) of a rank-%d tensor", i, t.rank))
	}
	return t.shape[i]
}

// Numel is the number of elements.
func (t Tensor) Numel() int {
	if t.rank == 0 {
		return 0
	}
	n := 1
	for _, d := range t.shape[:t.rank] {
		n *= d
	}
	return n
}

// Empty reports whether t has no elements (the zero Tensor is empty).
func (t Tensor) Empty() bool { return t.Numel() == 0 }

// DType is F32: activations are f32 throughout.
func (t Tensor) DType() DType { return F32 }

// Device is where the storage lives (nil for the zero Tensor).
func (t Tensor) Device() *Device {
	if t.buf == nil {
		return nil
	}
	return t.buf.dev
}

// Dims2 is the 2-D form: rows = product of all dims but the last, cols = the last.
func (t Tensor) Dims2() (rows, cols int) {
	if t.rank == 0 {
		return 0, 0
	}
	cols = t.shape[t.rank-1]
	if cols == 0 {
		return t.Numel(), 0
	}
	return t.Numel() / cols, cols
}

// Stride is the distance in floats between consecutive rows of the 2-D form.
func (t Tensor) Stride() int { return t.ld }

// Contiguous reports whether the rows are packed without gaps.
func (t Tensor) Contiguous() bool {
	rows, cols := t.Dims2()
	return rows <= 1 || t.ld == cols
}

// span is the number of floats from the first element to one past the last.
func (t Tensor) span() int {
	rows, cols := t.Dims2()
	if rows == 0 || cols == 0 {
		return 0
	}
	return (rows-1)*t.ld + cols
}

// IsHost reports whether t's memory is host memory (the cpu device).
func (t Tensor) IsHost() bool { return t.buf == nil || t.buf.dev.host() }

// F32 is the storage of a contiguous host tensor, row-major (not a copy). It panics
// for tensors on other devices: use Ctx.ToHost.
func (t Tensor) F32() []float32 {
	t.mustHost("F32")
	if !t.Contiguous() {
		panic(fmt.Sprintf("native: F32 of a strided view %v (stride %d): copy it first", t.Shape(), t.ld))
	}
	if t.buf == nil {
		return nil
	}
	return t.buf.host[t.off : t.off+t.Numel()]
}

// Row is row i of the 2-D form of a host tensor (not a copy); works on strided views
// too. It panics for tensors on other devices: use Ctx.ToHost.
func (t Tensor) Row(i int) []float32 {
	t.mustHost("Row")
	rows, cols := t.Dims2()
	if i < 0 || i >= rows {
		panic(fmt.Sprintf("native: Row(%d) of %d rows", i, rows))
	}
	o := t.off + i*t.ld
	return t.buf.host[o : o+cols : o+cols]
}

// Reshape returns the same storage with a new shape of the same size; one dimension may
// be -1 (inferred). Only contiguous tensors can be reshaped.
func (t Tensor) Reshape(shape ...int) Tensor {
	if !t.Contiguous() {
		panic(fmt.Sprintf("native: Reshape of a strided view %v: copy it first", t.Shape()))
	}
	if len(shape) == 0 || len(shape) > MaxRank {
		panic(fmt.Sprintf("native: Reshape%v: rank must be 1..%d", slices.Clone(shape), MaxRank))
	}
	var s [MaxRank]int
	copy(s[:], shape)
	infer, known := -1, 1
	for i, d := range s[:len(shape)] {
		if d == -1 {
			if infer >= 0 {
				panic(fmt.Sprintf("native: Reshape%v: more than one -1", slices.Clone(shape)))
			}
			infer = i
			continue
		}
		known *= d
	}
	if infer >= 0 && known > 0 {
		s[infer] = t.Numel() / known
	}
	if numel(s[:len(shape)]) != t.Numel() {
		panic(fmt.Sprintf("native: Reshape %v to %v: sizes differ", t.Shape(), slices.Clone(shape)))
	}
	out := t
	out.rank = uint8(len(shape))
	out.shape = s
	out.ld = s[len(shape)-1]
	return out
}

// Rows is the view of rows [i, j) of the 2-D form, shape [j-i, cols]; strides are kept.
func (t Tensor) Rows(i, j int) Tensor {
	rows, cols := t.Dims2()
	if i < 0 || j < i || j > rows {
		panic(fmt.Sprintf("native: Rows(%d, %d) of %d rows", i, j, rows))
	}
	out := Tensor{buf: t.buf, off: t.off + i*t.ld, rank: 2, ld: t.ld}
	out.shape[0], out.shape[1] = j-i, cols
	return out
}

// Cols is the strided view of columns [off, off+n) of the 2-D form, shape [rows, n].
func (t Tensor) Cols(off, n int) Tensor {
	rows, cols := t.Dims2()
	if off < 0 || n < 0 || off+n > cols {
		panic(fmt.Sprintf("native: Cols(%d, %d) of %d columns", off, n, cols))
	}
	out := Tensor{buf: t.buf, off: t.off + off, rank: 2, ld: t.ld}
	out.shape[0], out.shape[1] = rows, n
	return out
}

func (t Tensor) mustHost(op string) {
	if !t.IsHost() {
		panic(fmt.Sprintf("native: %s: tensor %v is on %s, not in host memory (use Ctx.ToHost)", op, t.Shape(), t.buf.dev))
	}
}

// mat is the 2-D form of a host tensor as the kernels see it.
func (t Tensor) mat() kernels.Mat {
	rows, cols := t.Dims2()
	if t.buf == nil {
		return kernels.Mat{Rows: rows, Cols: cols, LD: t.ld}
	}
	return kernels.Mat{Data: t.buf.host[t.off : t.off+t.span()], Rows: rows, Cols: cols, LD: t.ld}
}

// vec is a host vector's values (nil for the empty tensor), for kernels that take
// per-column parameters (bias, LayerNorm weights).
func (t Tensor) vec() []float32 {
	if t.Empty() {
		return nil
	}
	return t.F32()
}
