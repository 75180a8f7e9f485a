package weights

import (
	"encoding/binary"
	"fmt"
	"math"
	"sort"
)

// GGUF (v2 and v3; ggml's gguf.h and docs/gguf.md): little-endian
//
//	"GGUF" | u32 version | u64 n_tensors | u64 n_kv
//	n_kv x   (string key, u32 value type, value)      string = u64 length + bytes
//	n_tensors x (string name, u32 n_dims, n_dims x u64 ne, u32 ggml type, u64 offset)
//	padding to the alignment (general.alignment, u32, default 32)
//	data: each tensor at data start + offset (a multiple of the alignment)
//
// Dimension order: ne[0] is the contiguous dimension, so a tensor of PyTorch shape
// [out, in] (row-major, in contiguous) has ne = [in, out]. synth reverses the dims on
// read and write: Tensor.Shape is always in PyTorch order, and the names are the
// checkpoint's names. A scalar (shape []) is written with n_dims = 0, which ggml reads as
// [1]. Block-quantized types need ne[0] (the last PyTorch dim) to be a multiple of the
// block size.

// GGUF metadata value types (gguf_type).
const (
	ggufUint8   = 0
	ggufInt8    = 1
	ggufUint16  = 2
	ggufInt16   = 3
	ggufUint32  = 4
	ggufInt32   = 5
	ggufFloat32 = 6
	ggufBool    = 7
	ggufString  = 8
	ggufArray   = 9
	ggufUint64  = 10
	ggufInt64   = 11
	ggufFloat64 = 12
)

// GGUFDefaultAlignment is the data alignment when general.alignment is absent.
const GGUFDefaultAlignment = 32

// ggmlMaxDims is GGML_MAX_DIMS; ggml refuses tensors with more dims.
const ggmlMaxDims = 4

// GGUFFile is a parsed GGUF file. Tensors' Data are views of the parsed bytes.
type GGUFFile struct {
	Version   uint32
	Alignment int
	KV        []KV
	Tensors   []Tensor // in the file's tensor-info order, shapes in PyTorch order
}

// ParseGGUF parses and validates a whole GGUF file held in data (a mapped file): magic,
// version, counts, every key-value (known types, no nested arrays, no empty or duplicate
// keys, general.alignment a u32 power of two), every tensor info (name unique, at most 4
// dims, no negative dims or overflow, known type, row length a multiple of the block
// size, offset aligned) and the tensor data (in bounds, not overlapping). name is used in
// errors.
func ParseGGUF(data []byte, name string) (*GGUFFile, error) { return parseGGUF(data, name) }

type ggufReader struct {
	data []byte
	pos  int
	file string
}

func (r *ggufReader) fail(format string, args ...any) error {
	return fmt.Errorf("weights: %s: %w: gguf offset %d: %s", r.file, ErrFormat, r.pos, fmt.Sprintf(format, args...))
}

func (r *ggufReader) take(n uint64, what string) ([]byte, error) {
	if n > uint64(len(r.data)-r.pos) {
		return nil, r.fail("truncated: %s needs %d bytes, %d left", what, n, len(r.data)-r.pos)
	}
	b := r.data[r.pos : r.pos+int(n)]
	r.pos += int(n)
	return b, nil
}

