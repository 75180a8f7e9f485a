//go:build unix

package dataset

import (
	"os"
	"path/filepath"
	"testing"

	"synth/internal/faults"
)

// A published file (card, metadata, Parquet copy, eval manifest) rewritten on a disk
// that fills up keeps its finished content and leaves no temporary file beside it.
func TestPublishedFilesSurviveFullDisk(t *testing.T) {
	dir := t.TempDir()
	card := filepath.Join(dir, "README.md")
	if err := WriteFileIfChanged(card, []byte("# finished card\n")); err != nil {
		t.Fatal(err)
	}
	restore, child := faults.DiskFull(t, 1<<10)
	if !child {
		return
	}
	err := WriteFileIfChanged(card, make([]byte, 64<<10))
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
