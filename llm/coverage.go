package llm

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// stopWords carry no attribute of a product; a keyword made only of them is not
// counted.
var stopWords = map[string]bool{
	"a": true, "an": true, "the": true, "and": true, "or": true, "of": true, "with": true,
	"in": true, "on": true, "for": true, "to": true, "by": true, "at": true, "from": true,
	"as": true, "is": true, "are": true, "it": true, "its": true, "this": true, "that": true,
	"very": true, "into": true, "has": true, "have": true,
	// Korean conjunctions that join keywords ("면 및 폴리")
	"및": true, "그리고": true, "또는": true, "등": true,
}

// CoverageResult is the outcome of CoverageWith.
type CoverageResult struct {
	Frac    float64  // covered keywords / counted keywords
	Missing []string // keywords not covered, in input order
	// Glossary notes the keywords found only through the glossary, as
	// "keyword = the translation found" (or "keyword: word = translation" when one word
	// of it was), so a record says when its coverage crossed languages.
	Glossary []string
	OK       bool // false when no keyword has a content word (coverage undefined)
}

// Coverage is the faithfulness measure of a rewrite: the fraction of the input keywords
// whose content words all appear in the text (CoverageWith without a glossary).
func Coverage(keywords []string, text string) (frac float64, missing []string, ok bool) {
	r := CoverageWith(keywords, text, nil)
	return r.Frac, r.Missing, r.OK
}

// CoverageWith measures which keywords appear in the text.
//
// Latin-script and digit words are compared lowercased, with apostrophes removed and a
// crude plural stem ("sleeves" matches "sleeve"), so "puff sleeves" is covered by
// "...with puff sleeve details".
//
// Hangul words are matched the way Korean attaches words: a keyword word matches a text
// word that starts with it and continues with particles or the copula (청바지 in
// 청바지는, 면 in 면으로, 슬림핏 in 슬림핏이며); an adjective also matches through its stem
// (따뜻한 in 따뜻하고, 부드러운 in 부드러워서, 긴 in 길고). Spacing does not matter: 슬림핏
// matches "슬림 핏" and "슬림 핏" matches 슬림핏. A keyword of two syllables or more also
// matches as the head of a compound written without a space (청바지 in 파란색청바지),
// except after a prefix that negates it (가죽 is not in 인조가죽); a one-syllable keyword
// must start a word (면 is not in 양면 or 면접).
//
// With a glossary, a keyword not found as written is looked up (in both directions) and
// its translations are searched instead, whole or word by word, so English keywords
// can be checked against a Korean text and the other way round; Glossary says which.
//
// It is a lexical check: a synonym ("denim" for "jeans", 블루 for 파란색) counts as
// missing, and a word in a negation ("not cotton", "면이 아닌") counts as present.
func CoverageWith(keywords []string, text string, g *Glossary) CoverageResult {
	ti := indexText(text)
	var r CoverageResult
	counted, covered := 0, 0
	for _, kw := range keywords {
		k := splitKeyword(kw)
		if k.empty() {
			continue
		}
		counted++
		if ti.covers(k) {
			covered++
			continue
		}
		if note, ok := ti.coversThrough(kw, k, g); ok {
			covered++
			r.Glossary = append(r.Glossary, note)
			continue
		}
		r.Missing = append(r.Missing, kw)
	}
	if counted == 0 {
		return CoverageResult{}
	}
	r.Frac, r.OK = float64(covered)/float64(counted), true
	return r
}

// keywordWords is a keyword split by script: English-like words (stemmed, no stop
// words) and Hangul words.
type keywordWords struct {
	latin, hangul []string
}

func (k keywordWords) empty() bool { return len(k.latin) == 0 && len(k.hangul) == 0 }

func splitKeyword(kw string) keywordWords {
	var k keywordWords
	for _, w := range scriptWords(kw) {
		if stopWords[w.s] {
			continue
		}
		if w.hangul {
			k.hangul = append(k.hangul, w.s)
		} else {
			k.latin = append(k.latin, stem(w.s))
		}
	}
	return k
}

// textIndex is a text prepared for matching.
type textIndex struct {
	latin map[string]bool // stemmed non-Hangul words
	// runs are the text's Hangul words, grouped into runs of words that only whitespace
	// separates (a match may span the words of a run: spacing-insensitive).
	runs [][]string
}

func indexText(text string) *textIndex {
	ti := &textIndex{latin: map[string]bool{}}
	var run []string
	for _, w := range scriptWords(text) {
		switch {
		case !w.hangul:
			ti.latin[stem(w.s)] = true
			if len(run) > 0 {
				ti.runs, run = append(ti.runs, run), nil
			}
		case w.afterPunct && len(run) > 0:
			ti.runs, run = append(ti.runs, run), []string{w.s}
		default:
			run = append(run, w.s)
		}
	}
	if len(run) > 0 {
		ti.runs = append(ti.runs, run)
	}
	return ti
}

