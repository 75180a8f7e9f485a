package weights

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"math"
	"path"
	"sort"
	"strings"

	"synth/internal/escape"
)

// torch.save (since 1.6) writes a zip: <archive>/data.pkl (the pickled object, tensors as
// persistent ids ('storage', torch.FloatStorage, '<key>', '<location>', numel)),
// <archive>/data/<key> (raw little-endian storage bytes, stored uncompressed and
// 64-byte aligned), <archive>/version and, since 1.10, <archive>/byteorder.

type torchStorage struct {
	dtype DType
	key   string
	numel int64
	data  []byte
}

type torchTensor struct {
	dtype DType
	shape []int
	data  []byte
}

var torchStorageTypes = map[string]DType{
	"FloatStorage":    F32,
	"HalfStorage":     F16,
	"BFloat16Storage": BF16,
	"DoubleStorage":   F64,
	"LongStorage":     I64,
	"IntStorage":      I32,
	"ShortStorage":    I16,
	"CharStorage":     I8,
	"ByteStorage":     U8,
	"BoolStorage":     Bool,
}

// AllowedPickleGlobals lists every global the restricted unpickler accepts; anything else
// in a pickle is refused with ErrUnsafe naming it.
func AllowedPickleGlobals() []string {
	names := []string{
		"collections.OrderedDict",
		"torch._utils._rebuild_tensor",
		"torch._utils._rebuild_tensor_v2",
		"torch._utils._rebuild_parameter",
		"torch._utils._rebuild_parameter_with_state",
		"torch._tensor._rebuild_from_type_v2",
		"torch.Tensor",
		"torch.nn.parameter.Parameter",
		"_codecs.encode",
	}
	for s := range torchStorageTypes {
		names = append(names, "torch."+s)
	}
	sort.Strings(names)
	return names
}

// torchLoader holds what the allowed globals need: the zip's storages and a budget for
// copies of non-contiguous tensors.
type torchLoader struct {
	file     string
	entries  map[string][]byte // "data/<key>" -> bytes
	storages map[string]*torchStorage
	budget   int64 // bytes left for materialising strided tensors
}

func (l *torchLoader) globals(module, name string) *pyGlobal {
	full := module + "." + name
	switch full {
	case "collections.OrderedDict":
		return &pyGlobal{name: full, call: func(args []any) (any, error) {
			if len(args) != 0 {
				// OrderedDict(iterable) never appears in torch pickles; refuse rather than guess
				return nil, fmt.Errorf("OrderedDict with arguments is not supported")
			}
			return newDict(), nil
		}}
	case "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor":
		return &pyGlobal{name: full, call: l.rebuildTensor}
	case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
		return &pyGlobal{name: full, call: func(args []any) (any, error) {
			if len(args) < 3 {
				return nil, fmt.Errorf("%d arguments, want (data, requires_grad, backward_hooks[, state])", len(args))
			}
			t, ok := args[0].(*torchTensor)
			if !ok {
				return nil, fmt.Errorf("parameter data is a %s, not a tensor", pyTypeName(args[0]))
			}
			return t, nil
		}}
	case "torch._tensor._rebuild_from_type_v2":
		// (func, new_type, args, state): a tensor subclass; we keep the tensor data only
		return &pyGlobal{name: full, call: func(args []any) (any, error) {
			if len(args) != 4 {
				return nil, fmt.Errorf("%d arguments, want (func, type, args, state)", len(args))
			}
			fn, ok := args[0].(*pyGlobal)
			if !ok || fn.call == nil {
				return nil, fmt.Errorf("first argument is not an allowed function")
			}
			if ty, ok := args[1].(*pyGlobal); !ok || (ty.name != "torch.Tensor" && ty.name != "torch.nn.parameter.Parameter") {
				return nil, fmt.Errorf("tensor type must be torch.Tensor or torch.nn.parameter.Parameter")
			}
			inner, ok := args[2].(*pyTuple)
			if !ok {
				return nil, fmt.Errorf("arguments are a %s, not a tuple", pyTypeName(args[2]))
			}
			return fn.call(inner.items)
		}}
	case "torch.Tensor", "torch.nn.parameter.Parameter":
		return &pyGlobal{name: full} // a type marker for _rebuild_from_type_v2, not callable
	case "_codecs.encode":
		// protocol-2 pickles write bytes as _codecs.encode(str, 'latin1')
		return &pyGlobal{name: full, call: func(args []any) (any, error) {
			if len(args) != 2 {
				return nil, fmt.Errorf("%d arguments, want (str, encoding)", len(args))
			}
			s, ok1 := args[0].(string)
			enc, ok2 := args[1].(string)
			if !ok1 || !ok2 || (enc != "latin1" && enc != "latin-1") {
				return nil, fmt.Errorf("only encode(str, 'latin1') is supported")
			}
			if int64(len(s)) > l.budget {
				return nil, fmt.Errorf("bytes larger than the file allows")
			}
			l.budget -= int64(len(s))
			b := make([]byte, 0, len(s))
			for _, r := range s {
				if r > 0xff {
					return nil, fmt.Errorf("character U+%04X is not latin-1", r)
				}
				b = append(b, byte(r))
			}
			return pyBytes(b), nil
		}}
	}
	if module == "torch" {
		if _, ok := torchStorageTypes[name]; ok {
			return &pyGlobal{name: full}
		}
	}
	return nil
}

