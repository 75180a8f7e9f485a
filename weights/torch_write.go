package weights

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"path/filepath"
	"strconv"
	"strings"
)

// WriteTorch writes tensors as a state dict the way torch.save(state_dict, path) does
// since torch 1.6: a zip of stored (uncompressed) records <archive>/data.pkl (a pickle,
// protocol 2, of a collections.OrderedDict whose values are
// torch._utils._rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())),
// <archive>/data/<n> (each tensor's bytes, 64-byte aligned like torch's writer) and
// <archive>/version. The archive folder is the file name without its extension, as
// torch names it. Only the globals our own reader allows are written, so the file loads
// with torch.load and with Open. Used to build checkpoints in the layout users download
// (LongCLIP-L.pt) for tests and the demo.
func WriteTorch(path string, tensors []Tensor) error {
	archive := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	if archive == "" {
		archive = "archive"
	}
	var pkl bytes.Buffer
	p := pickler{w: &pkl}
	p.op(0x80, 2) // PROTO 2
	p.global("collections", "OrderedDict")
	p.op(')') // EMPTY_TUPLE
	p.op('R') // REDUCE -> OrderedDict()
	if len(tensors) > 0 {
		p.op('(') // MARK
		for i, t := range tensors {
			storage, ok := storageName(t.DType)
			if !ok {
				return fmt.Errorf("weights: write %s: tensor %s: dtype %s has no torch storage", path, t.Name, t.DType)
			}
			n := 1
			for _, d := range t.Shape {
				n *= d
			}
			if want, err := t.DType.ByteSize(int64(n)); err != nil || want != int64(len(t.Data)) {
				return fmt.Errorf("weights: write %s: tensor %s: %d bytes for shape %v of %s, want %d", path, t.Name, len(t.Data), t.Shape, t.DType, want)
			}
			p.str(t.Name)
			p.global("torch._utils", "_rebuild_tensor_v2")
			p.op('(')
			// persistent id ('storage', torch.<X>Storage, key, 'cpu', numel)
			p.op('(')
			p.str("storage")
			p.global("torch", storage)
			p.str(strconv.Itoa(i))
			p.str("cpu")
			p.int(n)
			p.op('t') // TUPLE
			p.op('Q') // BINPERSID
			p.int(0)  // storage offset
			p.ints(t.Shape)
			p.ints(contiguousStrides(t.Shape))
			p.op(0x89) // NEWFALSE: requires_grad
			p.global("collections", "OrderedDict")
			p.op(')')
			p.op('R') // backward hooks: OrderedDict()
			p.op('t')
			p.op('R') // _rebuild_tensor_v2(...)
		}
		p.op('u') // SETITEMS
	}
	p.op('.') // STOP

	return writeAtomic(path, func(w io.Writer) error {
		cw := &offsetWriter{w: w}
		zw := &alignedZip{w: zip.NewWriter(cw), counter: cw}
		if err := zw.add(archive+"/data.pkl", pkl.Bytes()); err != nil {
			return err
		}
		for i, t := range tensors {
			if err := zw.add(archive+"/data/"+strconv.Itoa(i), t.Data); err != nil {
				return err
			}
		}
		if err := zw.add(archive+"/version", []byte("3\n")); err != nil {
			return err
		}
		return zw.w.Close()
	})
}

type offsetWriter struct {
	w io.Writer
	n int64
}

func (c *offsetWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

func storageName(d DType) (string, bool) {
	for name, dt := range torchStorageTypes {
		if dt == d {
			return name, true
		}
	}
	return "", false
}

func contiguousStrides(shape []int) []int {
	st := make([]int, len(shape))
	s := 1
	for i := len(shape) - 1; i >= 0; i-- {
		st[i] = s
		s *= shape[i]
	}
	return st
}

// pickler writes the few pickle opcodes a state dict needs.
type pickler struct{ w *bytes.Buffer }

func (p pickler) op(b ...byte) { p.w.Write(b) }

func (p pickler) global(module, name string) {
	p.w.WriteByte('c')
	p.w.WriteString(module + "\n" + name + "\n")
}

func (p pickler) str(s string) {
	p.w.WriteByte('X') // BINUNICODE
	binary.Write(p.w, binary.LittleEndian, uint32(len(s)))
	p.w.WriteString(s)
}

func (p pickler) int(v int) {
	switch {
	case v >= 0 && v < 256:
		p.op('K', byte(v)) // BININT1
	case v >= 0 && v < 65536:
		p.op('M', byte(v), byte(v>>8)) // BININT2
	case v >= -1<<31 && v < 1<<31:
		p.w.WriteByte('J') // BININT
		binary.Write(p.w, binary.LittleEndian, int32(v))
	default:
		p.op(0x8a, 8) // LONG1, 8 bytes little-endian two's complement
		binary.Write(p.w, binary.LittleEndian, int64(v))
	}
}

func (p pickler) ints(v []int) {
	if len(v) == 0 {
		p.op(')')
		return
	}
	p.op('(')
	for _, x := range v {
		p.int(x)
	}
	p.op('t')
}

// alignedZip writes stored zip records whose data starts on a 64-byte boundary, padding
// the local header's extra field as torch's PyTorchStreamWriter does.
type alignedZip struct {
	w       *zip.Writer
	counter *offsetWriter // bytes written so far: the next local header's offset
}

func (z *alignedZip) add(name string, data []byte) error {
	const align = 64
	if err := z.w.Flush(); err != nil {
		return err
	}
	// local header: 30 bytes + name + extra (a 4-byte tag/size header plus padding)
	start := int(z.counter.n) + 30 + len(name) + 4
	pad := (align - start%align) % align
	extra := make([]byte, 4+pad)
	binary.LittleEndian.PutUint16(extra[0:], 0x4246) // "FB", torch's padding tag
	binary.LittleEndian.PutUint16(extra[2:], uint16(pad))
	h := &zip.FileHeader{
		Name:               name,
		Method:             zip.Store,
		Extra:              extra,
		CRC32:              crc32.ChecksumIEEE(data),
		CompressedSize64:   uint64(len(data)),
		UncompressedSize64: uint64(len(data)),
	}
	w, err := z.w.CreateRaw(h)
	if err != nil {
		return err
	}
	_, err = io.Copy(w, bytes.NewReader(data))
	return err
}
