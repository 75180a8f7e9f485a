package weights

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// Hostile pickles that are small or cheap to build. Each must end in a short error,
// quickly, allocating in proportion to its size (issue 20, cases 1-3).

// put memoizes the top of the stack under i (LONG_BINPUT); get pushes it (LONG_BINGET).
func (p *pk) put(i int) *pk {
	p.WriteByte('r')
	binary.Write(&p.Buffer, binary.LittleEndian, uint32(i))
	return p
}

func (p *pk) get(i int) *pk {
	p.WriteByte('j')
	binary.Write(&p.Buffer, binary.LittleEndian, uint32(i))
	return p
}

// dagTuple pushes a tuple of depth levels in which each level holds the one below twice
// (by memo reference): a few bytes per level, 2^levels leaves when printed.
func (p *pk) dagTuple(levels int) *pk {
	p.str("x").op(0x85).put(0).op('0')
	for i := 1; i <= levels; i++ {
		p.get(i - 1).get(i - 1).op(0x86).put(i).op('0')
	}
	return p.get(levels)
}

// tryPickle runs the torch unpickler on a pickle, checks the allocation bound, and
// returns its error (nil when it built a state dict) after flattening.
func tryPickle(t *testing.T, data []byte) error {
	t.Helper()
	var err error
	checkAlloc(t, len(data), func() {
		l := &torchLoader{file: "t", entries: fuzzStorages, storages: map[string]*torchStorage{}, budget: int64(len(data))}
		var obj any
		if obj, err = unpickle(data, l.globals, l.persistentLoad); err != nil {
			return
		}
		d, ok := obj.(*pyDict)
		if !ok {
			err = errors.New("not a dict")
			return
		}
		_, err = flattenStateDict(d, int64(len(data))+1<<20) // as parseTorchZip
	})
	return err
}

func checkShortError(t *testing.T, what string, err error, want string) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("%s: accepted", what)
	case len(err.Error()) > 600:
		t.Errorf("%s: error of %d bytes, want one short line", what, len(err.Error()))
	case !strings.Contains(err.Error(), want):
		t.Errorf("%s: %v, want it to mention %q", what, err, want)
	}
}

// Case 1: a persistent id whose kind, or a tensor size whose entry, is a tuple DAG. The
// error message used to print it with %v (2^40 leaves here: the process grew past
// gigabytes and hung).
func TestPickleDAGInErrorMessages(t *testing.T) {
	pid := newPickle().global("collections", "OrderedDict").op(')', 'R').str("w")
	pid.op('(').dagTuple(40).global("torch", "FloatStorage").str("0").str("cpu").int(16).op('t', 'Q')
	checkShortError(t, "DAG persistent id kind", tryPickle(t, pid.op('s', '.').Bytes()), "persistent id of kind")

	size := newPickle().global("collections", "OrderedDict").op(')', 'R').str("w")
	size.global("torch._utils", "_rebuild_tensor_v2").op('(')
	size.op('(').str("storage").global("torch", "FloatStorage").str("0").str("cpu").int(16).op('t', 'Q')
	size.int(0).op('(').dagTuple(40).op('t').ints(1).op(0x89)
	size.global("collections", "OrderedDict").op(')', 'R', 't', 'R')
	checkShortError(t, "DAG tensor size", tryPickle(t, size.op('s', '.').Bytes()), "size")
}

// Case 2: 1 MB of TUPLE1 opcodes nests a tuple a million deep; printing or walking it
// overflowed the stack. The unpickler now refuses to nest past maxDepth.
func TestPickleDeepTupleRefused(t *testing.T) {
	p := newPickle().int(1)
	p.Write(bytes.Repeat([]byte{0x85}, 1<<20))
	checkShortError(t, "deep tuple", tryPickle(t, p.op('.').Bytes()), "nested")

	// The same nesting inside a persistent id, where it reached an error message.
	p = newPickle().global("collections", "OrderedDict").op(')', 'R').str("w").op('(').int(1)
	p.Write(bytes.Repeat([]byte{0x85}, 1<<16))
	p.global("torch", "FloatStorage").str("0").str("cpu").int(16).op('t', 'Q', 's', '.')
	checkShortError(t, "deep tuple in a persistent id", tryPickle(t, p.Bytes()), "nested")

	// A list made deep after it was nested (APPEND through the memo) cannot be refused at
	// construction; the walks bound themselves.
	p = newPickle().op(']').put(0) // L
	for i := 0; i < 50; i++ {
		p.op(0x85) // (L,), ((L,),), ...
	}
	p.put(1).get(0).get(1).op('a', '0') // L.append(the 50-deep tuple holding L): a cycle
	p.global("collections", "OrderedDict").op(')', 'R').str("w")
	p.op('(').get(1).global("torch", "FloatStorage").str("0").str("cpu").int(16).op('t', 'Q', 's', '.')
	checkShortError(t, "cycle through a list", tryPickle(t, p.Bytes()), "persistent id")
}

