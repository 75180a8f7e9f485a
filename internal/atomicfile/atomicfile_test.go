package atomicfile

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"synth/internal/faults"
)

// listDir returns the names in dir, to check that nothing but the final file is left.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteFileReplacesWithMode0644(t *testing.T) {
	// A umask of 077 is common on shared machines; the file must still be 0644, as the
	// files written without this helper are.
	defer syscall.Umask(syscall.Umask(0o077))
	dir := t.TempDir()
	p := filepath.Join(dir, "out.json")
	if err := os.WriteFile(p, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte("new content")); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(p)
	if string(got) != "new content" {
		t.Errorf("content %q", got)
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", st.Mode().Perm())
	}
	if names := listDir(t, dir); len(names) != 1 {
		t.Errorf("files left: %v", names)
	}
}

func TestWriteModeKeepsGivenMode(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x")
	if err := WriteMode(p, 0o600, func(w io.Writer) error { _, err := w.Write([]byte("x")); return err }); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
}

func TestFailedFillLeavesOldFileAndNoTemp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "report.md")
	os.WriteFile(p, []byte("previous report"), 0o644)
	boom := errors.New("renderer failed")
	err := Write(p, func(w io.Writer) error {
		w.Write(bytes.Repeat([]byte("x"), 3<<20)) // past the buffer: bytes reach the temp file
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("error %v, want the fill's", err)
	}
	if got, _ := os.ReadFile(p); string(got) != "previous report" {
		t.Errorf("final name holds %d bytes, want the old content", len(got))
	}
	if names := listDir(t, dir); len(names) != 1 {
		t.Errorf("files left: %v", names)
	}
}

// A disk that fills up part way: the final name never holds a partial file, and the
// temporary file is gone (the old helpers left "<name>.tmp" behind or wrote in place).
func TestDiskFullLeavesNothingPartial(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "merged.jsonl")
	if _, child := faults.DiskFull(t, 64<<10); !child {
		return
	}
	err := WriteFile(p, bytes.Repeat([]byte("{\"id\":\"p\"}\n"), 50_000))
	if !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("error %v, want EFBIG from the simulated full disk", err)
	}
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("final name exists after a failed write: %v", err)
	}
	if names := listDir(t, dir); len(names) != 0 {
		t.Errorf("files left: %v", names)
	}
}

// Two writers of one path never share a temporary file: each rename installs one
// writer's complete content.
func TestConcurrentWritersEachCompleteOrNothing(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "card.md")
	a, b := bytes.Repeat([]byte("a"), 2<<20), bytes.Repeat([]byte("b"), 2<<20)
	errs := make(chan error, 2)
	go func() { errs <- WriteFile(p, a) }()
	go func() { errs <- WriteFile(p, b) }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	got, _ := os.ReadFile(p)
	if !bytes.Equal(got, a) && !bytes.Equal(got, b) {
		t.Errorf("final content mixes the writers (%d bytes)", len(got))
	}
	if names := listDir(t, dir); len(names) != 1 {
		t.Errorf("files left: %v", names)
	}
}

func TestMissingFolderIsAnError(t *testing.T) {
	p := filepath.Join(t.TempDir(), "absent", "x.json")
	if err := WriteFile(p, []byte("x")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error %v, want not-exist", err)
	}
}
