package weights

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"synth/internal/escape"
)

// A restricted unpickler: a stack machine for Python's pickle opcodes (protocols 0-5)
// over plain data values. It never runs code: a GLOBAL is looked up in an allow-list of
// Go functions written for the few callables a torch state dict uses, and any other global
// is refused, naming it, before anything else happens. Every value it creates is built
// from input bytes (each opcode consumes at least one byte and makes a bounded number of
// values), so memory stays proportional to the input, and it runs in one pass (pickles
// have no loops).
//
// Why our own and not github.com/nlpodyssey/gopickle: weights is standard-library only,
// and gopickle is a general unpickler whose safety would rest on a class-resolving
// callback over Python-like objects; here the only callables are a handful of Go
// functions, which makes the allow-list the whole attack surface and lets every
// allocation be bounded by the input size (checked by FuzzUnpickle).

// Containers record how deeply they nest (1 for a container of scalars): the unpickler
// refuses to build one deeper than maxDepth, so no walk over a value recurses without
// bound. Lists and dicts can still be changed after they were nested (a crafted pickle
// can even make a cycle through them), so every walk also bounds itself (pyRepr,
// flattenStateDict).
type (
	pyNone  struct{}
	pyTuple struct {
		items []any
		depth int
	}
	pyBytes []byte
	pyList  struct {
		items []any
		depth int
	}
	pyDict struct {
		keys  []any
		vals  []any
		index map[any]int // made on first insert
		depth int
	}
	// pyGlobal is an allowed global; call builds its value from REDUCE/NEWOBJ arguments
	// (nil for globals that are only markers, like the storage classes).
	pyGlobal struct {
		name string
		call func(args []any) (any, error)
	}
	pyMark struct{}
)

// maxDepth bounds container nesting. A torch state dict nests a handful of levels (a
// checkpoint dict, the state dict, _metadata's dicts, a size tuple); 1 MB of TUPLE1
// opcodes would otherwise nest a million deep and overflow the stack of any recursive
// walk (printing the value in an error message did).
const maxDepth = 64

// depthOf is how deeply v nests: 0 for a scalar.
func depthOf(v any) int {
	switch x := v.(type) {
	case *pyTuple:
		return x.depth
	case *pyList:
		return x.depth
	case *pyDict:
		return x.depth
	}
	return 0
}

// nest is the depth of a container holding items (at least depth), or an error past
// maxDepth.
func nest(depth int, items ...any) (int, error) {
	for _, v := range items {
		depth = max(depth, depthOf(v)+1)
	}
	if depth > maxDepth {
		return 0, fmt.Errorf("containers nested %d deep, more than the %d a state dict needs", depth, maxDepth)
	}
	return depth, nil
}

func newTuple(items []any) (*pyTuple, error) {
	d, err := nest(1, items...)
	if err != nil {
		return nil, err
	}
	return &pyTuple{items: items, depth: d}, nil
}

func newDict() *pyDict { return &pyDict{depth: 1} }

// maxKeyLen bounds dict-key strings: state-dict keys are short, and a bound keeps a
// crafted pickle that reuses one huge key many times from costing time per reuse.
const maxKeyLen = 1 << 16

func (d *pyDict) set(k, v any) error {
	switch x := k.(type) {
	case string:
		if len(x) > maxKeyLen {
			return fmt.Errorf("dict key of %d bytes is too long", len(x))
		}
	case int64, float64, bool, pyNone:
	default:
		// tuples, bytes, ... as keys never occur in a state dict
		return fmt.Errorf("dict key of type %s is not supported", pyTypeName(k))
	}
	depth, err := nest(d.depth, v)
	if err != nil {
		return err
	}
	d.depth = depth
	if d.index == nil {
		d.index = map[any]int{}
	}
	if i, ok := d.index[k]; ok {
		d.vals[i] = v
		return nil
	}
	d.index[k] = len(d.keys)
	d.keys = append(d.keys, k)
	d.vals = append(d.vals, v)
	return nil
}

