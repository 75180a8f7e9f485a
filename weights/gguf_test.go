package weights

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"synth/internal/fixtures"
)

func llamaFixture(t *testing.T) string {
	t.Helper()
	p := filepath.Join(fixtures.Dir(t, "llm"), "tiny-llama-a.gguf")
	if _, err := os.Stat(p); err != nil {
		t.Skipf("no %s", p)
	}
	return p
}

// The tiny Llama fixture, as its README describes it.
func TestReadTinyLlamaGGUF(t *testing.T) {
	src, err := Open(llamaFixture(t))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if src.Format() != FormatGGUF || src.Len() != 21 || src.ParamCount() != 177856 {
		t.Fatalf("format %s, %d tensors, %d params", src.Format(), src.Len(), src.ParamCount())
	}
	emb, err := src.Tensor("token_embd.weight")
	if err != nil {
		t.Fatal(err)
	}
	// ggml ne [64, 747] is PyTorch shape [747, 64]
	if emb.DType != F32 || !slices.Equal(emb.Shape, []int{747, 64}) {
		t.Errorf("token_embd.weight %v", emb)
	}
	if up, _ := src.Tensor("blk.0.ffn_up.weight"); !slices.Equal(up.Shape, []int{128, 64}) {
		t.Errorf("blk.0.ffn_up.weight %v, want [128 64] (ggml [64, 128])", up)
	}
	if v, _ := src.MetaString("general.architecture"); v != "llama" {
		t.Errorf("general.architecture %q", v)
	}
	if v, _ := src.Meta("llama.rope.freq_base"); v != float32(500000) {
		t.Errorf("llama.rope.freq_base %v (%T)", v, v)
	}
	toks, _ := src.Meta("tokenizer.ggml.tokens")
	types, _ := src.Meta("tokenizer.ggml.token_type")
	merges, _ := src.Meta("tokenizer.ggml.merges")
	if tk, ok := toks.([]string); !ok || len(tk) != 747 || tk[736] != "<|begin_of_text|>" || tk[220] != "Ġ" {
		t.Errorf("tokens %T len %d", toks, len(tk))
	}
	if tt, ok := types.([]int32); !ok || len(tt) != 747 || tt[745] != 3 || tt[0] != 1 {
		t.Errorf("token_type %T", types)
	}
	if m, ok := merges.([]string); !ok || len(m) != 480 {
		t.Errorf("merges %T", merges)
	}
	if tmpl, _ := src.MetaString("tokenizer.chat_template"); len(tmpl) != 4614 {
		t.Errorf("chat template of %d bytes, want 4614", len(tmpl))
	}
	for _, tn := range src.Tensors() {
		if _, ok := tn.F32View(); !ok {
			t.Errorf("%s: no aligned zero-copy view", tn.Name)
		}
	}
}

// Writing back every key-value and tensor of a GGUF file made by ggml's tools gives the
// same bytes: the writer's layout (order, padding, alignment) is ggml's.
func TestGGUFWriterReproducesFixture(t *testing.T) {
	path := llamaFixture(t)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	g, err := ParseGGUF(orig, path)
	if err != nil {
		t.Fatal(err)
	}
	w := NewGGUFWriter()
	for _, kv := range g.KV {
		if err := w.Add(kv.Key, kv.Value); err != nil {
			t.Fatal(err)
		}
	}
	for _, tn := range g.Tensors {
		if err := w.AddTensor(tn); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), orig) {
		n := min(buf.Len(), len(orig))
		i := 0
		for i < n && buf.Bytes()[i] == orig[i] {
			i++
		}
		t.Fatalf("rewritten file differs from the fixture at byte %d (lengths %d, %d)", i, buf.Len(), len(orig))
	}
}