// persistentLoad resolves ('storage', storage_type, key, location, numel).
func (l *torchLoader) persistentLoad(pid any) (any, error) {
	tup, ok := pid.(*pyTuple)
	if !ok || len(tup.items) != 5 {
		return nil, fmt.Errorf("persistent id %s is not ('storage', type, key, location, numel)", pyRepr(pid))
	}
	t := tup.items
	if tag, _ := t[0].(string); tag != "storage" {
		return nil, fmt.Errorf("persistent id of kind %s, want 'storage'", pyRepr(t[0]))
	}
	g, ok := t[1].(*pyGlobal)
	if !ok || !strings.HasPrefix(g.name, "torch.") {
		return nil, fmt.Errorf("storage type is a %s, not a torch storage class", pyTypeName(t[1]))
	}
	dt, ok := torchStorageTypes[strings.TrimPrefix(g.name, "torch.")]
	if !ok {
		return nil, fmt.Errorf("%s is not a storage class", g.name)
	}
	key, ok1 := t[2].(string)
	n, ok2 := t[4].(int64)
	if !ok1 || !ok2 || n < 0 || len(key) > 256 {
		return nil, fmt.Errorf("bad storage key or size in persistent id")
	}
	if s, ok := l.storages[key]; ok {
		if s.dtype != dt || s.numel != n {
			return nil, fmt.Errorf("storage %s used as %s[%d] and %s[%d]", key, s.dtype, s.numel, dt, n)
		}
		return s, nil
	}
	data, ok := l.entries["data/"+key]
	if !ok {
		return nil, fmt.Errorf("%w: storage data/%s is not in the archive", ErrMissing, key)
	}
	size, err := dt.ByteSize(n)
	if err != nil || size != int64(len(data)) {
		return nil, fmt.Errorf("storage data/%s has %d bytes, but %d values of %s need %d", key, len(data), n, dt, size)
	}
	s := &torchStorage{dtype: dt, key: key, numel: n, data: data}
	l.storages[key] = s
	return s, nil
}

// maxTensorDims bounds tensor ranks (torch allows 64; real checkpoints use at most 5).
const maxTensorDims = 16

func toInts(v any, what string) ([]int64, error) {
	tup, ok := v.(*pyTuple)
	if !ok {
		return nil, fmt.Errorf("%s is a %s, not a tuple", what, pyTypeName(v))
	}
	t := tup.items
	if len(t) > maxTensorDims {
		return nil, fmt.Errorf("%s has %d dimensions, at most %d supported", what, len(t), maxTensorDims)
	}
	out := make([]int64, len(t))
	for i, e := range t {
		n, ok := e.(int64)
		if !ok || n < 0 {
			return nil, fmt.Errorf("%s %s has a bad entry", what, pyRepr(tup))
		}
		out[i] = n
	}
	return out, nil
}

