package modellock

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// modelTree writes a small model folder layout under dir and returns file -> content.
func modelTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{
		"models/blip2/config.json":                  []byte(`{"model_type": "blip-2"}`),
		"models/blip2/model.safetensors":            bytes.Repeat([]byte{1, 2, 3, 4}, 5000),
		"models/blip2/tokenizer/vocab.json":         []byte(`{"a": 0}`),
		"models/lora dir/adapter_model.safetensors": []byte("adapter weights"),
		"llama.gguf": append([]byte("GGUF"), make([]byte, 1000)...),
	}
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return files
}

func writeLock(t *testing.T, path string, entries []Entry) {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, entries); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestMakeWriteReadCheck(t *testing.T) {
	dir := t.TempDir()
	files := modelTree(t, dir)
	// a symlinked file counts (HF cache snapshots are links to blobs); a symlinked
	// folder is not followed, so nothing is listed twice
	if err := os.Symlink(filepath.Join(dir, "llama.gguf"), filepath.Join(dir, "models", "llama-link.gguf")); err != nil {
		t.Fatal(err)
	}
	files["models/llama-link.gguf"] = files["llama.gguf"]
	if err := os.Symlink(filepath.Join(dir, "models", "blip2"), filepath.Join(dir, "models", "blip2-link")); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	entries, err := Make("models", "llama.gguf", "./models/blip2") // overlapping on purpose
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(files) {
		t.Fatalf("Make listed %d files, want %d: %+v", len(entries), len(files), entries)
	}
	for i, e := range entries {
		data, ok := files[e.Path]
		if !ok {
			t.Fatalf("entry %q is not one of the files written", e.Path)
		}
		sum := sha256.Sum256(data)
		if e.Size != int64(len(data)) || e.SHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: size %d sha256 %s, want %d %x", e.Path, e.Size, e.SHA256, len(data), sum)
		}
		if i > 0 && entries[i-1].Path >= e.Path {
			t.Errorf("entries not sorted: %q before %q", entries[i-1].Path, e.Path)
		}
	}
	writeLock(t, filepath.Join(dir, "models.lock"), entries)

	// read from elsewhere: relative entries resolve against the lock's folder
	t.Chdir(t.TempDir())
	l, err := Read(filepath.Join(dir, "models.lock"))
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Entries) != len(entries) || l.Entries[0] != entries[0] {
		t.Fatalf("read back %+v, wrote %+v", l.Entries, entries)
	}
	r := l.Check()
	if !r.OK() || r.Err() != nil || r.Files != len(files) {
		t.Fatalf("fresh lock does not check: %s", r)
	}
	if s := r.String(); !strings.Contains(s, "match") || strings.Contains(s, "\n") {
		t.Errorf("report %q: want one line saying the files match", s)
	}
}

func TestCheckFindsChangedByteAndMissingFile(t *testing.T) {
	dir := t.TempDir()
	modelTree(t, dir)
	t.Chdir(dir)
	entries, err := Make("models", "llama.gguf")
	if err != nil {
		t.Fatal(err)
	}
	lockFile := filepath.Join(dir, "models.lock")
	writeLock(t, lockFile, entries)

	// one byte flipped in the middle of a file, its size unchanged
	weights := filepath.Join(dir, "models", "blip2", "model.safetensors")
	data, err := os.ReadFile(weights)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x01
	if err := os.WriteFile(weights, data, 0o644); err != nil {
		t.Fatal(err)
	}
	// one file gone, one truncated
	if err := os.Remove(filepath.Join(dir, "models", "lora dir", "adapter_model.safetensors")); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(dir, "llama.gguf"), 10); err != nil {
		t.Fatal(err)
	}

	l, err := Read(lockFile)
	if err != nil {
		t.Fatal(err)
	}
	r := l.Check()
	want := map[string]string{
		"models/blip2/model.safetensors":            "content differs",
		"models/lora dir/adapter_model.safetensors": "missing",
		"llama.gguf": "size 10, want 1004",
	}
	if len(r.Problems) != len(want) {
		t.Fatalf("problems %+v, want one for each of %v", r.Problems, want)
	}
	for _, p := range r.Problems {
		if !strings.HasPrefix(p.Detail, want[p.Path]) || want[p.Path] == "" {
			t.Errorf("%s: %q, want %q", p.Path, p.Detail, want[p.Path])
		}
	}
	line := r.String()
	if strings.Contains(line, "\n") || !strings.Contains(line, "3 of 5 files do not match") {
		t.Errorf("report %q: want one line counting 3 of 5", line)
	}
	for path := range want {
		if !strings.Contains(line, path) {
			t.Errorf("report %q does not name %s", line, path)
		}
	}
	if err := r.Err(); !errors.Is(err, ErrMismatch) {
		t.Errorf("Err() = %v, want ErrMismatch", err)
	}
}