func TestGGUFRoundTrip(t *testing.T) {
	seed := uint64(424242)
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 9))
	meta := []KV{
		{"general.architecture", "test"},
		{"u8", uint8(200)}, {"i8", int8(-5)}, {"u16", uint16(60000)}, {"i16", int16(-300)},
		{"u32", uint32(4e9)}, {"i32", int32(-2e9)}, {"u64", uint64(1 << 60)}, {"i64", int64(-1 << 60)},
		{"f32", float32(1.5)}, {"f64", math.Pi}, {"yes", true}, {"no", false}, {"empty", ""},
		{"tokens", []string{"a", "", "ü", "<|eot_id|>"}}, {"types", []int32{1, 3, -1}},
		{"scores", []float32{-1, 0.5}}, {"flags", []bool{true, false}}, {"bytes", []uint8{1, 2}},
		{"i8s", []int8{-1}}, {"u16s", []uint16{7}}, {"i16s", []int16{-7}}, {"u32s", []uint32{9}},
		{"u64s", []uint64{1 << 63}}, {"i64s", []int64{-9}}, {"f64s", []float64{2.5}}, {"none", []string{}},
		{ConfigKey, `{"model_type": "test"}`},
	}
	type spec struct {
		name  string
		dt    DType
		shape []int
	}
	specs := []spec{
		{"scalar", F32, nil}, {"vec", F32, []int{5}}, {"conv", F16, []int{4, 3, 2, 2}},
		{"bf", BF16, []int{3, 7}}, {"q8", Q8_0, []int{3, 64}}, {"q4", Q4_0, []int{2, 32}},
		{"q41", Q4_1, []int{5, 96}}, {"q50", Q5_0, []int{1, 32}}, {"q51", Q5_1, []int{2, 64}},
		{"ints", I32, []int{3}}, {"empty", F32, []int{0, 4}},
	}
	for _, align := range []uint32{0, 64} {
		w := NewGGUFWriter()
		if align != 0 {
			if err := w.Add("general.alignment", align); err != nil {
				t.Fatal(err)
			}
		}
		for _, kv := range meta {
			if err := w.Add(kv.Key, kv.Value); err != nil {
				t.Fatal(err)
			}
		}
		values := map[string][]float32{}
		for _, s := range specs {
			n, _ := numel(s.shape)
			if s.dt == I32 {
				if err := w.AddTensor(Tensor{Name: s.name, DType: I32, Shape: s.shape, Data: []byte{1, 0, 0, 0, 2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}}); err != nil {
					t.Fatal(err)
				}
				continue
			}
			v := make([]float32, n)
			for i := range v {
				v[i] = float32(r.NormFloat64())
			}
			values[s.name] = v
			if err := w.AddF32(s.name, s.dt, s.shape, v); err != nil {
				t.Fatal(err)
			}
		}
		path := filepath.Join(t.TempDir(), "rt.gguf")
		if err := w.WriteFile(path); err != nil {
			t.Fatal(err)
		}
		src, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		wantAlign := GGUFDefaultAlignment
		if align != 0 {
			wantAlign = int(align)
		}
		raw, _ := os.ReadFile(path)
		g, err := ParseGGUF(raw, path)
		if err != nil || g.Alignment != wantAlign {
			t.Fatalf("alignment %d (err %v), want %d", g.Alignment, err, wantAlign)
		}
		for _, kv := range meta {
			if got, ok := src.Meta(kv.Key); !ok || !reflect.DeepEqual(got, kv.Value) {
				t.Errorf("metadata %s = %#v, want %#v", kv.Key, got, kv.Value)
			}
		}
		if string(src.Config()) != `{"model_type": "test"}` {
			t.Errorf("config %q", src.Config())
		}
		for _, s := range specs {
			tn, err := src.Tensor(s.name)
			if err != nil {
				t.Fatal(err)
			}
			if tn.DType != s.dt || !slices.Equal(tn.Shape, append([]int{}, s.shape...)) && !(len(s.shape) == 0 && len(tn.Shape) == 0) {
				t.Errorf("%s: %v, want %s %v", s.name, tn, s.dt, s.shape)
			}
			off := uintptr(0)
			if len(tn.Data) > 0 {
				off = uintptr(bytes.Index(raw, tn.Data))
			}
			if off%uintptr(wantAlign) != 0 {
				t.Errorf("%s: data at file offset %d, not aligned to %d", s.name, off, wantAlign)
			}
			if s.dt == I32 {
				if v, _ := tn.Ints(); !slices.Equal(v, []int64{1, 2, -1}) {
					t.Errorf("ints %v", v)
				}
				continue
			}
			q, _ := Quantize(s.dt, values[s.name])
			want, _ := Dequantize(s.dt, q, len(values[s.name]))
			if got := mustF32(t, tn); !slices.Equal(got, want) {
				t.Errorf("%s: values differ after the round trip", s.name)
			}
		}
		src.Close()
	}
}

func TestGGUFWriterRejects(t *testing.T) {
	w := NewGGUFWriter()
	for _, bad := range []func() error{
		func() error { return w.Add("x", 3) }, // int: ambiguous width
		func() error { return w.Add("general.alignment", uint32(48)) },
		func() error { return w.Add("general.alignment", 64) },
		func() error { return w.AddF32("q", Q4_0, []int{2, 48}, make([]float32, 96)) },
		func() error { return w.AddF32("q", Q8_0, nil, make([]float32, 1)) },
		func() error { return w.AddF32("u", U8, []int{1}, make([]float32, 1)) },
		func() error { return w.AddF32("five", F32, []int{1, 1, 1, 1, 1}, make([]float32, 1)) },
		func() error {
			return w.AddTensor(Tensor{Name: "short", DType: F32, Shape: []int{2}, Data: make([]byte, 4)})
		},
	} {
		if bad() == nil {
			t.Error("writer accepted invalid input")
		}
	}
	if err := w.Add("k", "v"); err != nil {
		t.Fatal(err)
	}
	if w.Add("k", "w") == nil {
		t.Error("duplicate key accepted")
	}
	w.AddF32("t", F32, []int{1}, []float32{1})
	if w.AddF32("t", F32, []int{1}, []float32{1}) == nil {
		t.Error("duplicate tensor accepted")
	}
}

// ggufBytes builds a GGUF header by hand for the malformed-input tests.
type ggufBuf struct{ bytes.Buffer }