func pyTypeName(v any) string {
	switch v.(type) {
	case string:
		return "str"
	case int64:
		return "int"
	case float64:
		return "float"
	case bool:
		return "bool"
	case pyNone:
		return "None"
	case pyBytes:
		return "bytes"
	case *pyTuple:
		return "tuple"
	case *pyList:
		return "list"
	case *pyDict:
		return "dict"
	case *pyGlobal:
		return "global"
	case *torchTensor:
		return "tensor"
	case *torchStorage:
		return "storage"
	}
	return fmt.Sprintf("%T", v)
}

// unpickler state. globals resolves "module.name" to an allowed global (or nil: refused).
type unpickler struct {
	data    []byte
	pos     int
	stack   []any
	marks   []int
	memo    map[uint64]any
	globals func(module, name string) *pyGlobal
	persist func(pid any) (any, error)
}

// errorf reports an error at a byte offset of the pickle. Values from the pickle go in
// through pyRepr or escape.Bounded, never %v: a value can be a DAG that prints
// exponentially large.
func (u *unpickler) errorf(format string, args ...any) error {
	return fmt.Errorf("pickle offset %d: %s", u.pos, fmt.Sprintf(format, args...))
}

func (u *unpickler) need(n int) ([]byte, error) {
	if n < 0 || n > len(u.data)-u.pos {
		return nil, u.errorf("truncated pickle: %d bytes needed, %d left", n, len(u.data)-u.pos)
	}
	b := u.data[u.pos : u.pos+n]
	u.pos += n
	return b, nil
}

func (u *unpickler) readLine() (string, error) {
	i := bytes.IndexByte(u.data[u.pos:], '\n')
	if i < 0 {
		return "", u.errorf("truncated pickle: unterminated line")
	}
	s := string(u.data[u.pos : u.pos+i])
	u.pos += i + 1
	return s, nil
}

func (u *unpickler) push(v any) { u.stack = append(u.stack, v) }

func (u *unpickler) pop() (any, error) {
	n := len(u.stack)
	if n == 0 || (len(u.marks) > 0 && n <= u.marks[len(u.marks)-1]) {
		return nil, u.errorf("stack underflow")
	}
	v := u.stack[n-1]
	u.stack = u.stack[:n-1]
	return v, nil
}

func (u *unpickler) top() (any, error) {
	n := len(u.stack)
	if n == 0 || (len(u.marks) > 0 && n <= u.marks[len(u.marks)-1]) {
		return nil, u.errorf("stack underflow")
	}
	return u.stack[n-1], nil
}

// popMark returns the items pushed since the last MARK and removes them and the mark.
func (u *unpickler) popMark() ([]any, error) {
	if len(u.marks) == 0 {
		return nil, u.errorf("no MARK on the stack")
	}
	m := u.marks[len(u.marks)-1]
	u.marks = u.marks[:len(u.marks)-1]
	items := append([]any(nil), u.stack[m:]...)
	u.stack = u.stack[:m]
	return items, nil
}

func (u *unpickler) uint(n int) (uint64, error) {
	b, err := u.need(n)
	if err != nil {
		return 0, err
	}
	var v uint64
	for i := n - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v, nil
}

// unpickle runs the pickle in data and returns the object it builds.
func unpickle(data []byte, globals func(module, name string) *pyGlobal, persist func(pid any) (any, error)) (any, error) {
	u := &unpickler{data: data, memo: map[uint64]any{}, globals: globals, persist: persist}
	for {
		if u.pos >= len(u.data) {
			return nil, u.errorf("truncated pickle: no STOP opcode")
		}
		op := u.data[u.pos]
		u.pos++
		done, err := u.step(op)
		if err != nil {
			return nil, err
		}
		if done {
			if len(u.stack) != 1 || len(u.marks) != 0 {
				return nil, u.errorf("STOP with %d values and %d marks on the stack", len(u.stack), len(u.marks))
			}
			return u.stack[0], nil
		}
	}
}

