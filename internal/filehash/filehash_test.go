package filehash

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func TestFileAndFilesMatchSHA256(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	os.WriteFile(a, []byte("model shard one"), 0o644)
	os.WriteFile(b, make([]byte, 3<<20), 0o644) // past io.Copy's buffer
	if got, err := File(a); err != nil || got != sum([]byte("model shard one")) {
		t.Errorf("File: %s, %v", got, err)
	}
	want := sum(append([]byte("model shard one"), make([]byte, 3<<20)...))
	if got, err := Files(a, b); err != nil || got != want {
		t.Errorf("Files: %s, %v; want the concatenation's", got, err)
	}
	if _, err := File(filepath.Join(dir, "absent")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("absent file: %v", err)
	}
}

func TestTreeNamesAndContents(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "sub", "w.safetensors"), []byte("W"), 0o644)
	os.WriteFile(filepath.Join(dir, "config.json"), []byte("{}"), 0o644)
	want := sum([]byte("config.json\n{}" + filepath.Join("sub", "w.safetensors") + "\nW"))
	if got, err := Tree(dir); err != nil || got != want {
		t.Errorf("Tree(folder): %s, %v; want %s", got, err, want)
	}
	if got, err := Tree(filepath.Join(dir, "config.json")); err != nil || got != sum([]byte("{}")) {
		t.Errorf("Tree(file): %s, %v", got, err)
	}
	// A renamed file changes the folder's hash though no content changed.
	os.Rename(filepath.Join(dir, "config.json"), filepath.Join(dir, "config2.json"))
	if got, _ := Tree(dir); got == want {
		t.Error("renaming a file left the folder hash unchanged")
	}
}

func TestFileSize(t *testing.T) {
	p := filepath.Join(t.TempDir(), "m.gguf")
	os.WriteFile(p, []byte("twelve bytes"), 0o644)
	if s, n, err := FileSize(p); err != nil || s != sum([]byte("twelve bytes")) || n != 12 {
		t.Errorf("FileSize: %s %d %v", s, n, err)
	}
}
