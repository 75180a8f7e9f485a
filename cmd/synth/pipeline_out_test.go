package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"synth/internal/faults"

	"github.com/parquet-go/parquet-go"
)

// The Parquet copy of a JSONL output reads back, through an independent reader, as the
// same records: one column per field with its type, lists of strings as lists, mixed or
// nested values as their JSON text, absent and null fields as nulls.
func TestJSONLToParquetReadsBack(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "r.jsonl"), filepath.Join(dir, "r.parquet")
	lines := `{"id":"p1","text":"파란 청바지, slim fit","tokens":57,"coverage":0.75,"keywords":["blue","jeans"],"params":{"seed":3}}
{"id":"p2","error":"prompt too long","tokens":9,"coverage":1,"keywords":[]}
{"id":"p3","text":"a\nb","tokens":12,"coverage":null,"keywords":["x"],"params":[1,"a"]}
`
	if err := os.WriteFile(in, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := jsonlToParquet(in, out); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		t.Fatalf("open %s: %v", out, err)
	}
	if pf.NumRows() != 3 {
		t.Fatalf("%d rows, want 3", pf.NumRows())
	}
	rows := readRows(t, f, pf.Schema())
	if len(rows) != 3 {
		t.Fatalf("read %d rows back, want 3", len(rows))
	}
	want := []map[string]any{
		{"id": "p1", "text": "파란 청바지, slim fit", "tokens": int64(57), "coverage": 0.75, "keywords": []any{"blue", "jeans"}, "params": `{"seed":3}`, "error": nil},
		{"id": "p2", "text": nil, "tokens": int64(9), "coverage": 1.0, "keywords": []any{}, "params": nil, "error": "prompt too long"},
		{"id": "p3", "text": "a\nb", "tokens": int64(12), "coverage": nil, "keywords": []any{"x"}, "params": `[1,"a"]`, "error": nil},
	}
	for i, w := range want {
		for k, wv := range w {
			got := rows[i][k]
			if !reflect.DeepEqual(got, wv) {
				gj, _ := json.Marshal(rows[i])
				t.Errorf("row %d field %q = %#v, want %#v (row %s)", i, k, got, wv, gj)
			}
		}
	}
}

// readRows decodes every row from the file's own schema, column by column, so the check
// does not depend on how a Go struct would map onto it: a list column gathers its
// elements (definition level 0 is a null list, 1 an empty one), a null leaf stays nil.
func readRows(t *testing.T, f *os.File, schema *parquet.Schema) []map[string]any {
	t.Helper()
	cols := schema.Columns()
	r := parquet.NewReader(f, schema)
	defer r.Close()
	var out []map[string]any
	buf := make([]parquet.Row, 1)
	for {
		n, err := r.ReadRows(buf)
		if n == 1 {
			rec := map[string]any{}
			for _, v := range buf[0] {
				path := cols[v.Column()]
				name, isList := path[0], len(path) > 1
				if isList && v.DefinitionLevel() > 0 {
					l, _ := rec[name].([]any)
					if l == nil {
						l = []any{}
					}
					if !v.IsNull() {
						l = append(l, value(t, v))
					}
					rec[name] = l
					continue
				}
				if v.IsNull() {
					rec[name] = nil
				} else {
					rec[name] = value(t, v)
				}
			}
			out = append(out, rec)
		}
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("read row %d: %v", len(out), err)
		}
	}
}

func value(t *testing.T, v parquet.Value) any {
	switch v.Kind() {
	case parquet.ByteArray:
		return string(v.ByteArray())
	case parquet.Int64:
		return v.Int64()
	case parquet.Double:
		return v.Double()
	}
	t.Fatalf("column %d: unexpected kind %v", v.Column(), v.Kind())
	return nil
}

// A pipeline file (card, Parquet copy, eval manifest) rewritten on a disk that fills up
// keeps its finished content and leaves no ".tmp" beside it.
func TestPipelineFilesSurviveFullDisk(t *testing.T) {
	dir := t.TempDir()
	card := filepath.Join(dir, "README.md")
	if err := writeIfChanged(card, []byte("# finished card\n")); err != nil {
		t.Fatal(err)
	}
	restore, child := faults.DiskFull(t, 1<<10)
	if !child {
		return
	}
	err := writeIfChanged(card, make([]byte, 64<<10))
	restore()
	if err == nil {
		t.Fatal("no error from a write past the full disk")
	}
	if got, _ := os.ReadFile(card); string(got) != "# finished card\n" {
		t.Errorf("card holds %d bytes after the failed rewrite", len(got))
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("%d files in the folder, want the card alone", len(ents))
	}
}
