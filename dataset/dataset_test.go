package dataset

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReadManifest(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "m.jsonl")
	writeFile(t, p, `{"id":"p1","images":["img/a.jpg","/abs/b.png"],"text":"blue jeans","keywords":["blue jeans","cotton"],"lang":"en"}

{"id":"p2","images":["c.jpg"],"category":"dress","title":"Midi"}`) // no final newline
	m, err := ReadManifest(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Products) != 2 || m.Products[0].ID != "p1" || m.Products[1].Title != "Midi" {
		t.Fatalf("products = %+v", m.Products)
	}
	if got := m.ImagePath(m.Products[0].Images[0]); got != filepath.Join(dir, "img", "a.jpg") {
		t.Errorf("relative image resolved to %s", got)
	}
	if got := m.ImagePath("/abs/b.png"); got != "/abs/b.png" {
		t.Errorf("absolute image resolved to %s", got)
	}
	if m.Products[0].Keywords[1] != "cotton" {
		t.Errorf("keywords = %v", m.Products[0].Keywords)
	}
}

func TestReadManifestErrorsNameLine(t *testing.T) {
	cases := map[string]string{
		"bad json":     "{\"id\":\"a\"}\n{oops}\n",
		"no id":        "{\"id\":\"a\"}\n{\"images\":[\"x.jpg\"]}\n",
		"duplicate id": "{\"id\":\"a\"}\n{\"id\":\"a\"}\n",
		"two values":   "{\"id\":\"a\"}\n{\"id\":\"b\"} {\"id\":\"c\"}\n",
		"empty image":  "{\"id\":\"a\"}\n{\"id\":\"b\",\"images\":[\" \"]}\n",
	}
	for name, content := range cases {
		p := filepath.Join(t.TempDir(), "m.jsonl")
		writeFile(t, p, content)
		_, err := ReadManifest(p)
		if err == nil || !errors.Is(err, ErrManifest) || !strings.Contains(err.Error(), p+":2") {
			t.Errorf("%s: err = %v, want ErrManifest naming %s:2", name, err, p)
		}
	}
	if _, err := ReadManifest(filepath.Join(t.TempDir(), "absent.jsonl")); err == nil {
		t.Error("missing manifest gave no error")
	}
}

type rec struct {
	ID    string `json:"id"`
	Image string `json:"image,omitempty"`
	Text  string `json:"text,omitempty"`
	Error string `json:"error,omitempty"`
}