// rebuildTensor is _rebuild_tensor_v2(storage, storage_offset, size, stride,
// requires_grad, backward_hooks[, metadata]) (and the older 4-argument _rebuild_tensor).
// Contiguous tensors are views of the storage; strided ones are copied out, within the
// budget (the file size), so a crafted view cannot inflate memory.
func (l *torchLoader) rebuildTensor(args []any) (any, error) {
	if len(args) < 4 {
		return nil, fmt.Errorf("%d arguments, want (storage, offset, size, stride, ...)", len(args))
	}
	st, ok := args[0].(*torchStorage)
	if !ok {
		return nil, fmt.Errorf("storage argument is a %s", pyTypeName(args[0]))
	}
	off, ok := args[1].(int64)
	if !ok || off < 0 {
		return nil, fmt.Errorf("bad storage offset %s", pyRepr(args[1]))
	}
	size, err := toInts(args[2], "size")
	if err != nil {
		return nil, err
	}
	stride, err := toInts(args[3], "stride")
	if err != nil {
		return nil, err
	}
	if len(stride) != len(size) {
		return nil, fmt.Errorf("size %v and stride %v differ in length", size, stride)
	}
	shape := make([]int, len(size))
	for i, s := range size {
		shape[i] = int(s)
	}
	n, err := numel(shape)
	if err != nil {
		return nil, err
	}
	es := int64(st.dtype.BlockBytes())
	t := &torchTensor{dtype: st.dtype, shape: shape}
	if n == 0 {
		t.data = []byte{}
		return t, nil
	}
	// last element index = off + sum((size_i - 1) * stride_i), checked for overflow
	last := off
	for i := range size {
		if stride[i] != 0 && size[i]-1 > (math.MaxInt64-last)/stride[i] {
			return nil, fmt.Errorf("size %v and stride %v overflow", size, stride)
		}
		last += (size[i] - 1) * stride[i]
	}
	if last >= st.numel {
		return nil, fmt.Errorf("view (offset %d, size %v, stride %v) reaches element %d of a %d-element storage", off, size, stride, last, st.numel)
	}
	contiguous := true
	want := int64(1)
	for i := len(size) - 1; i >= 0; i-- {
		if size[i] != 1 && stride[i] != want {
			contiguous = false
			break
		}
		want *= size[i]
	}
	if contiguous {
		t.data = st.data[off*es : (off+n)*es : (off+n)*es]
		return t, nil
	}
	if n > l.budget/es {
		return nil, fmt.Errorf("strided view (size %v, stride %v) of %d bytes is larger than the file allows: re-save with .contiguous()", size, stride, n*es)
	}
	l.budget -= n * es
	t.data = gatherStrided(st.data, es, off, size, stride, n)
	return t, nil
}

// gatherStrided copies a strided view into a new contiguous buffer.
func gatherStrided(src []byte, es, off int64, size, stride []int64, n int64) []byte {
	out := make([]byte, 0, n*es)
	idx := make([]int64, len(size))
	for {
		p := off
		for i := range idx {
			p += idx[i] * stride[i]
		}
		out = append(out, src[p*es:(p+1)*es]...)
		i := len(idx) - 1
		for ; i >= 0; i-- {
			idx[i]++
			if idx[i] < size[i] {
				break
			}
			idx[i] = 0
		}
		if i < 0 {
			return out
		}
	}
}

// parseTorchZip reads a torch.save zip archive and returns its state dict's tensors.
func parseTorchZip(data []byte, file string) ([]Tensor, error) {
	fail := func(err error) error { return fmt.Errorf("weights: %s: %w", file, err) }
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, fail(fmt.Errorf("%w: not a readable zip: %v", ErrFormat, err))
	}
	var pkl *zip.File
	for _, f := range zr.File {
		if path.Base(f.Name) == "data.pkl" && strings.Count(f.Name, "/") <= 1 {
			if pkl != nil {
				return nil, fail(fmt.Errorf("%w: two data.pkl records (%s, %s)", ErrFormat, pkl.Name, f.Name))
			}
			pkl = f
		}
	}
	if pkl == nil {
		return nil, fail(fmt.Errorf("%w: zip without data.pkl: not a torch.save checkpoint", ErrFormat))
	}
	prefix := strings.TrimSuffix(pkl.Name, "data.pkl")
	l := &torchLoader{file: file, entries: map[string][]byte{}, storages: map[string]*torchStorage{}, budget: int64(len(data))}
	var pklData []byte
	for _, f := range zr.File {
		if !strings.HasPrefix(f.Name, prefix) {
			continue
		}
		rel := strings.TrimPrefix(f.Name, prefix)
		if rel != "data.pkl" && rel != "byteorder" && !strings.HasPrefix(rel, "data/") {
			continue
		}
		b, err := storedBytes(data, f)
		if err != nil {
			return nil, fail(err)
		}
		switch rel {
		case "data.pkl":
			pklData = b
		case "byteorder":
			if s := strings.TrimSpace(string(b)); s != "little" {
				return nil, fail(fmt.Errorf("%w: byteorder %q: only little-endian checkpoints are supported", ErrFormat, s))
			}
		default:
			l.entries[rel] = b
		}
	}
	obj, err := unpickle(pklData, l.globals, l.persistentLoad)
	if err != nil {
		if errors.Is(err, ErrUnsafe) {
			return nil, fail(fmt.Errorf("%s/data.pkl: %w (a .pt file is data, never code; allowed: %s)%s",
				strings.TrimSuffix(prefix, "/"), err, strings.Join(AllowedPickleGlobals(), ", "), unsafeHint(err)))
		}
		return nil, fail(fmt.Errorf("%w: %sdata.pkl: %w", ErrFormat, prefix, err))
	}
	root, ok := obj.(*pyDict)
	if !ok {
		return nil, fail(fmt.Errorf("%w: the pickled object is a %s, not a state dict (save model.state_dict())", ErrFormat, pyTypeName(obj)))
	}
	// Real names are a sliver of a checkpoint: the file's size plus 1 MiB is plenty.
	tensors, err := flattenStateDict(root, int64(len(data))+1<<20)
	if err != nil {
		return nil, fail(err)
	}
	if len(tensors) == 0 {
		return nil, fail(fmt.Errorf("%w: no tensors in the pickled dict (is it a state dict?)", ErrFormat))
	}
	return tensors, nil
}