func (b *ggufBuf) u32(v uint32) *ggufBuf { binary.Write(&b.Buffer, binary.LittleEndian, v); return b }
func (b *ggufBuf) u64(v uint64) *ggufBuf { binary.Write(&b.Buffer, binary.LittleEndian, v); return b }
func (b *ggufBuf) str(s string) *ggufBuf { b.u64(uint64(len(s))); b.WriteString(s); return b }

func ggufHeader(nt, nkv uint64) *ggufBuf {
	b := &ggufBuf{}
	b.WriteString("GGUF")
	return b.u32(3).u64(nt).u64(nkv)
}

func TestGGUFRejectsMalformed(t *testing.T) {
	pad := func(b *ggufBuf, n int) *ggufBuf {
		for b.Len()%32 != 0 {
			b.WriteByte(0)
		}
		b.Write(make([]byte, n))
		return b
	}
	tensor := func(b *ggufBuf, name string, ne []uint64, typ uint32, off uint64) *ggufBuf {
		b.str(name).u32(uint32(len(ne)))
		for _, n := range ne {
			b.u64(n)
		}
		return b.u32(typ).u64(off)
	}
	cases := map[string][]byte{
		"bad magic":         append([]byte("GGUG"), ggufHeader(0, 0).Bytes()[4:]...),
		"version 1":         (&ggufBuf{}).u32(0x46554747).u32(1).u64(0).u64(0).Bytes(),
		"big endian":        (&ggufBuf{}).u32(0x46554747).u32(3 << 24).u64(0).u64(0).Bytes(),
		"huge kv count":     ggufHeader(0, 1<<62).Bytes(),
		"huge string":       ggufHeader(0, 1).str("k").u32(ggufString).u64(1 << 40).Bytes(),
		"huge array":        ggufHeader(0, 1).str("k").u32(ggufArray).u32(ggufUint64).u64(1 << 61).Bytes(),
		"nested array":      ggufHeader(0, 1).str("k").u32(ggufArray).u32(ggufArray).u64(1).Bytes(),
		"bad value type":    ggufHeader(0, 1).str("k").u32(13).Bytes(),
		"empty key":         ggufHeader(0, 1).str("").u32(ggufUint8).op(1).Bytes(), // ggml: GGML_ASSERT(!key.empty())
		"duplicate key":     ggufHeader(0, 2).str("k").u32(ggufUint8).op(1).str("k").u32(ggufUint8).op(2).Bytes(),
		"alignment type":    ggufHeader(0, 1).str("general.alignment").u32(ggufUint64).u64(32).Bytes(),
		"alignment not pow": ggufHeader(0, 1).str("general.alignment").u32(ggufUint32).u32(48).Bytes(),
		"bad bool":          ggufHeader(0, 1).str("k").u32(ggufBool).op(2).Bytes(),
		"five dims":         pad(tensor(ggufHeader(1, 0), "t", []uint64{1, 1, 1, 1, 1}, 0, 0), 4).Bytes(),
		"negative dim":      pad(tensor(ggufHeader(1, 0), "t", []uint64{1 << 63}, 0, 0), 4).Bytes(),
		"overflow":          pad(tensor(ggufHeader(1, 0), "t", []uint64{1 << 40, 1 << 40}, 0, 0), 4).Bytes(),
		"unknown type":      pad(tensor(ggufHeader(1, 0), "t", []uint64{4}, 4, 0), 16).Bytes(),
		"partial block":     pad(tensor(ggufHeader(1, 0), "t", []uint64{48}, uint32(Q4_0.GGMLType()), 0), 64).Bytes(),
		"misaligned":        pad(tensor(ggufHeader(1, 0), "t", []uint64{1}, 0, 4), 64).Bytes(),
		"past the end":      pad(tensor(ggufHeader(1, 0), "t", []uint64{100}, 0, 0), 8).Bytes(),
		"duplicate tensor":  pad(tensor(tensor(ggufHeader(2, 0), "t", []uint64{1}, 0, 0), "t", []uint64{1}, 0, 32), 64).Bytes(),
		"overlap":           pad(tensor(tensor(ggufHeader(2, 0), "a", []uint64{16}, 0, 0), "b", []uint64{1}, 0, 32), 128).Bytes(),
	}
	for name, data := range cases {
		if _, err := ParseGGUF(data, "bad.gguf"); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: got %v, want ErrFormat", name, err)
		}
	}
	// every truncation of a valid file is an error, never a panic
	w := NewGGUFWriter()
	w.Add("a", []string{"x", "y"})
	w.Add("b", uint32(7))
	w.AddF32("t", Q8_0, []int{2, 32}, make([]float32, 64))
	var buf bytes.Buffer
	w.WriteTo(&buf)
	full := buf.Bytes()
	if _, err := ParseGGUF(full, "ok.gguf"); err != nil {
		t.Fatal(err)
	}
	// the file ends with 2 Q8_0 blocks (68 bytes) and 28 bytes of padding, which a reader
	// does not need
	for n := 0; n < len(full)-28; n++ {
		if _, err := ParseGGUF(full[:n], "cut.gguf"); err == nil {
			t.Errorf("truncated to %d of %d bytes: no error", n, len(full))
		}
	}
}

func (b *ggufBuf) op(v byte) *ggufBuf { b.WriteByte(v); return b }
