package weights

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"
)

// Tensor is one stored tensor. Shape is in PyTorch order (row-major, the last dimension
// contiguous; [] for a scalar), also for GGUF files, whose dims are stored reversed (see
// the package doc). Data holds the raw little-endian bytes exactly as stored: for a Source
// opened from a file it is a read-only view of the memory-mapped file (writing to it
// faults) and is valid until the Source is closed.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte
}

// Numel is the number of values (1 for a scalar).
func (t Tensor) Numel() int {
	n := 1
	for _, s := range t.Shape {
		n *= s
	}
	return n
}

// F32 returns the values as a new float32 slice: F32 copied, F16/BF16 widened, F64
// rounded, ggml quantized types dequantized (see Dequantize). Integer tensors give ErrDType.
func (t Tensor) F32() ([]float32, error) {
	v, err := Dequantize(t.DType, t.Data, t.Numel())
	if err != nil {
		return nil, fmt.Errorf("weights: tensor %q: %w", t.Name, err)
	}
	return v, nil
}

// F32View returns the data of an F32 tensor as a []float32 sharing its memory, without a
// copy, when that is possible: dtype F32, a little-endian host and 4-byte-aligned data
// (always true for safetensors written by the reference writer, GGUF and torch zips with
// 64-byte-aligned records). Otherwise ok is false and the caller should use F32. The view
// is read-only when the tensor comes from a mapped file.
func (t Tensor) F32View() (v []float32, ok bool) {
	if t.DType != F32 || !littleEndianHost || len(t.Data) != 4*t.Numel() {
		return nil, false
	}
	if len(t.Data) == 0 {
		return []float32{}, true
	}
	p := unsafe.Pointer(unsafe.SliceData(t.Data))
	if uintptr(p)%4 != 0 {
		return nil, false
	}
	return unsafe.Slice((*float32)(p), len(t.Data)/4), true
}

// Ints returns the values of an integer or bool tensor widened to int64 (U64 values above
// MaxInt64 give an error). Float tensors give ErrDType.
func (t Tensor) Ints() ([]int64, error) {
	n := t.Numel()
	es := t.DType.BlockBytes()
	if !t.DType.IsInt() {
		return nil, fmt.Errorf("weights: tensor %q: %w: %s is not an integer type", t.Name, ErrDType, t.DType)
	}
	if len(t.Data) != n*es {
		return nil, fmt.Errorf("weights: tensor %q: %d bytes for %d values of %s", t.Name, len(t.Data), n, t.DType)
	}
	out := make([]int64, n)
	d := t.Data
	le := binary.LittleEndian
	for i := range out {
		switch t.DType {
		case I64:
			out[i] = int64(le.Uint64(d[8*i:]))
		case U64:
			u := le.Uint64(d[8*i:])
			if u > math.MaxInt64 {
				return nil, fmt.Errorf("weights: tensor %q: value %d at %d does not fit int64", t.Name, u, i)
			}
			out[i] = int64(u)
		case I32:
			out[i] = int64(int32(le.Uint32(d[4*i:])))
		case U32:
			out[i] = int64(le.Uint32(d[4*i:]))
		case I16:
			out[i] = int64(int16(le.Uint16(d[2*i:])))
		case U16:
			out[i] = int64(le.Uint16(d[2*i:]))
		case I8:
			out[i] = int64(int8(d[i]))
		case U8, Bool:
			out[i] = int64(d[i])
		}
	}
	return out, nil
}

// String is "name DTYPE [d0 d1 ...]".
func (t Tensor) String() string { return fmt.Sprintf("%s %s %v", t.Name, t.DType, t.Shape) }

var littleEndianHost = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// F32Tensor is a float32 tensor holding a copy of v (little-endian), for writers.
func F32Tensor(name string, shape []int, v []float32) Tensor {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return Tensor{Name: name, DType: F32, Shape: shape, Data: b}
}
