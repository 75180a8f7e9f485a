package dataset

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Text is one text of a texts file, with the id its outputs carry.
type Text struct {
	ID   string
	Text string
	// Product: the text came from a product line of a manifest (it may be empty then,
	// which is the product's fault); otherwise it is a text as given.
	Product bool
}

// ReadTexts reads the texts of a --texts file. A .jsonl file holds one JSON value a line:
// a string is a text (its id is its line number), an object is a product line of a
// manifest (its "id" and "text"); texts with newlines or any other character can be
// written this way. Any other file holds one text a line (a trailing \r dropped), its id
// the line number, so a text cannot contain a newline there. Ids must be unique.
func ReadTexts(path string) ([]Text, error) {
	if strings.EqualFold(filepath.Ext(path), ".jsonl") {
		return readJSONLTexts(path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: texts: %w", err)
	}
	defer f.Close()
	var out []Text
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), maxLine)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSuffix(sc.Text(), "\r")
		if line == 1 {
			text = strings.TrimPrefix(text, "\uFEFF")
		}
		out = append(out, Text{ID: strconv.Itoa(line), Text: text})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("dataset: read %s: %w", path, err)
	}
	return out, nil
}

func readJSONLTexts(path string) ([]Text, error) {
	var out []Text
	seen := map[string]int{}
	_, err := eachJSONLine(path, func(lineNo int, line []byte) error {
		var t Text
		if trimmed := bytes.TrimSpace(line); trimmed[0] == '"' {
			if err := json.Unmarshal(trimmed, &t.Text); err != nil {
				return fmt.Errorf("%w: %s:%d: %v", ErrManifest, path, lineNo, err)
			}
			t.ID = strconv.Itoa(lineNo)
		} else {
			p, err := parseProduct(path, lineNo, line)
			if err != nil {
				return err
			}
			t = Text{ID: p.ID, Text: p.Text, Product: true}
		}
		if first, dup := seen[t.ID]; dup {
			return fmt.Errorf("%w: %s:%d: duplicate id %q (first on line %d)", ErrManifest, path, lineNo, t.ID, first)
		}
		seen[t.ID] = lineNo
		out = append(out, t)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