// Case 3: nested dicts. Deeper than maxDepth is refused; within it, a long key repeated
// down the nesting (one string, reused through the memo) would make every tensor name
// megabytes long: the names' total is bounded by the file's size.
func TestPickleNestedDicts(t *testing.T) {
	// ~800 KB: a dict, then 100,000 times (key, child dict), then a SETITEM per level.
	p := newPickle().str("k").put(0).op('0', '}')
	for i := 0; i < 100_000; i++ {
		p.get(0).op('}')
	}
	p.Write(bytes.Repeat([]byte{'s'}, 100_000))
	checkShortError(t, "100,000 nested dicts", tryPickle(t, p.op('.').Bytes()), "nested")

	long := strings.Repeat("k", 60<<10)
	p = newPickle().str(long).put(0).op('0') // memoize the 60 KB key, drop it
	p.op('}')                                // root
	for i := 1; i < 60; i++ {
		p.get(0).op('}') // key, child dict
	}
	p.tensor("0", 16, 0, []int{4}, []int{1}).put(1).op('0')
	p.op('(')
	for i := 0; i < 5000; i++ {
		p.str(strings.Repeat("t", 1+i%7) + string(rune('a'+i%26)) + strings.Repeat("x", i/182)).get(1)
	}
	p.op('u')
	for i := 1; i < 60; i++ {
		p.op('s')
	}
	err := tryPickle(t, p.op('.').Bytes())
	checkShortError(t, "60 KB key at 59 levels, 5000 tensors", err, "tensor names")
	if !errors.Is(err, ErrFormat) {
		t.Errorf("error %v does not wrap ErrFormat", err)
	}
}

// Names built from a path stack are the dotted names, as before.
func TestFlattenNames(t *testing.T) {
	p := newPickle().op('}').str("model").op('}').str("enc").op('}')
	p.str("w").tensor("0", 16, 0, []int{4}, []int{1}).op('s', 's', 's')
	p.str("top").tensor("0", 16, 4, []int{2}, []int{1}).op('s', '.')
	l := &torchLoader{file: "t", entries: fuzzStorages, storages: map[string]*torchStorage{}, budget: 1 << 20}
	obj, err := unpickle(p.Bytes(), l.globals, l.persistentLoad)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := flattenStateDict(obj.(*pyDict), 14)
	if err != nil || len(ts) != 2 || ts[0].Name != "model.enc.w" || ts[1].Name != "top" {
		t.Fatalf("tensors %v, err %v", ts, err)
	}
}

// The fuzz seeds sit at the limits: one step inside each is accepted, one step past it
// refused, so `make fuzz` starts from both sides of every bound.
func TestLimitSeedsReachTheLimits(t *testing.T) {
	seeds := limitSeeds()
	want := []string{"", "", "nested", "nested", "persistent id of kind", "tensor names"}
	if len(seeds) != len(want) {
		t.Fatalf("%d seeds, want %d", len(seeds), len(want))
	}
	for i, data := range seeds {
		l := &torchLoader{file: "t", entries: fuzzStorages, storages: map[string]*torchStorage{}, budget: int64(len(data))}
		obj, err := unpickle(data, l.globals, l.persistentLoad)
		if err == nil {
			if d, ok := obj.(*pyDict); ok {
				_, err = flattenStateDict(d, int64(len(data)))
			}
		}
		switch {
		case want[i] == "" && err != nil:
			t.Errorf("seed %d (%d bytes): %v, want it accepted", i, len(data), err)
		case want[i] != "" && (err == nil || !strings.Contains(err.Error(), want[i])):
			t.Errorf("seed %d (%d bytes): %v, want an error about %q", i, len(data), err, want[i])
		}
		if len(data) > maxSeed {
			t.Errorf("seed %d is %d bytes, more than the %d the fuzzer minimizes quickly", i, len(data), maxSeed)
		}
	}
}