// refused is the ErrUnsafe error naming a global, escaped and bounded (the names come
// from the file and end up on a terminal).
func refused(module, name string) error {
	return fmt.Errorf("%w: %s", ErrUnsafe, escape.Bounded(module+"."+name, 200))
}

func (u *unpickler) global(module, name string) error {
	g := u.globals(module, name)
	if g == nil {
		return refused(module, name)
	}
	u.push(g)
	return nil
}

func (u *unpickler) step(op byte) (bool, error) {
	switch op {
	case '.': // STOP
		return true, nil
	case 0x80: // PROTO
		b, err := u.need(1)
		if err != nil {
			return false, err
		}
		if b[0] > 5 {
			return false, u.errorf("unsupported pickle protocol %d", b[0])
		}
	case 0x95: // FRAME: a length hint only
		if _, err := u.need(8); err != nil {
			return false, err
		}
	case '(': // MARK
		u.marks = append(u.marks, len(u.stack))
	case '0': // POP
		if len(u.stack) > 0 && (len(u.marks) == 0 || len(u.stack) > u.marks[len(u.marks)-1]) {
			u.stack = u.stack[:len(u.stack)-1]
		} else if _, err := u.popMark(); err != nil { // POP of a MARK discards it
			return false, err
		}
	case '1': // POP_MARK
		if _, err := u.popMark(); err != nil {
			return false, err
		}
	case '2': // DUP
		v, err := u.top()
		if err != nil {
			return false, err
		}
		u.push(v)
	case 'N':
		u.push(pyNone{})
	case 0x88:
		u.push(true)
	case 0x89:
		u.push(false)
	case 'J': // BININT
		v, err := u.uint(4)
		if err != nil {
			return false, err
		}
		u.push(int64(int32(uint32(v))))
	case 'K': // BININT1
		v, err := u.uint(1)
		if err != nil {
			return false, err
		}
		u.push(int64(v))
	case 'M': // BININT2
		v, err := u.uint(2)
		if err != nil {
			return false, err
		}
		u.push(int64(v))
	case 0x8a, 0x8b: // LONG1, LONG4: little-endian two's complement
		var n uint64
		var err error
		if op == 0x8a {
			n, err = u.uint(1)
		} else {
			n, err = u.uint(4)
		}
		if err != nil {
			return false, err
		}
		if n > 8 {
			// no state-dict value needs more than int64 (sizes, strides, offsets)
			return false, u.errorf("integer of %d bytes is too large", n)
		}
		b, err := u.need(int(n))
		if err != nil {
			return false, err
		}
		u.push(decodeLong(b))
	case 'I': // INT (text)
		s, err := u.readLine()
		if err != nil {
			return false, err
		}
		switch s {
		case "00":
			u.push(false)
		case "01":
			u.push(true)
		default:
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return false, u.errorf("bad INT %s", escape.Bounded(s, 40))
			}
			u.push(v)
		}
	case 'L': // LONG (text)
		s, err := u.readLine()
		if err != nil {
			return false, err
		}
		v, err := strconv.ParseInt(strings.TrimSuffix(s, "L"), 10, 64)
		if err != nil {
			return false, u.errorf("bad or too large LONG %s", escape.Bounded(s, 40))
		}
		u.push(v)
	case 'F': // FLOAT (text)
		s, err := u.readLine()
		if err != nil {
			return false, err
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return false, u.errorf("bad FLOAT %s", escape.Bounded(s, 40))
		}
		u.push(v)
	case 'G': // BINFLOAT, big-endian
		b, err := u.need(8)
		if err != nil {
			return false, err
		}
		u.push(math.Float64frombits(binary.BigEndian.Uint64(b)))
	case 'X', 0x8c, 0x8d: // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8
		size := map[byte]int{'X': 4, 0x8c: 1, 0x8d: 8}[op]
		n, err := u.uint(size)
		if err != nil {
			return false, err
		}
		b, err := u.need(int(min(n, uint64(len(u.data)+1))))
		if err != nil {
			return false, err
		}
		if !utf8.Valid(b) {
			return false, u.errorf("string is not valid UTF-8")
		}
		u.push(string(b))
	case 'T', 'U': // BINSTRING, SHORT_BINSTRING (Python 2 str)
		size := 4
		if op == 'U' {
			size = 1
		}
		n, err := u.uint(size)
		if err != nil {
			return false, err
		}
		if op == 'T' && int32(uint32(n)) < 0 {
			return false, u.errorf("negative BINSTRING length")
		}
		b, err := u.need(int(min(n, uint64(len(u.data)+1))))
		if err != nil {
			return false, err
		}
		u.push(string(b))
	case 'B', 'C', 0x8e, 0x96: // BINBYTES, SHORT_BINBYTES, BINBYTES8, BYTEARRAY8
		size := map[byte]int{'B': 4, 'C': 1, 0x8e: 8, 0x96: 8}[op]
		n, err := u.uint(size)
		if err != nil {
			return false, err
		}
		b, err := u.need(int(min(n, uint64(len(u.data)+1))))
		if err != nil {
			return false, err
		}
		u.push(pyBytes(append([]byte(nil), b...)))
	case 'S': // STRING (text, quoted)
		s, err := u.readLine()
		if err != nil {
			return false, err
		}
		v, err := unquotePy(s)
		if err != nil {
			return false, u.errorf("bad STRING: %v", err)
		}
		u.push(v)
	case 'V': // UNICODE (raw-unicode-escape)
		s, err := u.readLine()
		if err != nil {
			return false, err
		}
		v, err := rawUnicodeEscape(s)
		if err != nil {
			return false, u.errorf("bad UNICODE: %v", err)
		}
		u.push(v)
	case ')':
		u.push(&pyTuple{depth: 1})
	case 0x85, 0x86, 0x87: // TUPLE1..3
		n := int(op-0x85) + 1
		items := make([]any, n)
		for i := n - 1; i >= 0; i-- {
			v, err := u.pop()
			if err != nil {
				return false, err
			}
			items[i] = v
		}
		return false, u.pushTuple(items)
	case 't': // TUPLE
		items, err := u.popMark()
		if err != nil {
			return false, err
		}
		return false, u.pushTuple(items)
	case ']':
		u.push(&pyList{depth: 1})
	case 'l': // LIST
		items, err := u.popMark()
		if err != nil {
			return false, err
		}
		d, err := nest(1, items...)
		if err != nil {
			return false, u.errorf("%v", err)
		}
		u.push(&pyList{items: items, depth: d})
	case 'a', 'e', 0x90: // APPEND, APPENDS, ADDITEMS
		var items []any
		if op == 'a' {
			v, err := u.pop()
			if err != nil {
				return false, err
			}
			items = []any{v}
		} else {
			var err error
			if items, err = u.popMark(); err != nil {
				return false, err
			}
		}
		t, err := u.top()
		if err != nil {
			return false, err
		}
		l, ok := t.(*pyList)
		if !ok {
			return false, u.errorf("append to a %s", pyTypeName(t))
		}
		d, err := nest(l.depth, items...)
		if err != nil {
			return false, u.errorf("%v", err)
		}
		l.items, l.depth = append(l.items, items...), d
	case 0x8f: // EMPTY_SET: kept as a list (only data, never used as a key)
		u.push(&pyList{depth: 1})
	case 0x91: // FROZENSET
		items, err := u.popMark()
		if err != nil {
			return false, err
		}
		return false, u.pushTuple(items)
	case '}':
		u.push(newDict())
	case 'd': // DICT
		items, err := u.popMark()
		if err != nil {
			return false, err
		}
		if len(items)%2 != 0 {
			return false, u.errorf("DICT with an odd number of items")
		}
		d := newDict()
		for i := 0; i < len(items); i += 2 {
			if err := d.set(items[i], items[i+1]); err != nil {
				return false, u.errorf("%v", err)
			}
		}
		u.push(d)
	case 's', 'u': // SETITEM, SETITEMS
		var items []any
		if op == 's' {
			v, err := u.pop()
			if err != nil {
				return false, err
			}
			k, err := u.pop()
			if err != nil {
				return false, err
			}
			items = []any{k, v}
		} else {
			var err error
			if items, err = u.popMark(); err != nil {
				return false, err
			}
			if len(items)%2 != 0 {
				return false, u.errorf("SETITEMS with an odd number of items")
			}
		}
		t, err := u.top()
		if err != nil {
			return false, err
		}
		d, ok := t.(*pyDict)
		if !ok {
			return false, u.errorf("set item on a %s", pyTypeName(t))
		}
		for i := 0; i < len(items); i += 2 {
			if err := d.set(items[i], items[i+1]); err != nil {
				return false, u.errorf("%v", err)
			}
		}
	case 'p': // PUT (text index)
		s, err := u.readLine()
		if err != nil {
			return false, err
		}
		i, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return false, u.errorf("bad PUT index %s", escape.Bounded(s, 40))
		}
		return false, u.put(i)
	case 'q', 'r': // BINPUT, LONG_BINPUT
		size := 1
		if op == 'r' {
			size = 4
		}
		i, err := u.uint(size)
		if err != nil {
			return false, err
		}
		return false, u.put(i)
	case 0x94: // MEMOIZE
		return false, u.put(uint64(len(u.memo)))
	case 'g': // GET (text index)
		s, err := u.readLine()
		if err != nil {
			return false, err
		}
		i, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return false, u.errorf("bad GET index %s", escape.Bounded(s, 40))
		}
		return false, u.get(i)
	case 'h', 'j': // BINGET, LONG_BINGET
		size := 1
		if op == 'j' {
			size = 4
		}
		i, err := u.uint(size)
		if err != nil {
			return false, err
		}
		return false, u.get(i)
	case 'c': // GLOBAL "module\nname\n"
		module, err := u.readLine()
		if err != nil {
			return false, err
		}
		name, err := u.readLine()
		if err != nil {
			return false, err
		}
		return false, u.global(module, name)
	case 0x93: // STACK_GLOBAL
		nv, err := u.pop()
		if err != nil {
			return false, err
		}
		mv, err := u.pop()
		if err != nil {
			return false, err
		}
		module, ok1 := mv.(string)
		name, ok2 := nv.(string)
		if !ok1 || !ok2 {
			return false, u.errorf("STACK_GLOBAL needs two strings")
		}
		return false, u.global(module, name)
	case 'R': // REDUCE
		args, err := u.pop()
		if err != nil {
			return false, err
		}
		fn, err := u.pop()
		if err != nil {
			return false, err
		}
		v, err := u.call(fn, args)
		if err != nil {
			return false, err
		}
		u.push(v)
	case 0x81: // NEWOBJ: cls.__new__(cls, *args)
		args, err := u.pop()
		if err != nil {
			return false, err
		}
		cls, err := u.pop()
		if err != nil {
			return false, err
		}
		v, err := u.call(cls, args)
		if err != nil {
			return false, err
		}
		u.push(v)
	case 0x92: // NEWOBJ_EX: cls, args, kwargs
		kw, err := u.pop()
		if err != nil {
			return false, err
		}
		args, err := u.pop()
		if err != nil {
			return false, err
		}
		cls, err := u.pop()
		if err != nil {
			return false, err
		}
		if d, ok := kw.(*pyDict); !ok || len(d.keys) != 0 {
			return false, u.errorf("NEWOBJ_EX with keyword arguments is not supported")
		}
		v, err := u.call(cls, args)
		if err != nil {
			return false, err
		}
		u.push(v)
	case 'i': // INST "module\nname\n": class instance from the items since MARK
		module, err := u.readLine()
		if err != nil {
			return false, err
		}
		name, err := u.readLine()
		if err != nil {
			return false, err
		}
		g := u.globals(module, name)
		if g == nil {
			return false, refused(module, name)
		}
		items, err := u.popMark()
		if err != nil {
			return false, err
		}
		v, err := u.call(g, &pyTuple{items: items})
		if err != nil {
			return false, err
		}
		u.push(v)
	case 'o': // OBJ: class and args since MARK
		items, err := u.popMark()
		if err != nil {
			return false, err
		}
		if len(items) == 0 {
			return false, u.errorf("OBJ without a class")
		}
		v, err := u.call(items[0], &pyTuple{items: items[1:]})
		if err != nil {
			return false, err
		}
		u.push(v)
	case 'b': // BUILD: obj.__setstate__(state)
		state, err := u.pop()
		if err != nil {
			return false, err
		}
		obj, err := u.top()
		if err != nil {
			return false, err
		}
		if _, ok := obj.(*pyDict); !ok {
			return false, u.errorf("BUILD on a %s is not supported", pyTypeName(obj))
		}
		// An OrderedDict's state is its attributes (torch's _metadata with module
		// versions); they carry no tensor data, so they are checked for shape and dropped.
		switch state.(type) {
		case *pyDict, pyNone, *pyTuple:
		default:
			return false, u.errorf("BUILD with a %s state", pyTypeName(state))
		}
	case 'P': // PERSID (text)
		s, err := u.readLine()
		if err != nil {
			return false, err
		}
		v, err := u.persistent(s)
		if err != nil {
			return false, err
		}
		u.push(v)
	case 'Q': // BINPERSID
		pid, err := u.pop()
		if err != nil {
			return false, err
		}
		v, err := u.persistent(pid)
		if err != nil {
			return false, err
		}
		u.push(v)
	case 0x82, 0x83, 0x84:
		return false, u.errorf("pickle extension registry (EXT opcodes) is not supported")
	case 0x97, 0x98:
		return false, u.errorf("out-of-band pickle buffers are not supported")
	default:
		return false, u.errorf("unknown pickle opcode 0x%02x", op)
	}
	return false, nil
}

