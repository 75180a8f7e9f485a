package weights

import (
	"archive/zip"
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"synth/internal/fixtures"
)

// Fuzz targets for every parser of untrusted input. Malformed input must give an error:
// never a panic, a hang or an allocation out of proportion to the input. Each target
// checks the allocation bound itself (allocBound) and the invariants of what it accepted.
// Seeds come from the golden fixtures (when present) and from the unit tests' builders,
// and are kept to a few KiB: the Go fuzzer minimizes every new interesting input, which
// for inputs of tens of KiB takes longer than `make fuzz` runs each target.

// allocBound is the most a parser may allocate for n input bytes: the pickle VM makes a
// small Go value per opcode byte (a dict is ~100 bytes), the others a few times the
// input; the constant covers fixed tables.
func allocBound(n int) uint64 { return 256*uint64(n) + 4<<20 }

func checkAlloc(t *testing.T, n int, f func()) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > allocBound(n) {
		t.Fatalf("allocated %d bytes for %d input bytes (bound %d)", got, n, allocBound(n))
	}
}

// fixtureFiles returns the contents of fixture files no larger than maxSize under the
// families given, matched by suffix; missing fixtures give no seeds.
func fixtureFiles(suffix string, maxSize int64, families ...string) [][]byte {
	root := fixtures.Root()
	if root == "" {
		return nil
	}
	var out [][]byte
	for _, fam := range families {
		filepath.Walk(filepath.Join(root, fam), func(p string, info os.FileInfo, err error) error {
			if err == nil && !info.IsDir() && filepath.Ext(p) == suffix && info.Size() <= maxSize {
				if b, err := os.ReadFile(p); err == nil {
					out = append(out, b)
				}
			}
			return nil
		})
	}
	return out
}

// checkTensors verifies what a parser accepted: sizes consistent, conversions safe.
func checkTensors(t *testing.T, tensors []Tensor) {
	for _, tn := range tensors {
		n, err := numel(tn.Shape)
		if err != nil {
			t.Fatalf("accepted tensor %q with shape %v: %v", tn.Name, tn.Shape, err)
		}
		size, err := tn.DType.ByteSize(n)
		if err != nil || size != int64(len(tn.Data)) {
			t.Fatalf("accepted tensor %q: %d bytes for %s %v", tn.Name, len(tn.Data), tn.DType, tn.Shape)
		}
		if n <= 1<<16 {
			if CanDequantize(tn.DType) {
				tn.F32()
			} else if tn.DType.IsInt() {
				tn.Ints()
			}
		}
	}
}

// maxSeed bounds seed sizes (see the file comment).
const maxSeed = 4 << 10

func FuzzSafetensorsHeader(f *testing.F) {
	for _, b := range fixtureFiles(".safetensors", maxSeed, "blip2", "longclip") {
		f.Add(b)
	}
	// real names and dtypes from each fixture model: its small tensors, re-serialised
	if root := fixtures.Root(); root != "" {
		for _, p := range []string{"longclip/tiny-a/model.safetensors", "blip2/tiny-a/model.safetensors", "blip2/tiny-a/adapter_model.safetensors"} {
			src, err := Open(filepath.Join(root, p))
			if err != nil {
				continue
			}
			var small []Tensor
			for _, tn := range src.Tensors() {
				if len(tn.Data) <= 256 && len(small) < 6 {
					small = append(small, tn)
				}
			}
			out := filepath.Join(f.TempDir(), "seed.safetensors")
			if WriteSafetensors(out, small, map[string]string{"format": "pt"}) == nil {
				if b, err := os.ReadFile(out); err == nil {
					f.Add(b)
				}
			}
			src.Close()
		}
	}
	f.Add(stFile(`{"__metadata__":{"format":"pt"},"a":{"dtype":"F16","shape":[2,1],"data_offsets":[0,4]},"b":{"dtype":"I64","shape":[],"data_offsets":[4,12]}}`, make([]byte, 12)))
	f.Add(stFile(`{"a":{"dtype":"BF16","shape":[0],"data_offsets":[0,0]}}  `, nil))
	F16ToF32(0) // the conversion table is made once, outside the measured calls
	f.Fuzz(func(t *testing.T, data []byte) {
		checkAlloc(t, len(data), func() {
			tensors, _, err := parseSafetensors(data, "fuzz.safetensors")
			if err == nil {
				checkTensors(t, tensors)
			}
		})
	})
}