func TestReportNamesAFewProblems(t *testing.T) {
	r := &Report{File: "m.lock", Files: 9}
	for i := 0; i < 8; i++ {
		r.Problems = append(r.Problems, Problem{Path: string(rune('a' + i)), Detail: "missing"})
	}
	s := r.String()
	if !strings.Contains(s, "8 of 9") || !strings.HasSuffix(s, "and 3 more") || strings.Contains(s, "f missing") {
		t.Errorf("report %q: want 5 problems named and 3 counted", s)
	}
}

func TestParseRejectsMalformedLines(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	for _, c := range []struct{ name, text, want string }{
		{"one space", sum + " 12 a.bin\n", "two spaces"},
		{"short hash", "abcd  12  a.bin\n", "not a sha256"},
		{"not hex", strings.Repeat("zz", 32) + "  12  a.bin\n", "not a sha256"},
		{"negative size", sum + "  -1  a.bin\n", "not a size"},
		{"no path", sum + "  12  \n", "two spaces"},
		{"twice", sum + "  12  a.bin\n" + sum + "  12  a.bin\n", "listed twice (first on line 1)"},
		{"empty", "# only a comment\n\n", "no entries"},
	} {
		_, err := Parse(strings.NewReader(c.text), "m.lock", "/x")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
	// paths keep their spaces; comments, blank lines and CRLF endings are fine
	l, err := Parse(strings.NewReader("# c\r\n\r\n"+strings.ToUpper(sum)+"  12  a b/c d.bin\r\n"), "m.lock", "/x")
	if err != nil {
		t.Fatal(err)
	}
	if e := l.Entries[0]; e.Path != "a b/c d.bin" || e.Size != 12 || e.SHA256 != sum {
		t.Errorf("parsed %+v", e)
	}
	if got := l.Resolve(l.Entries[0]); got != filepath.Join("/x", "a b", "c d.bin") {
		t.Errorf("Resolve = %s", got)
	}
}

func TestMakeRejectsEmptyFolderAndMissingPath(t *testing.T) {
	dir := t.TempDir()
	if _, err := Make(dir); err == nil || !strings.Contains(err.Error(), "no files") {
		t.Errorf("Make(empty folder) error %v, want no files", err)
	}
	if _, err := Make(filepath.Join(dir, "absent")); err == nil {
		t.Error("Make(absent path) succeeded")
	}
	if _, err := Make(); err == nil {
		t.Error("Make() with no paths succeeded")
	}
}

func TestUncovered(t *testing.T) {
	dir := t.TempDir()
	modelTree(t, dir)
	t.Chdir(dir)
	entries, err := Make("models/blip2")
	if err != nil {
		t.Fatal(err)
	}
	writeLock(t, filepath.Join(dir, "models.lock"), entries)
	l, err := Read(filepath.Join(dir, "models.lock"))
	if err != nil {
		t.Fatal(err)
	}
	// the locked folder is covered, also through a symlink and by absolute path
	if err := os.Symlink(filepath.Join(dir, "models"), filepath.Join(dir, "via-link")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"models/blip2", filepath.Join(dir, "models", "blip2"), "via-link/blip2", "models/blip2/config.json"} {
		if got, err := l.Uncovered(p); err != nil || len(got) != 0 {
			t.Errorf("Uncovered(%s) = %v, %v; want nothing", p, got, err)
		}
	}
	// a file added to the folder after locking, a model the lock never saw, a path that is not there
	extra := filepath.Join("models", "blip2", "extra.safetensors")
	if err := os.WriteFile(extra, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := l.Uncovered("models/blip2", "llama.gguf", "absent.gguf")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != extra+",llama.gguf,absent.gguf" {
		t.Errorf("Uncovered = %v, want %s, llama.gguf, absent.gguf", got, extra)
	}
}

func TestVerify(t *testing.T) {
	dir := t.TempDir()
	modelTree(t, dir)
	t.Chdir(dir)
	entries, err := Make("models")
	if err != nil {
		t.Fatal(err)
	}
	writeLock(t, "models.lock", entries)
	l, err := Read("models.lock")
	if err != nil {
		t.Fatal(err)
	}
	if r, err := l.Verify("models/blip2", "models/lora dir"); err != nil || !r.OK() {
		t.Fatalf("Verify of locked models: %v", err)
	}
	if _, err := l.Verify("models/blip2", "llama.gguf"); !errors.Is(err, ErrUnlisted) || !strings.Contains(err.Error(), "llama.gguf") {
		t.Errorf("Verify with an unlisted model: %v, want ErrUnlisted naming llama.gguf", err)
	}
	if err := os.WriteFile("models/blip2/config.json", []byte(`{"model_type": "blip-3"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Verify("models/blip2"); !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "models/blip2/config.json content differs") {
		t.Errorf("Verify with a changed file: %v, want ErrMismatch naming config.json", err)
	}
}
