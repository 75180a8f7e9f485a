package gpt2tok

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// pretokenize splits text like GPT-2's pattern
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// with the regex module's leftmost-first alternation; \s is Unicode White_Space.
func pretokenize(text string) []string {
	var out []string
	for i := 0; i < len(text); {
		n := matchAt(text[i:])
		out = append(out, text[i:i+n])
		i += n
	}
	return out
}

var contractions = []string{"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"}

// matchAt returns the length of the token starting at s (s non-empty); every position
// matches some alternative, so it is at least one rune.
func matchAt(s string) int {
	for _, c := range contractions {
		if strings.HasPrefix(s, c) {
			return len(c)
		}
	}
	for _, class := range []func(rune) bool{isLetter, isNumber, isOther} {
		if n := optSpaceRun(s, class); n > 0 {
			return n
		}
	}
	// Whitespace: \s+(?!\S) takes the run, or all of it but its last character when a
	// non-space follows; a single space before a non-space is left to \s+.
	run, last := 0, 0
	for run < len(s) {
		r, w := utf8.DecodeRuneInString(s[run:])
		if !unicode.IsSpace(r) {
			break
		}
		last = w
		run += w
	}
	if run == len(s) {
		return run
	}
	if run > last {
		return run - last
	}
	if run > 0 {
		return run
	}
	// Unreachable for valid alternatives (a rune is a letter, number, space or other);
	// take one rune so that the scan always advances.
	_, w := utf8.DecodeRuneInString(s)
	return w
}

func isLetter(r rune) bool { return unicode.IsLetter(r) }
func isNumber(r rune) bool { return unicode.IsNumber(r) }
func isOther(r rune) bool  { return !unicode.IsSpace(r) && !unicode.IsLetter(r) && !unicode.IsNumber(r) }

// optSpaceRun matches " ?class+" at the start of s.
func optSpaceRun(s string, class func(rune) bool) int {
	start := 0
	if strings.HasPrefix(s, " ") {
		start = 1
	}
	for _, st := range []int{start, 0} {
		n := st
		for n < len(s) {
			r, w := utf8.DecodeRuneInString(s[n:])
			if !class(r) {
				break
			}
			n += w
		}
		if n > st {
			return n
		}
		if st == 0 {
			break
		}
	}
	return 0
}
