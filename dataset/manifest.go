package dataset

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
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
	// Warnings name the lines read with a repair (invalid UTF-8 replaced by U+FFFD); each
	// is also logged at warn level.
	Warnings []string
}

// ErrManifest marks a malformed manifest; the message names the file and line.
var ErrManifest = errors.New("malformed manifest")

// maxLine bounds one manifest line (a product with a very long description is still far
// below this); a longer line is reported rather than read into memory whole.
const maxLine = 16 << 20

// ReadManifest parses a JSONL manifest. Blank lines are skipped; every product needs a
// non-empty unique id. Errors name the file and the 1-based line. A UTF-8 byte order mark
// at the start (Windows editors write one) is skipped; a line that is not valid UTF-8 is
// read with U+FFFD in place of the bad bytes, as encoding/json does, and a warning names
// it.
func ReadManifest(path string) (*Manifest, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: manifest %s: %w", path, err)
	}
	m := &Manifest{Path: path, Dir: filepath.Dir(abs)}
	seen := map[string]int{}
	m.Warnings, err = eachJSONLine(path, func(lineNo int, line []byte) error {
		p, err := parseProduct(path, lineNo, line)
		if err != nil {
			return err
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
		return nil, err
	}
	return m, nil
}

// eachJSONLine calls fn for every non-blank line of the JSONL file at path, a UTF-8 byte
// order mark at the start skipped, and returns the warnings for lines that are not valid
// UTF-8 (also logged). Errors are wrapped "dataset: ...".
func eachJSONLine(path string, fn func(lineNo int, line []byte) error) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: open manifest: %w", err)
	}
	defer f.Close()
	var warnings []string
	err = eachLine(f, func(lineNo int, line []byte) error {
		if lineNo == 1 {
			line = bytes.TrimPrefix(line, []byte("\uFEFF"))
		}
		if w := checkUTF8(path, lineNo, line); w != "" {
			warnings = append(warnings, w)
		}
		return fn(lineNo, line)
	})
	if err != nil {
		return warnings, fmt.Errorf("dataset: %w", err)
	}
	return warnings, nil
}

// parseProduct decodes one manifest line: exactly one JSON object with a non-empty id.
func parseProduct(path string, lineNo int, line []byte) (Product, error) {
	var p Product
	dec := json.NewDecoder(bytes.NewReader(line))
	if err := dec.Decode(&p); err != nil {
		return p, fmt.Errorf("%w: %s:%d: %v", ErrManifest, path, lineNo, err)
	}
	if dec.More() {
		return p, fmt.Errorf("%w: %s:%d: more than one JSON value on the line", ErrManifest, path, lineNo)
	}
	if p.ID == "" {
		return p, fmt.Errorf("%w: %s:%d: product has no \"id\"", ErrManifest, path, lineNo)
	}
	return p, nil
}

// checkUTF8 returns (and logs) a warning naming the line when it is not valid UTF-8,
// which encoding/json reads with U+FFFD in place of the bad bytes.
func checkUTF8(path string, lineNo int, line []byte) string {
	if utf8.Valid(line) {
		return ""
	}
	slog.Warn("dataset: line is not valid UTF-8; bad bytes replaced by U+FFFD", "file", path, "line", lineNo)
	return fmt.Sprintf("%s:%d is not valid UTF-8: its bad bytes read as U+FFFD", path, lineNo)
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

// TextFields are the product fields a command can take its text from (--text-field).
var TextFields = []string{"text", "title", "category", "keywords"}

// Field is the product's text in field name: one of TextFields ("keywords" joined with
// ", "). The second result is false for an unknown field.
func (p Product) Field(name string) (string, bool) {
	switch name {
	case "text":
		return p.Text, true
	case "title":
		return p.Title, true
	case "category":
		return p.Category, true
	case "keywords":
		return strings.Join(p.Keywords, ", "), true
	}
	return "", false
}