func (u *unpickler) pushTuple(items []any) error {
	t, err := newTuple(items)
	if err != nil {
		return u.errorf("%v", err)
	}
	u.push(t)
	return nil
}

func (u *unpickler) put(i uint64) error {
	v, err := u.top()
	if err != nil {
		return err
	}
	u.memo[i] = v
	return nil
}

func (u *unpickler) get(i uint64) error {
	v, ok := u.memo[i]
	if !ok {
		return u.errorf("memo key %d not found", i)
	}
	u.push(v)
	return nil
}

func (u *unpickler) call(fn, args any) (any, error) {
	g, ok := fn.(*pyGlobal)
	if !ok {
		return nil, u.errorf("call of a %s", pyTypeName(fn))
	}
	t, ok := args.(*pyTuple)
	if !ok {
		return nil, u.errorf("%s called with a %s instead of an argument tuple", g.name, pyTypeName(args))
	}
	if g.call == nil {
		return nil, u.errorf("%s cannot be called", g.name)
	}
	v, err := g.call(t.items)
	if err != nil {
		return nil, fmt.Errorf("pickle offset %d: %s: %w", u.pos, g.name, err)
	}
	return v, nil
}

func (u *unpickler) persistent(pid any) (any, error) {
	if u.persist == nil {
		return nil, u.errorf("persistent id without a loader")
	}
	v, err := u.persist(pid)
	if err != nil {
		return nil, fmt.Errorf("pickle offset %d: %w", u.pos, err)
	}
	return v, nil
}