func unsafeHint(err error) string {
	s := err.Error()
	switch {
	case strings.Contains(s, "__torch__"):
		return "; this looks like a TorchScript archive: save the model's state_dict() with torch.save instead"
	case strings.Contains(s, "numpy"):
		return "; numpy objects are not part of a state dict: convert them to tensors or drop them before saving"
	}
	return ""
}

// flattenStateDict collects the tensors of a state dict. Nested dicts (checkpoints like
// {"model": state_dict, "epoch": 3}) give dotted names; values that are not tensors or
// dicts (numbers, strings) and entries with non-string keys are not tensors and are left
// out. A dict reached twice (shared or cyclic) is an error: state dicts are trees, and
// walking a crafted DAG would take exponential time. The walk goes at most maxDepth dicts
// deep, and the names it makes may total at most nameBudget bytes: nested dicts repeat
// their prefixes in every name, so a deep nesting of long keys could otherwise ask for
// gigabytes from a small pickle.
func flattenStateDict(root *pyDict, nameBudget int64) ([]Tensor, error) {
	f := &flattener{seen: map[*pyDict]bool{}, budget: nameBudget}
	if err := f.walk(root, 0); err != nil {
		return nil, err
	}
	return f.out, nil
}

// flattener walks nested dicts keeping the current key path as a stack of parts, so a
// name is built once, at its tensor, instead of each level copying its prefix.
type flattener struct {
	seen    map[*pyDict]bool
	path    []string
	pathLen int // bytes of the path joined with dots, trailing dot included
	budget  int64
	out     []Tensor
}

func (f *flattener) prefix() string { return strings.Join(f.path, ".") }

func (f *flattener) walk(d *pyDict, depth int) error {
	if f.seen[d] {
		return fmt.Errorf("%w: dict \"%s\" is reached twice (shared or cyclic), not a state dict", ErrFormat, escape.Bounded(f.prefix(), 200))
	}
	if depth >= maxDepth {
		return fmt.Errorf("%w: dicts nested more than %d deep under \"%s\", not a state dict", ErrFormat, maxDepth, escape.Bounded(f.prefix(), 200))
	}
	f.seen[d] = true
	for i, k := range d.keys {
		name, ok := k.(string)
		if !ok {
			continue
		}
		switch v := d.vals[i].(type) {
		case *torchTensor:
			n := f.pathLen + len(name)
			if f.budget -= int64(n); f.budget < 0 {
				return fmt.Errorf("%w: tensor names under \"%s\" add up to more than the file could hold", ErrFormat, escape.Bounded(f.prefix(), 200))
			}
			var b strings.Builder
			b.Grow(n)
			for _, p := range f.path {
				b.WriteString(p)
				b.WriteByte('.')
			}
			b.WriteString(name)
			f.out = append(f.out, Tensor{Name: b.String(), DType: v.dtype, Shape: v.shape, Data: v.data})
		case *pyDict:
			f.path = append(f.path, name)
			f.pathLen += len(name) + 1
			err := f.walk(v, depth+1)
			f.path = f.path[:len(f.path)-1]
			f.pathLen -= len(name) + 1
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// storedBytes returns a zip record's bytes as a view of the archive; compressed records
// are refused (torch.save stores everything uncompressed so it can be mapped).
func storedBytes(archive []byte, f *zip.File) ([]byte, error) {
	if f.Method != zip.Store {
		return nil, fmt.Errorf("%w: zip record %s is compressed (method %d); torch.save writes uncompressed records: re-save with torch.save", ErrFormat, f.Name, f.Method)
	}
	off, err := f.DataOffset()
	if err != nil {
		return nil, fmt.Errorf("%w: zip record %s: %v", ErrFormat, f.Name, err)
	}
	size := f.UncompressedSize64
	if off < 0 || uint64(off) > uint64(len(archive)) || size > uint64(len(archive))-uint64(off) || f.CompressedSize64 != size {
		return nil, fmt.Errorf("%w: zip record %s (offset %d, %d bytes) is outside the %d-byte file", ErrFormat, f.Name, off, size, len(archive))
	}
	return archive[off : off+int64(size) : off+int64(size)], nil
}