func (r *ggufReader) u32(what string) (uint32, error) {
	b, err := r.take(4, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (r *ggufReader) u64(what string) (uint64, error) {
	b, err := r.take(8, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

func (r *ggufReader) str(what string) (string, error) {
	n, err := r.u64(what + " length")
	if err != nil {
		return "", err
	}
	b, err := r.take(n, what)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// minValueSize is the smallest encoding of one value of a GGUF type (used to refuse array
// counts the remaining bytes cannot hold before allocating).
func minValueSize(t uint32) uint64 {
	switch t {
	case ggufUint8, ggufInt8, ggufBool:
		return 1
	case ggufUint16, ggufInt16:
		return 2
	case ggufUint32, ggufInt32, ggufFloat32:
		return 4
	case ggufUint64, ggufInt64, ggufFloat64, ggufString:
		return 8
	}
	return 0
}

func (r *ggufReader) scalar(t uint32, key string) (any, error) {
	what := "value of " + key
	switch t {
	case ggufUint8, ggufInt8, ggufBool:
		b, err := r.take(1, what)
		if err != nil {
			return nil, err
		}
		switch t {
		case ggufUint8:
			return b[0], nil
		case ggufInt8:
			return int8(b[0]), nil
		}
		if b[0] > 1 {
			return nil, r.fail("key %q: bool value %d", key, b[0])
		}
		return b[0] == 1, nil
	case ggufUint16, ggufInt16:
		b, err := r.take(2, what)
		if err != nil {
			return nil, err
		}
		v := binary.LittleEndian.Uint16(b)
		if t == ggufInt16 {
			return int16(v), nil
		}
		return v, nil
	case ggufUint32, ggufInt32, ggufFloat32:
		v, err := r.u32(what)
		if err != nil {
			return nil, err
		}
		switch t {
		case ggufInt32:
			return int32(v), nil
		case ggufFloat32:
			return math.Float32frombits(v), nil
		}
		return v, nil
	case ggufUint64, ggufInt64, ggufFloat64:
		v, err := r.u64(what)
		if err != nil {
			return nil, err
		}
		switch t {
		case ggufInt64:
			return int64(v), nil
		case ggufFloat64:
			return math.Float64frombits(v), nil
		}
		return v, nil
	case ggufString:
		return r.str(what)
	}
	return nil, r.fail("key %q has invalid value type %d", key, t)
}

func (r *ggufReader) array(t uint32, n uint64, key string) (any, error) {
	ms := minValueSize(t)
	if ms == 0 {
		if t == ggufArray {
			return nil, r.fail("key %q: nested arrays are not supported (ggml refuses them too)", key)
		}
		return nil, r.fail("key %q: array of invalid type %d", key, t)
	}
	if n > uint64(len(r.data)-r.pos)/ms {
		return nil, r.fail("key %q: array of %d values does not fit the %d bytes left", key, n, len(r.data)-r.pos)
	}
	switch t {
	case ggufString:
		out := make([]string, n)
		for i := range out {
			s, err := r.str(key)
			if err != nil {
				return nil, err
			}
			out[i] = s
		}
		return out, nil
	case ggufBool:
		out := make([]bool, n)
		for i := range out {
			v, err := r.scalar(t, key)
			if err != nil {
				return nil, err
			}
			out[i] = v.(bool)
		}
		return out, nil
	}
	b, err := r.take(n*ms, key)
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	switch t {
	case ggufUint8:
		return append([]uint8(nil), b...), nil
	case ggufInt8:
		out := make([]int8, n)
		for i := range out {
			out[i] = int8(b[i])
		}
		return out, nil
	case ggufUint16:
		out := make([]uint16, n)
		for i := range out {
			out[i] = le.Uint16(b[2*i:])
		}
		return out, nil
	case ggufInt16:
		out := make([]int16, n)
		for i := range out {
			out[i] = int16(le.Uint16(b[2*i:]))
		}
		return out, nil
	case ggufUint32:
		out := make([]uint32, n)
		for i := range out {
			out[i] = le.Uint32(b[4*i:])
		}
		return out, nil
	case ggufInt32:
		out := make([]int32, n)
		for i := range out {
			out[i] = int32(le.Uint32(b[4*i:]))
		}
		return out, nil
	case ggufFloat32:
		out := make([]float32, n)
		for i := range out {
			out[i] = math.Float32frombits(le.Uint32(b[4*i:]))
		}
		return out, nil
	case ggufUint64:
		out := make([]uint64, n)
		for i := range out {
			out[i] = le.Uint64(b[8*i:])
		}
		return out, nil
	case ggufInt64:
		out := make([]int64, n)
		for i := range out {
			out[i] = int64(le.Uint64(b[8*i:]))
		}
		return out, nil
	default: // ggufFloat64
		out := make([]float64, n)
		for i := range out {
			out[i] = math.Float64frombits(le.Uint64(b[8*i:]))
		}
		return out, nil
	}
}

func parseGGUF(data []byte, file string) (*GGUFFile, error) {
	r := &ggufReader{data: data, file: file}
	magic, err := r.take(4, "magic")
	if err != nil {
		return nil, err
	}
	if string(magic) != "GGUF" {
		return nil, r.fail("bad magic %q, want GGUF", magic)
	}
	g := &GGUFFile{Alignment: GGUFDefaultAlignment}
	if g.Version, err = r.u32("version"); err != nil {
		return nil, err
	}
	switch {
	case g.Version == 1:
		return nil, r.fail("GGUF v1 is no longer supported (ggml neither): re-convert the model")
	case g.Version&0xffff == 0:
		return nil, r.fail("version 0x%08x: a big-endian GGUF file? only little-endian is supported", g.Version)
	case g.Version > 3 || g.Version == 0:
		return nil, r.fail("unsupported GGUF version %d (supported: 2, 3)", g.Version)
	}
	nTensors, err := r.u64("tensor count")
	if err != nil {
		return nil, err
	}
	nKV, err := r.u64("key-value count")
	if err != nil {
		return nil, err
	}
	keys := map[string]bool{}
	for i := uint64(0); i < nKV; i++ {
		key, err := r.str(fmt.Sprintf("key %d", i))
		if err != nil {
			return nil, err
		}
		if key == "" {
			return nil, r.fail("key %d is empty (ggml aborts on it)", i)
		}
		if keys[key] {
			return nil, r.fail("duplicate key %q", key)
		}
		keys[key] = true
		t, err := r.u32("type of " + key)
		if err != nil {
			return nil, err
		}
		var v any
		if t == ggufArray {
			et, err := r.u32("array type of " + key)
			if err != nil {
				return nil, err
			}
			n, err := r.u64("array length of " + key)
			if err != nil {
				return nil, err
			}
			v, err = r.array(et, n, key)
			if err != nil {
				return nil, err
			}
		} else if v, err = r.scalar(t, key); err != nil {
			return nil, err
		}
		if key == "general.alignment" {
			a, ok := v.(uint32)
			if !ok {
				return nil, r.fail("general.alignment must be a uint32, got %T", v)
			}
			if a == 0 || a&(a-1) != 0 {
				return nil, r.fail("general.alignment %d is not a power of two", a)
			}
			g.Alignment = int(a)
		}
		g.KV = append(g.KV, KV{Key: key, Value: v})
	}

	type info struct {
		t      Tensor
		offset uint64
		size   int64
	}
	var infos []info
	names := map[string]bool{}
	for i := uint64(0); i < nTensors; i++ {
		name, err := r.str(fmt.Sprintf("name of tensor %d", i))
		if err != nil {
			return nil, err
		}
		if names[name] {
			return nil, r.fail("duplicate tensor name %q", name)
		}
		names[name] = true
		nd, err := r.u32("n_dims of " + name)
		if err != nil {
			return nil, err
		}
		if nd > ggmlMaxDims {
			return nil, r.fail("tensor %q has %d dimensions, at most %d allowed", name, nd, ggmlMaxDims)
		}
		ne := make([]int64, nd)
		for j := range ne {
			v, err := r.u64("ne of " + name)
			if err != nil {
				return nil, err
			}
			if v > math.MaxInt64 || int64(int(v)) != int64(v) {
				return nil, r.fail("tensor %q: dimension %d has invalid size %d", name, j, int64(v))
			}
			ne[j] = int64(v)
		}
		tt, err := r.u32("type of " + name)
		if err != nil {
			return nil, err
		}
		dt, ok := DTypeFromGGML(int(tt))
		if !ok {
			return nil, r.fail("tensor %q has unknown ggml type %d", name, tt)
		}
		shape := make([]int, nd)
		for j := range ne {
			shape[int(nd)-1-j] = int(ne[j])
		}
		if nd > 0 && ne[0]%int64(dt.BlockSize()) != 0 {
			return nil, r.fail("tensor %q of type %s: row length %d is not a multiple of the block size %d", name, dt, ne[0], dt.BlockSize())
		}
		n, err := numel(shape)
		if err != nil {
			return nil, r.fail("tensor %q: %v", name, err)
		}
		if nd == 0 && dt.BlockSize() != 1 {
			return nil, r.fail("tensor %q: a scalar cannot be of block type %s", name, dt)
		}
		size, err := dt.ByteSize(n)
		if err != nil {
			return nil, r.fail("tensor %q: %v", name, err)
		}
		off, err := r.u64("offset of " + name)
		if err != nil {
			return nil, err
		}
		if off%uint64(g.Alignment) != 0 {
			return nil, r.fail("tensor %q: offset %d is not a multiple of the alignment %d", name, off, g.Alignment)
		}
		infos = append(infos, info{t: Tensor{Name: name, DType: dt, Shape: shape}, offset: off, size: size})
	}
	start := uint64(r.pos)
	if rem := start % uint64(g.Alignment); rem != 0 {
		start += uint64(g.Alignment) - rem
	}
	if start > uint64(len(data)) {
		if len(infos) > 0 {
			return nil, r.fail("data section starts at %d, past the end of the %d-byte file", start, len(data))
		}
		start = uint64(len(data))
	}
	body := data[start:]
	order := make([]int, len(infos))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return infos[order[a]].offset < infos[order[b]].offset })
	var end uint64
	for k, i := range order {
		in := infos[i]
		if in.offset > uint64(len(body)) || uint64(in.size) > uint64(len(body))-in.offset {
			return nil, fmt.Errorf("weights: %s: %w: tensor %q (offset %d, %d bytes) runs past the end of the file (%d data bytes)",
				file, ErrFormat, in.t.Name, in.offset, in.size, len(body))
		}
		if k > 0 && in.offset < end {
			return nil, fmt.Errorf("weights: %s: %w: tensor %q at offset %d overlaps the previous tensor (ending at %d)", file, ErrFormat, in.t.Name, in.offset, end)
		}
		end = in.offset + uint64(in.size)
		infos[i].t.Data = body[in.offset:end:end]
	}
	g.Tensors = make([]Tensor, len(infos))
	for i, in := range infos {
		g.Tensors[i] = in.t
	}
	return g, nil
}
