package weights

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"synth/internal/fixtures"
)

func TestReadBLIP2Safetensors(t *testing.T) {
	for _, set := range fixtures.Sets(t, "blip2", "model.safetensors") {
		src, err := Open(set) // the folder: config.json + model.safetensors
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		if len(src.Config()) == 0 || !json.Valid(src.Config()) {
			t.Errorf("%s: config.json not picked up", set)
		}
		if src.Files()[0] != filepath.Join(set, "model.safetensors") {
			t.Errorf("%s: opened %v", set, src.Files())
		}
		// the README: lm_head is tied to embed_tokens and both are stored
		a, errA := src.Tensor("language_model.lm_head.weight")
		b, errB := src.Tensor("language_model.model.decoder.embed_tokens.weight")
		if errA != nil || errB != nil || !bytes.Equal(a.Data, b.Data) || a.DType != F32 {
			t.Errorf("%s: tied weights %v %v", set, errA, errB)
		}
		in, err := Open(filepath.Join(set, "inputs.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		ids, _ := in.Tensor("input_ids")
		v, err := ids.Ints()
		if err != nil || len(v) != ids.Numel() || v[0] != 2 {
			t.Errorf("%s: input_ids %v (%v): rows start with BOS 2", set, v, err)
		}
		in.Close()
	}
}

func TestSafetensorsRoundTripAndShards(t *testing.T) {
	dir := t.TempDir()
	all := []Tensor{
		f32Tensor("a", 2, 3),
		{Name: "h", DType: F16, Shape: []int{2}, Data: []byte{0, 0x3c, 0, 0x40}},
		{Name: "b", DType: BF16, Shape: []int{1}, Data: []byte{0x80, 0x3f}},
		{Name: "i64", DType: I64, Shape: []int{1}, Data: make([]byte, 8)},
		{Name: "i32", DType: I32, Shape: []int{2, 1}, Data: make([]byte, 8)},
		{Name: "u8", DType: U8, Shape: []int{3}, Data: []byte{1, 2, 3}},
		{Name: "scalar", DType: F32, Shape: []int{}, Data: f32Bytes(7)},
		{Name: "empty", DType: F32, Shape: []int{0, 5}, Data: []byte{}},
	}
	one := filepath.Join(dir, "one.safetensors")
	if err := WriteSafetensors(one, all, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	src, err := Open(one)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range all {
		g, err := src.Tensor(w.Name)
		if err != nil || g.DType != w.DType || !slices.Equal(g.Shape, w.Shape) || !bytes.Equal(g.Data, w.Data) {
			t.Errorf("%s: read %v %v", w.Name, g, err)
		}
	}
	if v, _ := src.MetaString("format"); v != "pt" {
		t.Errorf("metadata %v", src.Metadata())
	}
	src.Close()

	hf := filepath.Join(dir, "hf")
	os.Mkdir(hf, 0o755)
	WriteSafetensors(filepath.Join(hf, "model-00001-of-00002.safetensors"), all[:3], nil)
	WriteSafetensors(filepath.Join(hf, "model-00002-of-00002.safetensors"), all[3:], nil)
	os.WriteFile(filepath.Join(hf, "config.json"), []byte(`{"model_type":"x"}`), 0o644)
	index := func(wm map[string]string) {
		b, _ := json.Marshal(map[string]any{"metadata": map[string]any{"total_size": 12345678901}, "weight_map": wm})
		os.WriteFile(filepath.Join(hf, "model.safetensors.index.json"), b, 0o644)
	}
	wm := map[string]string{}
	for i, tn := range all {
		wm[tn.Name] = "model-00001-of-00002.safetensors"
		if i >= 3 {
			wm[tn.Name] = "model-00002-of-00002.safetensors"
		}
	}
	index(wm)
	src, err = Open(hf)
	if err != nil {
		t.Fatal(err)
	}
	if src.Len() != len(all) || len(src.Files()) != 2 || string(src.Config()) != `{"model_type":"x"}` {
		t.Errorf("sharded: %d tensors, files %v", src.Len(), src.Files())
	}
	if v, _ := src.MetaString("total_size"); v != "12345678901" {
		t.Errorf("total_size %q", v)
	}
	if f := src.FileOf("u8"); filepath.Base(f) != "model-00002-of-00002.safetensors" {
		t.Errorf("FileOf(u8) = %s", f)
	}
	src.Close()

	for name, mut := range map[string]func(map[string]string){
		"wrong shard":  func(m map[string]string) { m["a"] = "model-00002-of-00002.safetensors" },
		"not listed":   func(m map[string]string) { delete(m, "a") },
		"traversal":    func(m map[string]string) { m["a"] = "../one.safetensors" },
		"extra tensor": func(m map[string]string) { m["ghost"] = "model-00001-of-00002.safetensors" },
	} {
		m := maps(wm)
		mut(m)
		index(m)
		if s, err := Open(hf); err == nil {
			s.Close()
			t.Errorf("%s: index accepted", name)
		}
	}
}

func maps(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

// stFile builds a safetensors file from a raw header and data.
func stFile(header string, data []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, uint64(len(header)))
	b.WriteString(header)
	b.Write(data)
	return b.Bytes()
}

func TestSafetensorsRejectsMalformedHeaders(t *testing.T) {
	ok := `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`
	if _, _, err := parseSafetensors(stFile(ok, make([]byte, 8)), "ok.safetensors"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, header string
		data         int
		mention      string
	}{
		{"not an object", `["a"]`, 0, "'{'"},
		{"bad json", `{"a":{"dtype":"F32",`, 0, `"a"`},
		{"duplicate", `{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8, `"a"`},
		{"unknown dtype", `{"a":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}}`, 1, `"a"`},
		{"negative dim", `{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, 4, `"a"`},
		{"float dim", `{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}`, 4, `"a"`},
		{"no shape", `{"a":{"dtype":"F32","data_offsets":[0,4]}}`, 4, `"a"`},
		{"size mismatch", `{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, 8, `"a"`},
		{"out of bounds", `{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, 8, `"a"`},
		{"reversed", `{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}`, 8, `"a"`},
		{"overlap", `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8, `"b"`},
		{"gap", `{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8, `"a"`},
		{"trailing data", `{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 8, "cover"},
		{"three offsets", `{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,4]}}`, 4, `"a"`},
		{"overflow", `{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}`, 4, `"a"`},
		{"bad metadata", `{"__metadata__":{"k":1}}`, 0, "__metadata__"},
		{"invalid utf8", "{\"\xff\":{}}", 0, "UTF-8"},
	}
	for _, c := range cases {
		_, _, err := parseSafetensors(stFile(c.header, make([]byte, c.data)), "bad.safetensors")
		if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "bad.safetensors") || !strings.Contains(err.Error(), c.mention) {
			t.Errorf("%s: got %v, want ErrFormat naming the file and %s", c.name, err, c.mention)
		}
	}
	huge := make([]byte, 8)
	binary.LittleEndian.PutUint64(huge, 1<<40)
	if _, _, err := parseSafetensors(huge, "huge"); !errors.Is(err, ErrFormat) {
		t.Errorf("huge header length: %v", err)
	}
	binary.LittleEndian.PutUint64(huge, 100)
	if _, _, err := parseSafetensors(append(huge, '{'), "short"); !errors.Is(err, ErrFormat) {
		t.Errorf("header past the end: %v", err)
	}
}

func TestOpenFolderChoices(t *testing.T) {
	dir := t.TempDir()
	WriteSafetensors(filepath.Join(dir, "a.safetensors"), []Tensor{f32Tensor("x", 1)}, nil)
	WriteSafetensors(filepath.Join(dir, "b.safetensors"), []Tensor{f32Tensor("y", 1)}, nil)
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "a.safetensors") {
		t.Errorf("two unnamed safetensors: %v", err)
	}
	WriteSafetensors(filepath.Join(dir, "model.safetensors"), []Tensor{f32Tensor("z", 1)}, nil)
	src, err := Open(dir)
	if err != nil || !src.Has("z") {
		t.Fatalf("model.safetensors not preferred: %v", err)
	}
	src.Close()
	if _, err := Open(t.TempDir()); !errors.Is(err, ErrMissing) {
		t.Errorf("empty folder: %v", err)
	}
	junk := filepath.Join(dir, "junk.bin")
	os.WriteFile(junk, []byte("hello world"), 0o644)
	if _, err := Open(junk); !errors.Is(err, ErrFormat) {
		t.Errorf("junk file: %v", err)
	}
}