// decodeLong decodes a little-endian two's-complement integer of at most 8 bytes.
func decodeLong(b []byte) int64 {
	if len(b) == 0 {
		return 0
	}
	var v uint64
	for i := len(b) - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	shift := uint(64 - 8*len(b))
	return int64(v<<shift) >> shift
}

// unquotePy decodes a Python 2 repr string literal ('...' or "...").
func unquotePy(s string) (string, error) {
	if len(s) < 2 || (s[0] != '\'' && s[0] != '"') || s[len(s)-1] != s[0] {
		return "", fmt.Errorf("not a quoted string")
	}
	s = s[1 : len(s)-1]
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			sb.WriteByte(c)
			continue
		}
		i++
		if i >= len(s) {
			return "", fmt.Errorf("trailing backslash")
		}
		switch s[i] {
		case 'n':
			sb.WriteByte('\n')
		case 't':
			sb.WriteByte('\t')
		case 'r':
			sb.WriteByte('\r')
		case '\\', '\'', '"':
			sb.WriteByte(s[i])
		case 'x':
			if i+3 > len(s) {
				return "", fmt.Errorf("short \\x escape")
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return "", fmt.Errorf("bad \\x escape")
			}
			sb.WriteByte(byte(v))
			i += 2
		default:
			sb.WriteByte('\\')
			sb.WriteByte(s[i])
		}
	}
	return sb.String(), nil
}

