package llm

import (
	"strings"
	"unicode"
)

// stopWords carry no attribute of a product; a keyword made only of them is not
// counted. English only: the rewrite prompt asks for English text.
var stopWords = map[string]bool{
	"a": true, "an": true, "the": true, "and": true, "or": true, "of": true, "with": true,
	"in": true, "on": true, "for": true, "to": true, "by": true, "at": true, "from": true,
	"as": true, "is": true, "are": true, "it": true, "its": true, "this": true, "that": true,
	"very": true, "into": true, "has": true, "have": true,
}

// Coverage is the faithfulness measure of a rewrite: the fraction of the input keywords
// whose content words all appear in the text. Words are compared lowercased, with
// apostrophes removed and a crude plural stem ("sleeves" matches "sleeve", "pockets"
// matches "pocket"), so "puff sleeves" is covered by "...with puff sleeve details".
// missing lists the keywords not covered. ok is false when no keyword has a content word
// (coverage is then undefined).
//
// It is a lexical check: a synonym ("denim" for "jeans") counts as missing, and a word
// in a negation ("not cotton") counts as present. Languages written without spaces
// between words are not split into words.
func Coverage(keywords []string, text string) (frac float64, missing []string, ok bool) {
	have := map[string]bool{}
	for _, w := range contentWords(text) {
		have[w] = true
	}
	counted, covered := 0, 0
	for _, kw := range keywords {
		words := contentWords(kw)
		if len(words) == 0 {
			continue
		}
		counted++
		all := true
		for _, w := range words {
			if !have[w] {
				all = false
				break
			}
		}
		if all {
			covered++
		} else {
			missing = append(missing, kw)
		}
	}
	if counted == 0 {
		return 0, nil, false
	}
	return float64(covered) / float64(counted), missing, true
}

// contentWords splits s into lowercased, stemmed words, dropping stop words.
func contentWords(s string) []string {
	s = strings.NewReplacer("'", "", "\u2019", "").Replace(strings.ToLower(s))
	var out []string
	for _, w := range strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		if stopWords[w] {
			continue
		}
		out = append(out, stem(w))
	}
	return out
}

// stem strips an English plural ending; it only has to map a word and its plural to
// the same string, not find the linguistic stem.
func stem(w string) string {
	n := len(w)
	switch {
	case n > 4 && strings.HasSuffix(w, "ies"):
		return w[:n-3] + "y"
	case n > 4 && (strings.HasSuffix(w, "ches") || strings.HasSuffix(w, "shes") || strings.HasSuffix(w, "sses") || strings.HasSuffix(w, "xes") || strings.HasSuffix(w, "zes")):
		return w[:n-2]
	case n > 3 && strings.HasSuffix(w, "s") && !strings.HasSuffix(w, "ss") && !strings.HasSuffix(w, "us") && !strings.HasSuffix(w, "is"):
		return w[:n-1]
	}
	return w
}
