package cliptok

import (
	"strings"
	"unicode"

	"golang.org/x/text/cases"
	"golang.org/x/text/language"
)

// Clean is the text the BPE sees, as upstream's whitespace_clean(basic_clean(text)).lower():
//  1. ftfy.fix_text (the subset described in doc.go),
//  2. Python's html.unescape, twice,
//  3. strip, 4. runs of Unicode White_Space -> one space, strip,
//  5. Python's str.lower() (full mapping: final sigma, İ -> i + U+0307).
//
// Invalid UTF-8 in text is read as U+FFFD per bad byte first (Python never sees it).
func Clean(text string) string {
	if !isValidUTF8(text) {
		text = string([]rune(text))
	}
	text = fixText(text)
	text = pyUnescape(pyUnescape(text))
	return pyLower(collapseSpace(text))
}

func isValidUTF8(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

// collapseSpace strips and collapses whitespace. The regex module's \s and str.strip()
// both use White_Space here: Go's unicode.IsSpace is exactly that set (not U+200B; the
// \x1c..\x1f that str.strip also removes cannot survive ftfy's control-character removal).
func collapseSpace(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range s {
		if unicode.IsSpace(r) {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	return b.String()
}

// pyLower is Python's str.lower(): the Unicode Lowercase_Mapping, which differs from the
// simple mapping only for U+0130 (İ -> "i\u0307"), and Σ in the Final_Sigma context.
func pyLower(s string) string {
	runes := []rune(s)
	var b strings.Builder
	b.Grow(len(s))
	for i, r := range runes {
		switch r {
		case 0x130:
			b.WriteString("i\u0307")
		case 0x3A3:
			if finalSigma(runes, i) {
				b.WriteRune(0x3C2)
			} else {
				b.WriteRune(0x3C3)
			}
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// finalSigma: Σ at i is preceded by a cased letter (skipping case-ignorable characters)
// and not followed by one (same skipping), as CPython's handle_capital_sigma.
func finalSigma(runes []rune, i int) bool {
	j := i - 1
	for j >= 0 && caseIgnorable(runes[j]) {
		j--
	}
	if j < 0 || !cased(runes[j]) {
		return false
	}
	j = i + 1
	for j < len(runes) && caseIgnorable(runes[j]) {
		j++
	}
	return j == len(runes) || !cased(runes[j])
}

func cased(r rune) bool {
	return unicode.In(r, unicode.Lu, unicode.Ll, unicode.Lt, unicode.Other_Lowercase, unicode.Other_Uppercase)
}

// caseIgnorable is Unicode's Case_Ignorable: Mn, Me, Cf, Lm, Sk and the Word_Break classes
// MidLetter, MidNumLet and Single_Quote.
func caseIgnorable(r rune) bool {
	switch r {
	case '\'', '.', ':', 0xB7, 0x387, 0x55F, 0x5F4, 0x2018, 0x2019, 0x2024, 0x2027,
		0xFE13, 0xFE52, 0xFE55, 0xFF07, 0xFF0E, 0xFF1A:
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
}

// pyUpper is Python's str.upper() (full mapping, ß -> SS). A Caser keeps state, so each
// call makes its own.
func pyUpper(s string) string { return cases.Upper(language.Und).String(s) }