func TestOutputResumesAndDropsTornLine(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sub", "out.jsonl")
	o, err := OpenOutput(p, OutputOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := o.Write(fmt.Sprint("p", i), rec{ID: fmt.Sprint("p", i), Text: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.Write("p1", rec{ID: "p1"}); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("duplicate write: err = %v", err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	// Simulate a kill in the middle of a record.
	f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"id":"p3","te`)
	f.Close()

	o, err = OpenOutput(p, OutputOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if o.Len() != 3 || !o.Done("p2") || o.Done("p3") || o.Dropped != 1 {
		t.Fatalf("after reopen: len %d, done(p2) %v, done(p3) %v, dropped %d", o.Len(), o.Done("p2"), o.Done("p3"), o.Dropped)
	}
	if err := o.Write("p3", rec{ID: "p3"}); err != nil {
		t.Fatal(err)
	}
	o.Close()
	// Dropping the torn line rewrote the file: it keeps its mode (a temporary file alone
	// would have made it 0600).
	if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("rewritten output: mode %v (%v), want 0644", st.Mode().Perm(), err)
	}
	var ids []string
	err = ReadRecords(p, func(_ int, raw json.RawMessage) error {
		var r rec
		if err := json.Unmarshal(raw, &r); err != nil {
			return err
		}
		ids = append(ids, r.ID)
		return nil
	})
	if err != nil || strings.Join(ids, ",") != "p0,p1,p2,p3" {
		t.Fatalf("records = %v, err %v", ids, err)
	}
}

func TestOutputRetryErrorsAndKeyFields(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out.jsonl")
	writeFile(t, p, `{"id":"a","image":"1.jpg","text":"ok"}
{"id":"a","image":"2.jpg","error":"decode: truncated"}
{"id":"b","image":"1.jpg","text":"ok"}
`)
	key := KeyFields("id", "image")
	o, err := OpenOutput(p, OutputOptions{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if o.Len() != 3 || !o.Done(JoinKey("a", "2.jpg")) {
		t.Fatalf("without retry: len %d", o.Len())
	}
	o.Close()
	o, err = OpenOutput(p, OutputOptions{Key: key, RetryErrors: true})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if o.Len() != 2 || o.Done(JoinKey("a", "2.jpg")) || o.Dropped != 1 {
		t.Fatalf("with retry: len %d, dropped %d", o.Len(), o.Dropped)
	}
	data, _ := os.ReadFile(p)
	if strings.Contains(string(data), "truncated") {
		t.Fatalf("error record still in file:\n%s", data)
	}
}

func TestOutputRejectsCorruptMiddleLine(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out.jsonl")
	writeFile(t, p, "{\"id\":\"a\"}\nnot json\n{\"id\":\"b\"}\n")
	if _, err := OpenOutput(p, OutputOptions{}); err == nil || !strings.Contains(err.Error(), ":2") {
		t.Fatalf("err = %v, want one naming line 2", err)
	}
}

func TestShardSplitsEveryIDOnce(t *testing.T) {
	if _, err := ParseShard("3/3"); err == nil {
		t.Error("3/3 accepted")
	}
	if _, err := ParseShard("x"); err == nil {
		t.Error("x accepted")
	}
	const n = 4
	counts := make([]int, n)
	for i := 0; i < 1000; i++ {
		id := fmt.Sprintf("product-%d", i)
		owners := 0
		for s := 0; s < n; s++ {
			sh, err := ParseShard(fmt.Sprintf("%d/%d", s, n))
			if err != nil {
				t.Fatal(err)
			}
			if sh.Has(id) {
				owners++
				counts[s]++
			}
		}
		if owners != 1 {
			t.Fatalf("%s is in %d shards", id, owners)
		}
	}
	for s, c := range counts {
		if c < 180 || c > 320 {
			t.Errorf("shard %d has %d of 1000 ids: split is lopsided", s, c)
		}
	}
	if !All.Has("anything") {
		t.Error("All misses an id")
	}
}

// Two writers of one output: the second is refused, naming the first's pid, instead of
// both appending every record (which made every later resume fail on duplicate keys).
func TestOutputRefusesSecondWriter(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out.jsonl")
	o, err := OpenOutput(p, OutputOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = OpenOutput(p, OutputOptions{})
	if !errors.Is(err, ErrOutputLocked) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) || !strings.Contains(err.Error(), p) {
		t.Errorf("second OpenOutput: %v, want ErrOutputLocked naming the output and pid %d", err, os.Getpid())
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := o.Write("p9", rec{ID: "p9"}); err == nil {
		t.Error("Write after Close succeeded")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("%d files beside the output after Close, want the output alone (the lock file removed)", len(ents)-1)
	}
	o, err = OpenOutput(p, OutputOptions{})
	if err != nil {
		t.Fatalf("reopen after Close: %v", err)
	}
	o.Close()

	// A folder output (the pipeline's) is locked by a file inside it.
	l, err := LockOutput(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LockOutput(dir); !errors.Is(err, ErrOutputLocked) {
		t.Errorf("second folder lock: %v", err)
	}
	l.Release()
}

// A byte order mark (Notepad's UTF-8) rejected the whole manifest; invalid UTF-8 was
// replaced with U+FFFD silently. The first is accepted, the second read with a warning
// naming the line, in Warnings and in the log.
func TestManifestEncodings(t *testing.T) {
	p := filepath.Join(t.TempDir(), "m.jsonl")
	writeFile(t, p, "\xEF\xBB\xBF{\"id\":\"p1\",\"text\":\"blue\"}\n{\"id\":\"p2\",\"text\":\"caf\xe9 latte\"}\n{\"id\":\"p3\",\"text\":\"ok\"}\n")
	var logs bytes.Buffer
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	m, err := ReadManifest(p)
	if err != nil {
		t.Fatalf("manifest with a BOM: %v", err)
	}
	if len(m.Products) != 3 || m.Products[0].ID != "p1" || m.Products[1].Text != "caf\uFFFD latte" {
		t.Fatalf("products %+v", m.Products)
	}
	if len(m.Warnings) != 1 || !strings.Contains(m.Warnings[0], p+":2") {
		t.Errorf("warnings %q, want one naming %s:2", m.Warnings, p)
	}
	if !strings.Contains(logs.String(), "line=2") || !strings.Contains(logs.String(), "UTF-8") {
		t.Errorf("log %q does not warn about line 2", logs.String())
	}
}

// --texts: in a .jsonl file a text is a JSON string (so it may hold a newline) or a
// product line; in any other file, a line.
func TestReadTexts(t *testing.T) {
	dir := t.TempDir()
	j := filepath.Join(dir, "t.jsonl")
	writeFile(t, j, "\uFEFF\"first line\\nsecond line\"\n\n{\"id\":\"p7\",\"text\":\"a product\"}\n\"\"\n")
	got, err := ReadTexts(j)
	if err != nil {
		t.Fatal(err)
	}
	want := []Text{{ID: "1", Text: "first line\nsecond line"}, {ID: "p7", Text: "a product", Product: true}, {ID: "4", Text: ""}}
	if !slices.Equal(got, want) {
		t.Errorf("jsonl texts %+v, want %+v", got, want)
	}
	for name, content := range map[string]string{
		"duplicate id": "{\"id\":\"2\",\"text\":\"x\"}\n\"a\"\n",
		"no id":        "{\"text\":\"x\"}\n",
		"bad json":     "\"unterminated\n",
	} {
		p := filepath.Join(dir, "bad.jsonl")
		writeFile(t, p, content)
		if _, err := ReadTexts(p); !errors.Is(err, ErrManifest) {
			t.Errorf("%s: %v, want ErrManifest", name, err)
		}
	}
	txt := filepath.Join(dir, "t.txt")
	writeFile(t, txt, "one\r\n\nthree")
	got, err = ReadTexts(txt)
	if err != nil || !slices.Equal(got, []Text{{ID: "1", Text: "one"}, {ID: "2", Text: ""}, {ID: "3", Text: "three"}}) {
		t.Errorf("line texts %+v, %v", got, err)
	}
}