type scriptWord struct {
	s      string
	hangul bool
	// afterPunct: something other than whitespace separates the word from the previous
	// one (a comma ends a compound, a space does not)
	afterPunct bool
}

// scriptWords splits s into lowercased words of letters and digits, a new word
// starting wherever the script changes between Hangul and the rest ("32인치" is 32 and
// 인치). Apostrophes are dropped ("women's" is one word); Hangul is composed (NFC) first,
// so text typed as conjoining jamo matches text typed as syllables.
func scriptWords(s string) []scriptWord {
	s = norm.NFC.String(strings.NewReplacer("'", "", "\u2019", "").Replace(strings.ToLower(s)))
	var out []scriptWord
	var cur strings.Builder
	curHangul, punct := false, false
	flush := func() {
		if cur.Len() > 0 {
			out = append(out, scriptWord{s: cur.String(), hangul: curHangul, afterPunct: punct})
			cur.Reset()
			punct = false
		}
	}
	for _, r := range s {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			flush()
			if !unicode.IsSpace(r) {
				punct = true
			}
			continue
		}
		h := isHangul(r)
		if cur.Len() > 0 && h != curHangul {
			flush()
			punct = true // a script change ends a Hangul compound like punctuation
		}
		curHangul = h
		cur.WriteRune(r)
	}
	flush()
	return out
}

// covers reports whether every word of the keyword is in the text, the Hangul words
// either one by one or joined without spaces (a keyword "슬림 핏" in a text "슬림핏").
func (ti *textIndex) covers(k keywordWords) bool {
	for _, w := range k.latin {
		if !ti.latin[w] {
			return false
		}
	}
	if len(k.hangul) == 0 {
		return true
	}
	all := true
	for _, w := range k.hangul {
		if !ti.hasHangul(w) {
			all = false
			break
		}
	}
	return all || (len(k.hangul) > 1 && ti.hasHangul(strings.Join(k.hangul, "")))
}

// coversThrough tries the glossary's translations of the whole keyword, then of each of
// its words that is not in the text as written.
func (ti *textIndex) coversThrough(kw string, k keywordWords, g *Glossary) (string, bool) {
	if g == nil {
		return "", false
	}
	for _, tr := range g.Lookup(kw) {
		if t := splitKeyword(tr); !t.empty() && ti.covers(t) {
			return kw + " = " + tr, true
		}
	}
	var notes []string
	through := func(w string) bool {
		for _, tr := range g.Lookup(w) {
			if t := splitKeyword(tr); !t.empty() && ti.covers(t) {
				notes = append(notes, w+" = "+tr)
				return true
			}
		}
		return false
	}
	for _, w := range k.latin {
		if !ti.latin[w] && !through(w) {
			return "", false
		}
	}
	for _, w := range k.hangul {
		if !ti.hasHangul(w) && !through(w) {
			return "", false
		}
	}
	if len(notes) == 0 {
		return "", false
	}
	return kw + ": " + strings.Join(notes, ", "), true
}

// hasHangul reports whether one of the forms of the Hangul keyword word w appears.
func (ti *textIndex) hasHangul(w string) bool {
	for _, f := range hangulForms(w) {
		for _, run := range ti.runs {
			if matchRun(run, f) {
				return true
			}
		}
	}
	return false
}

// matchRun looks for f.s in the run's words joined without spaces. The match must start
// at a word, or, for two syllables or more, inside one (a compound's head) unless a
// blocking prefix precedes it in that word; what follows it up to the end of the word
// it ends in must satisfy f.rest.
func matchRun(run []string, f form) bool {
	joined := strings.Join(run, "")
	starts := make([]int, 0, len(run)+1) // byte offsets where the words start, then the end
	off := 0
	for _, w := range run {
		starts = append(starts, off)
		off += len(w)
	}
	starts = append(starts, off)
	compound := syllables(f.s) >= 2
	for wi := 0; wi < len(run); wi++ {
		word := run[wi]
		for i := 0; i < len(word); {
			at := starts[wi] + i
			if strings.HasPrefix(joined[at:], f.s) && (i == 0 || (compound && !blocked(word[:i]))) {
				end := at + len(f.s)
				next := wi + 1
				for starts[next] < end {
					next++
				}
				if f.rest(joined[end:starts[next]]) {
					return true
				}
			}
			if !compound {
				break // a one-syllable keyword must start a word
			}
			_, n := utf8.DecodeRuneInString(word[i:])
			i += n
		}
	}
	return false
}

func blocked(before string) bool {
	for _, p := range blockingPrefixes {
		if strings.HasSuffix(before, p) {
			return true
		}
	}
	return false
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
