package weights

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// GGUFWriter builds a GGUF v3 file: metadata of every GGUF type (including string and
// integer arrays) in the order added, then tensors in the order added, each at an offset
// that is a multiple of the alignment and zero-padded to it, as ggml's gguf writer does.
// Tensor data may be given up front (AddTensor, AddF32) or produced while writing
// (AddTensorFunc), so a converter holds one tensor at a time.
//
// Metadata values are typed by their Go type: uint8, int8, uint16, int16, uint32, int32,
// uint64, int64, float32, float64, bool, string, or a slice of one of them. Setting
// "general.alignment" (a uint32 power of two) changes the alignment; the default is 32.
type GGUFWriter struct {
	kv      []KV
	keys    map[string]bool
	tensors []pendingTensor
	names   map[string]bool
	align   int
}

type pendingTensor struct {
	name  string
	dtype DType
	shape []int
	size  int64
	data  []byte
	fill  func() ([]byte, error)
}

// NewGGUFWriter returns an empty writer.
func NewGGUFWriter() *GGUFWriter {
	return &GGUFWriter{keys: map[string]bool{}, names: map[string]bool{}, align: GGUFDefaultAlignment}
}

// Add appends a metadata key-value. Keys must be unique.
func (w *GGUFWriter) Add(key string, value any) error {
	if key == "" {
		return fmt.Errorf("weights: gguf: empty metadata key")
	}
	if w.keys[key] {
		return fmt.Errorf("weights: gguf: duplicate metadata key %q", key)
	}
	if _, _, err := ggufTypeOf(value); err != nil {
		return fmt.Errorf("weights: gguf: key %q: %w", key, err)
	}
	if key == "general.alignment" {
		a, ok := value.(uint32)
		if !ok || a == 0 || a&(a-1) != 0 {
			return fmt.Errorf("weights: gguf: general.alignment must be a uint32 power of two, got %T %v", value, value)
		}
		w.align = int(a)
	}
	w.keys[key] = true
	w.kv = append(w.kv, KV{Key: key, Value: value})
	return nil
}

// ggufTypeOf returns the GGUF type of a value (and the element type for arrays).
func ggufTypeOf(v any) (t, elem uint32, err error) {
	switch v.(type) {
	case uint8:
		return ggufUint8, 0, nil
	case int8:
		return ggufInt8, 0, nil
	case uint16:
		return ggufUint16, 0, nil
	case int16:
		return ggufInt16, 0, nil
	case uint32:
		return ggufUint32, 0, nil
	case int32:
		return ggufInt32, 0, nil
	case uint64:
		return ggufUint64, 0, nil
	case int64:
		return ggufInt64, 0, nil
	case float32:
		return ggufFloat32, 0, nil
	case float64:
		return ggufFloat64, 0, nil
	case bool:
		return ggufBool, 0, nil
	case string:
		return ggufString, 0, nil
	case []uint8:
		return ggufArray, ggufUint8, nil
	case []int8:
		return ggufArray, ggufInt8, nil
	case []uint16:
		return ggufArray, ggufUint16, nil
	case []int16:
		return ggufArray, ggufInt16, nil
	case []uint32:
		return ggufArray, ggufUint32, nil
	case []int32:
		return ggufArray, ggufInt32, nil
	case []uint64:
		return ggufArray, ggufUint64, nil
	case []int64:
		return ggufArray, ggufInt64, nil
	case []float32:
		return ggufArray, ggufFloat32, nil
	case []float64:
		return ggufArray, ggufFloat64, nil
	case []bool:
		return ggufArray, ggufBool, nil
	case []string:
		return ggufArray, ggufString, nil
	}
	return 0, 0, fmt.Errorf("unsupported metadata type %T (use a sized int, float32/64, bool, string or a slice of one; int is ambiguous)", v)
}

func (w *GGUFWriter) check(name string, dt DType, shape []int) (int64, error) {
	if name == "" {
		return 0, fmt.Errorf("weights: gguf: empty tensor name")
	}
	if w.names[name] {
		return 0, fmt.Errorf("weights: gguf: duplicate tensor %q", name)
	}
	if dt.GGMLType() < 0 {
		return 0, fmt.Errorf("weights: gguf: tensor %q: %w: GGUF has no %s type", name, ErrDType, dt)
	}
	if len(shape) > ggmlMaxDims {
		return 0, fmt.Errorf("weights: gguf: tensor %q: %w: %d dims, GGUF allows at most %d", name, ErrShape, len(shape), ggmlMaxDims)
	}
	if bs := dt.BlockSize(); bs > 1 && (len(shape) == 0 || shape[len(shape)-1]%bs != 0) {
		return 0, fmt.Errorf("weights: gguf: tensor %q: %w: %s needs the last dimension of %v to be a multiple of %d", name, ErrShape, dt, shape, bs)
	}
	n, err := numel(shape)
	if err != nil {
		return 0, fmt.Errorf("weights: gguf: tensor %q: %w: %v", name, ErrShape, err)
	}
	return dt.ByteSize(n)
}

// AddTensor appends a tensor whose Data is already encoded in t.DType (shape in PyTorch
// order). The data is referenced, not copied, until WriteTo.
func (w *GGUFWriter) AddTensor(t Tensor) error {
	size, err := w.check(t.Name, t.DType, t.Shape)
	if err != nil {
		return err
	}
	if int64(len(t.Data)) != size {
		return fmt.Errorf("weights: gguf: tensor %q: %w: %d bytes for %s %v, want %d", t.Name, ErrShape, len(t.Data), t.DType, t.Shape, size)
	}
	w.names[t.Name] = true
	w.tensors = append(w.tensors, pendingTensor{name: t.Name, dtype: t.DType, shape: append([]int(nil), t.Shape...), size: size, data: t.Data})
	return nil
}

