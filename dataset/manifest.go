package dataset

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Product is one line of a manifest (docs/manifest.md):
//
//	{"id": "p123", "images": ["img/p123_0.jpg"], "text": "...", "keywords": ["blue jeans"],
//	 "category": "...", "title": "...", "lang": "en"}
//
// Image paths are relative to the manifest's folder (absolute paths are kept as they are).
type Product struct {
	ID       string   `json:"id"`
	Images   []string `json:"images,omitempty"`
	Text     string   `json:"text,omitempty"`
	Keywords []string `json:"keywords,omitempty"`
	Category string   `json:"category,omitempty"`
	Title    string   `json:"title,omitempty"`
	Lang     string   `json:"lang,omitempty"`
}

// Manifest is a parsed manifest file.
type Manifest struct {
	Path     string // the file it was read from
	Dir      string // the folder image paths are relative to
	Products []Product
}

// ErrManifest marks a malformed manifest; the message names the file and line.
var ErrManifest = errors.New("malformed manifest")

// maxLine bounds one manifest line (a product with a very long description is still far
// below this); a longer line is reported rather than read into memory whole.
const maxLine = 16 << 20

// ReadManifest parses a JSONL manifest. Blank lines are skipped; every product needs a
// non-empty unique id. Errors name the file and the 1-based line.
func ReadManifest(path string) (*Manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: open manifest: %w", err)
	}
	defer f.Close()
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: manifest %s: %w", path, err)
	}
	m := &Manifest{Path: path, Dir: filepath.Dir(abs)}
	seen := map[string]int{}
	err = eachLine(f, func(lineNo int, line []byte) error {
		var p Product
		dec := json.NewDecoder(bytes.NewReader(line))
		if err := dec.Decode(&p); err != nil {
			return fmt.Errorf("%w: %s:%d: %v", ErrManifest, path, lineNo, err)
		}
		if dec.More() {
			return fmt.Errorf("%w: %s:%d: more than one JSON value on the line", ErrManifest, path, lineNo)
		}
		if p.ID == "" {
			return fmt.Errorf("%w: %s:%d: product has no \"id\"", ErrManifest, path, lineNo)
		}
		if first, dup := seen[p.ID]; dup {
			return fmt.Errorf("%w: %s:%d: duplicate id %q (first on line %d)", ErrManifest, path, lineNo, p.ID, first)
		}
		for i, img := range p.Images {
			if strings.TrimSpace(img) == "" {
				return fmt.Errorf("%w: %s:%d: product %q: image %d is an empty path", ErrManifest, path, lineNo, p.ID, i)
			}
		}
		seen[p.ID] = lineNo
		m.Products = append(m.Products, p)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	return m, nil
}

// ImagePath resolves an image path of the manifest against its folder.
func (m *Manifest) ImagePath(img string) string {
	if filepath.IsAbs(img) {
		return img
	}
	return filepath.Join(m.Dir, filepath.FromSlash(img))
}

// eachLine calls fn for every non-blank line of r (without the newline), with 1-based
// line numbers. A line longer than maxLine is an error.
func eachLine(r io.Reader, fn func(lineNo int, line []byte) error) error {
	br := bufio.NewReaderSize(r, 1<<16)
	var buf []byte
	for lineNo := 1; ; lineNo++ {
		buf = buf[:0]
		for {
			chunk, err := br.ReadSlice('\n')
			buf = append(buf, chunk...)
			if len(buf) > maxLine {
				return fmt.Errorf("line %d is longer than %d bytes", lineNo, maxLine)
			}
			if err == bufio.ErrBufferFull {
				continue
			}
			if err == io.EOF {
				if len(bytes.TrimSpace(buf)) > 0 {
					if err := fn(lineNo, bytes.TrimRight(buf, "\r\n")); err != nil {
						return err
					}
				}
				return nil
			}
			if err != nil {
				return err
			}
			break
		}
		if len(bytes.TrimSpace(buf)) == 0 {
			continue
		}
		if err := fn(lineNo, bytes.TrimRight(buf, "\r\n")); err != nil {
			return err
		}
	}
}