// fuzzStorages are the storage records the unpickler target offers to persistent ids.
var fuzzStorages = map[string][]byte{"data/0": make([]byte, 64), "data/1": make([]byte, 24), "data/2": make([]byte, 6)}

func FuzzUnpickle(f *testing.F) {
	if root := fixtures.Root(); root != "" {
		filepath.Walk(filepath.Join(root, "longclip"), func(p string, info os.FileInfo, err error) error {
			if err != nil || filepath.Ext(p) != ".pt" {
				return nil
			}
			zr, err := zip.OpenReader(p)
			if err != nil {
				return nil
			}
			defer zr.Close()
			for _, zf := range zr.File {
				if filepath.Base(zf.Name) == "data.pkl" {
					r, _ := zf.Open()
					var buf bytes.Buffer
					buf.ReadFrom(r)
					r.Close()
					f.Add(buf.Bytes()[:min(buf.Len(), maxSeed)]) // torch's opcode mix, cut short
				}
			}
			return nil
		})
	}
	p := newPickle().global("collections", "OrderedDict").op(')', 'R', '(')
	p.str("a").tensor("0", 16, 0, []int{2, 3}, []int{1, 2})
	p.str("b").tensor("0", 16, 4, []int{3}, []int{1})
	p.str("n").op('}').str("c").tensor("1", 6, 0, []int{6}, []int{1}).op('s')
	f.Add(p.op('u', '.').Bytes())
	// torch's shape: OrderedDict, memoised globals, SETITEMS, then BUILD with _metadata
	p = newPickle().global("collections", "OrderedDict").op('q', 0, ')', 'R', 'q', 1, '(')
	p.str("w").tensor("2", 6, 0, []int{3, 2}, []int{2, 1}).op('q', 2)
	p.str("v").op('h', 2)
	p.op('u', '}', 'q', 3).str("_metadata").op('h', 0, ')', 'R').str("").op('}').str("version").int(1).op('s', 's', 's', 'b', '.')
	f.Add(p.Bytes())
	f.Add(newPickle().global("os", "system").op('(').str("id").op('t', 'R', '.').Bytes())
	f.Add([]byte("(dp0\nS'k'\np1\nI1\nsL12L\n."))
	for _, b := range limitSeeds() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkAlloc(t, len(data), func() {
			l := &torchLoader{file: "fuzz", entries: fuzzStorages, storages: map[string]*torchStorage{}, budget: int64(len(data))}
			obj, err := unpickle(data, l.globals, l.persistentLoad)
			if err != nil {
				checkMessage(t, err)
				return
			}
			if d, ok := obj.(*pyDict); ok {
				// the names' budget is the pickle's size, without parseTorchZip's slack, so
				// that small inputs reach the bound
				tensors, err := flattenStateDict(d, int64(len(data)))
				if err == nil {
					checkTensors(t, tensors)
				} else {
					checkMessage(t, err)
				}
			}
		})
	})
}

// maxMessage bounds an error message from any input: values from the file are shown
// cut short, never whole.
const maxMessage = 4 << 10

func checkMessage(t *testing.T, err error) {
	if n := len(err.Error()); n > maxMessage {
		t.Fatalf("error message of %d bytes: %.200s...", n, err.Error())
	}
}

// limitSeeds are pickles at the unpickler's limits (issue 20): nesting just within and
// just past maxDepth, a DAG in an error message, dicts nested within the depth limit
// whose repeated long keys pass the names' budget.
func limitSeeds() [][]byte {
	var out [][]byte
	for past := range 2 {
		// n TUPLE1s around an int nest n deep; a dict holding n nested dicts, n+1
		p := newPickle().int(1)
		p.Write(bytes.Repeat([]byte{0x85}, maxDepth+past))
		out = append(out, p.op('.').Bytes())
		d := newPickle().op('}')
		n := maxDepth - 1 + past
		for range n {
			d.str("k").op('}')
		}
		d.Write(bytes.Repeat([]byte{'s'}, n))
		out = append(out, d.op('.').Bytes())
	}
	pid := newPickle().global("collections", "OrderedDict").op(')', 'R').str("w")
	pid.op('(').dagTuple(30).global("torch", "FloatStorage").str("0").str("cpu").int(16).op('t', 'Q')
	out = append(out, pid.op('s', '.').Bytes())
	names := newPickle().str(strings.Repeat("k", 300)).put(0).op('0', '}')
	for range 8 {
		names.get(0).op('}')
	}
	names.tensor("0", 16, 0, []int{4}, []int{1}).put(1).op('0', '(')
	for _, k := range []string{"a", "b", "c"} {
		names.str(k).get(1)
	}
	names.op('u')
	names.Write(bytes.Repeat([]byte{'s'}, 8))
	return append(out, names.op('.').Bytes())
}