// rawUnicodeEscape decodes Python's raw-unicode-escape (only \uXXXX and \UXXXXXXXX).
func rawUnicodeEscape(s string) (string, error) {
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && (s[i+1] == 'u' || s[i+1] == 'U') {
			n := 4
			if s[i+1] == 'U' {
				n = 8
			}
			if i+2+n > len(s) {
				return "", fmt.Errorf("short \\u escape")
			}
			v, err := strconv.ParseUint(s[i+2:i+2+n], 16, 32)
			if err != nil || v > utf8.MaxRune {
				return "", fmt.Errorf("bad \\u escape")
			}
			sb.WriteRune(rune(v))
			i += 1 + n
			continue
		}
		sb.WriteRune(rune(s[i])) // latin-1
	}
	return sb.String(), nil
}

// maxRepr bounds pyRepr's output, and with it the values it visits: each costs at least
// one byte of output.
const maxRepr = 160

// pyRepr renders a value like Python's repr, for error messages: at most about maxRepr
// bytes whatever the value (a DAG of shared tuples, a cycle through a list, a nesting a
// million deep), names escaped.
func pyRepr(v any) string {
	var b strings.Builder
	reprInto(&b, v, 0)
	if b.Len() > maxRepr {
		return b.String()[:maxRepr] + "..."
	}
	return b.String()
}