// AddF32 appends float32 values encoded as dt (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0,
// Q5_1) with ggml-identical rounding. Encoding happens while writing.
func (w *GGUFWriter) AddF32(name string, dt DType, shape []int, values []float32) error {
	size, err := w.check(name, dt, shape)
	if err != nil {
		return err
	}
	if n, _ := numel(shape); n != int64(len(values)) {
		return fmt.Errorf("weights: gguf: tensor %q: %w: %d values for shape %v", name, ErrShape, len(values), shape)
	}
	w.names[name] = true
	w.tensors = append(w.tensors, pendingTensor{name: name, dtype: dt, shape: append([]int(nil), shape...), size: size,
		fill: func() ([]byte, error) { return Quantize(dt, values) }})
	return nil
}

// AddTensorFunc appends a tensor whose bytes (encoded in dt) fill produces while the file
// is written; fill must return exactly the byte size of dt x shape.
func (w *GGUFWriter) AddTensorFunc(name string, dt DType, shape []int, fill func() ([]byte, error)) error {
	size, err := w.check(name, dt, shape)
	if err != nil {
		return err
	}
	w.names[name] = true
	w.tensors = append(w.tensors, pendingTensor{name: name, dtype: dt, shape: append([]int(nil), shape...), size: size, fill: fill})
	return nil
}

type countingWriter struct {
	w   *bufio.Writer
	n   int64
	err error
}

func (c *countingWriter) write(b []byte) {
	if c.err != nil {
		return
	}
	n, err := c.w.Write(b)
	c.n += int64(n)
	c.err = err
}

func (c *countingWriter) u32(v uint32) {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	c.write(b[:])
}

func (c *countingWriter) u64(v uint64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	c.write(b[:])
}

func (c *countingWriter) str(s string) {
	c.u64(uint64(len(s)))
	c.write([]byte(s))
}

func (c *countingWriter) pad(align int) {
	if r := int(c.n % int64(align)); r != 0 {
		c.write(make([]byte, align-r))
	}
}

func (c *countingWriter) value(v any) {
	le := binary.LittleEndian
	switch x := v.(type) {
	case uint8:
		c.write([]byte{x})
	case int8:
		c.write([]byte{byte(x)})
	case bool:
		if x {
			c.write([]byte{1})
		} else {
			c.write([]byte{0})
		}
	case uint16:
		c.write(le.AppendUint16(nil, x))
	case int16:
		c.write(le.AppendUint16(nil, uint16(x)))
	case uint32:
		c.u32(x)
	case int32:
		c.u32(uint32(x))
	case float32:
		c.u32(math.Float32bits(x))
	case uint64:
		c.u64(x)
	case int64:
		c.u64(uint64(x))
	case float64:
		c.u64(math.Float64bits(x))
	case string:
		c.str(x)
	}
}

func writeArray[T any](c *countingWriter, elem uint32, xs []T) {
	c.u32(elem)
	c.u64(uint64(len(xs)))
	for _, x := range xs {
		c.value(x)
	}
}

// WriteTo writes the file to out.
func (w *GGUFWriter) WriteTo(out io.Writer) (int64, error) {
	c := &countingWriter{w: bufio.NewWriterSize(out, 1<<20)}
	c.write([]byte("GGUF"))
	c.u32(3)
	c.u64(uint64(len(w.tensors)))
	c.u64(uint64(len(w.kv)))
	for _, kv := range w.kv {
		c.str(kv.Key)
		t, elem, _ := ggufTypeOf(kv.Value)
		c.u32(t)
		if t != ggufArray {
			c.value(kv.Value)
			continue
		}
		switch x := kv.Value.(type) {
		case []uint8:
			writeArray(c, elem, x)
		case []int8:
			writeArray(c, elem, x)
		case []uint16:
			writeArray(c, elem, x)
		case []int16:
			writeArray(c, elem, x)
		case []uint32:
			writeArray(c, elem, x)
		case []int32:
			writeArray(c, elem, x)
		case []uint64:
			writeArray(c, elem, x)
		case []int64:
			writeArray(c, elem, x)
		case []float32:
			writeArray(c, elem, x)
		case []float64:
			writeArray(c, elem, x)
		case []bool:
			writeArray(c, elem, x)
		case []string:
			writeArray(c, elem, x)
		}
	}
	var off int64
	for _, t := range w.tensors {
		c.str(t.name)
		c.u32(uint32(len(t.shape)))
		for i := len(t.shape) - 1; i >= 0; i-- {
			c.u64(uint64(t.shape[i]))
		}
		c.u32(uint32(t.dtype.GGMLType()))
		c.u64(uint64(off))
		off += t.size
		if r := off % int64(w.align); r != 0 {
			off += int64(w.align) - r
		}
	}
	c.pad(w.align)
	for _, t := range w.tensors {
		data := t.data
		if t.fill != nil {
			var err error
			if data, err = t.fill(); err != nil {
				return c.n, fmt.Errorf("weights: gguf: tensor %q: %w", t.name, err)
			}
			if int64(len(data)) != t.size {
				return c.n, fmt.Errorf("weights: gguf: tensor %q: produced %d bytes, want %d", t.name, len(data), t.size)
			}
		}
		c.write(data)
		c.pad(w.align)
		if c.err != nil {
			break
		}
	}
	if c.err == nil {
		c.err = c.w.Flush()
	}
	return c.n, c.err
}

// WriteFile writes the file through a temporary file renamed into place.
func (w *GGUFWriter) WriteFile(path string) error {
	return writeAtomic(path, func(out io.Writer) error {
		_, err := w.WriteTo(out)
		return err
	})
}
