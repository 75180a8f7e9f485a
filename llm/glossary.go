package llm

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// Glossary pairs terms of two languages (슬림핏 -> slim fit, 기모 -> brushed fleece). The
// translation prompt lists its entries; keyword coverage looks terms up in both
// directions to match a keyword in one language against a text in the other.
type Glossary struct {
	Path    string // the file it was read from, "" when built in code
	Entries []GlossaryEntry
	index   map[string][]string // glossaryKey(term) -> the other side's terms, both directions
}

// GlossaryEntry is one line of a glossary: a source-language term and its translation.
type GlossaryEntry struct{ Source, Target string }

// ErrGlossary marks a malformed glossary file; the message names the file and line.
var ErrGlossary = errors.New("malformed glossary")

// ReadGlossary reads a TSV glossary: one "source<TAB>target" pair a line (the languages
// of `synth translate --from` and `--to`), blank lines and lines starting with # skipped.
// A term may have several lines, one per accepted translation.
func ReadGlossary(path string) (*Glossary, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("llm: glossary: %w", err)
	}
	var entries []GlossaryEntry
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		if i == 0 {
			line = strings.TrimPrefix(line, "\uFEFF")
		}
		if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		cols := strings.Split(line, "\t")
		if len(cols) != 2 {
			return nil, fmt.Errorf("llm: %w: %s:%d: want two tab-separated columns (source, target), got %d", ErrGlossary, path, i+1, len(cols))
		}
		src, tgt := clean(cols[0]), clean(cols[1])
		if src == "" || tgt == "" {
			return nil, fmt.Errorf("llm: %w: %s:%d: empty term", ErrGlossary, path, i+1)
		}
		entries = append(entries, GlossaryEntry{Source: src, Target: tgt})
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("llm: %w: %s holds no entry", ErrGlossary, path)
	}
	g := NewGlossary(entries)
	g.Path = path
	return g, nil
}

func clean(s string) string { return strings.Join(strings.Fields(s), " ") }

// NewGlossary indexes entries (duplicates are kept once).
func NewGlossary(entries []GlossaryEntry) *Glossary {
	g := &Glossary{index: map[string][]string{}}
	seen := map[GlossaryEntry]bool{}
	for _, e := range entries {
		e = GlossaryEntry{clean(e.Source), clean(e.Target)}
		if seen[e] || e.Source == "" || e.Target == "" {
			continue
		}
		seen[e] = true
		g.Entries = append(g.Entries, e)
		g.index[glossaryKey(e.Source)] = append(g.index[glossaryKey(e.Source)], e.Target)
		g.index[glossaryKey(e.Target)] = append(g.index[glossaryKey(e.Target)], e.Source)
	}
	return g
}

// Len is the number of entries.
func (g *Glossary) Len() int {
	if g == nil {
		return 0
	}
	return len(g.Entries)
}

// Lookup returns the terms a term translates to or from: case- and space-insensitive
// ("Slim Fit", "slimfit" and "slim fit" are one term, as are 슬림 핏 and 슬림핏).
func (g *Glossary) Lookup(term string) []string {
	if g == nil {
		return nil
	}
	return g.index[glossaryKey(term)]
}

func glossaryKey(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return unicode.ToLower(r)
	}, norm.NFC.String(s))
}

// PromptLines renders the entries for a prompt, one "source = target" a line.
func (g *Glossary) PromptLines() string {
	var b strings.Builder
	for _, e := range g.Entries {
		fmt.Fprintf(&b, "%s = %s\n", e.Source, e.Target)
	}
	return b.String()
}