func reprInto(b *strings.Builder, v any, depth int) {
	if b.Len() > maxRepr {
		return
	}
	if depth > 8 {
		b.WriteString("...")
		return
	}
	seq := func(open, close string, items []any) {
		b.WriteString(open)
		for i, x := range items {
			if b.Len() > maxRepr {
				return
			}
			if i > 0 {
				b.WriteString(", ")
			}
			reprInto(b, x, depth+1)
		}
		b.WriteString(close)
	}
	switch x := v.(type) {
	case string:
		b.WriteString(strconv.Quote(escape.Bounded(x, 40)))
	case int64, float64, bool:
		fmt.Fprint(b, x)
	case pyNone:
		b.WriteString("None")
	case pyBytes:
		fmt.Fprintf(b, "<%d bytes>", len(x))
	case *pyTuple:
		if len(x.items) == 1 {
			seq("(", ",)", x.items)
		} else {
			seq("(", ")", x.items)
		}
	case *pyList:
		seq("[", "]", x.items)
	case *pyDict:
		fmt.Fprintf(b, "<dict of %d>", len(x.keys))
	case *pyGlobal:
		fmt.Fprintf(b, "<%s>", escape.Bounded(x.name, 60))
	default:
		b.WriteString("<" + pyTypeName(v) + ">")
	}
}