func FuzzGGUF(f *testing.F) {
	if root := fixtures.Root(); root != "" {
		// the fixture's metadata (tokenizer arrays, chat template) with small tensors, so the
		// fuzzer mutates headers rather than weights
		if b, err := os.ReadFile(filepath.Join(root, "llm", "tiny-llama-a.gguf")); err == nil {
			if g, err := ParseGGUF(b, "seed"); err == nil {
				w := NewGGUFWriter()
				for _, kv := range g.KV {
					// every key and type, with arrays and strings cut to keep the seed small
					switch v := kv.Value.(type) {
					case []string:
						w.Add(kv.Key, v[:min(len(v), 8)])
					case []int32:
						w.Add(kv.Key, v[:min(len(v), 8)])
					case string:
						w.Add(kv.Key, v[:min(len(v), 64)])
					default:
						w.Add(kv.Key, v)
					}
				}
				for i, tn := range g.Tensors[:min(3, len(g.Tensors))] {
					w.AddF32(tn.Name, []DType{F32, Q8_0, Q4_1}[i], []int{2, 32}, make([]float32, 64))
				}
				var buf bytes.Buffer
				w.WriteTo(&buf)
				f.Add(buf.Bytes())
			}
		}
	}
	w := NewGGUFWriter()
	w.Add("general.alignment", uint32(64))
	w.Add("a", []int32{1, -2})
	w.Add("b", []bool{true})
	w.Add("c", float64(1))
	w.AddF32("s", F32, nil, []float32{1})
	w.AddF32("q", Q5_1, []int{1, 32}, make([]float32, 32))
	var buf bytes.Buffer
	w.WriteTo(&buf)
	f.Add(buf.Bytes())
	F16ToF32(0)
	f.Fuzz(func(t *testing.T, data []byte) {
		checkAlloc(t, len(data), func() {
			g, err := ParseGGUF(data, "fuzz.gguf")
			if err == nil {
				checkTensors(t, g.Tensors)
			}
		})
	})
}

func FuzzAdapterConfig(f *testing.F) {
	for _, b := range fixtureFiles(".json", maxSeed, "blip2") {
		if bytes.Contains(b, []byte(`"peft_type"`)) {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"peft_type":"LORA","r":8,"lora_alpha":16,"target_modules":["q_proj","v_proj"],"layers_to_transform":[0,2],"layers_pattern":"layers","rank_pattern":{"q_proj":4},"alpha_pattern":{"layers.0.v_proj":2},"use_rslora":true,"exclude_modules":["x"]}`))
	f.Add([]byte(`{"peft_type":"LORA","r":4,"target_modules":".*\\.(q|v)_proj","modules_to_save":["head"],"fan_in_fan_out":true}`))
	modules := []string{"model.layers.0.self_attn.q_proj", "q_proj", "a.layers.2.v_proj", "", "x.h.0.q_proj", "qformer.encoder.layer.1.crossattention.attention.value"}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkAlloc(t, len(data), func() {
			c, err := ParseAdapterConfig(data)
			if err != nil {
				return
			}
			for _, m := range modules {
				c.Targets(m)
				if s := c.Scaling(m); s != s {
					t.Fatalf("NaN scaling for %s", m)
				}
			}
		})
	})
}

func FuzzTorchZip(f *testing.F) {
	p := newPickle().op('}').str("w").tensor("0", 6, 0, []int{2, 3}, []int{3, 1}).op('s', '.')
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, data := range map[string][]byte{"m/data.pkl": p.Bytes(), "m/data/0": f32Bytes(arange(6)...), "m/byteorder": []byte("little")} {
		w, _ := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
		w.Write(data)
	}
	zw.Close()
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		checkAlloc(t, len(data), func() {
			tensors, err := parseTorchZip(data, "fuzz.pt")
			if err == nil {
				checkTensors(t, tensors)
			} else {
				checkMessage(t, err)
			}
		})
	})
}
