package eval

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// product is what the evaluation needs of a manifest line (DESIGN.md's JSONL format).
type product struct {
	ID     string   `json:"id"`
	Images []string `json:"images"`
	Text   string   `json:"text"`
}

type manifest struct {
	path     string
	dir      string // image paths are relative to it
	sha256   string // hex, of the file's bytes
	products []product
}

// ErrManifest marks a malformed manifest; the message names the file and line.
var ErrManifest = errors.New("malformed manifest")

// maxManifestLine bounds one line, so a file without newlines is reported, not read
// into memory whole.
const maxManifestLine = 16 << 20

// readManifest parses a JSONL manifest and hashes its bytes. Blank lines are skipped;
// every product needs a unique non-empty id.
func readManifest(path string) (*manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	defer f.Close()
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("eval: manifest %s: %w", path, err)
	}
	m := &manifest{path: path, dir: filepath.Dir(abs)}
	h := sha256.New()
	sc := bufio.NewScanner(io.TeeReader(f, h))
	sc.Buffer(make([]byte, 0, 1<<16), maxManifestLine)
	seen := map[string]int{}
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var p product
		dec := json.NewDecoder(bytes.NewReader(b))
		if err := dec.Decode(&p); err != nil {
			return nil, fmt.Errorf("eval: %w: %s:%d: %v", ErrManifest, path, line, err)
		}
		if dec.More() {
			return nil, fmt.Errorf("eval: %w: %s:%d: more than one JSON value on the line", ErrManifest, path, line)
		}
		if p.ID == "" {
			return nil, fmt.Errorf("eval: %w: %s:%d: product has no \"id\"", ErrManifest, path, line)
		}
		if first, dup := seen[p.ID]; dup {
			return nil, fmt.Errorf("eval: %w: %s:%d: duplicate id %q (first on line %d)", ErrManifest, path, line, p.ID, first)
		}
		seen[p.ID] = line
		m.products = append(m.products, p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("eval: %w: %s: %v", ErrManifest, path, err)
	}
	m.sha256 = hex.EncodeToString(h.Sum(nil))
	return m, nil
}

// imagePath resolves an image path of the manifest against its folder.
func (m *manifest) imagePath(img string) string {
	if filepath.IsAbs(img) {
		return img
	}
	return filepath.Join(m.dir, filepath.FromSlash(img))
}
