package llm

import (
	"strings"
	"unicode/utf8"
)

// Hangul syllables are composed arithmetically (Unicode 3.12, "Conjoining Jamo
// Behavior"): syllable = 0xAC00 + (lead*21 + vowel)*28 + tail, tail 0 meaning none.
const (
	hangulFirst = 0xAC00
	hangulLast  = 0xD7A3
	tailCount   = 28
	tailN       = 4  // ㄴ
	tailL       = 8  // ㄹ
	tailB       = 17 // ㅂ
)

func isHangulSyllable(r rune) bool { return r >= hangulFirst && r <= hangulLast }

// isHangul reports Hangul syllables and jamo (conjoining and compatibility).
func isHangul(r rune) bool {
	return isHangulSyllable(r) || (r >= 0x1100 && r <= 0x11FF) || (r >= 0x3130 && r <= 0x318F) || (r >= 0xA960 && r <= 0xA97F) || (r >= 0xD7B0 && r <= 0xD7FF)
}

// tail is the final consonant index of a syllable (0: none, -1: not a syllable).
func tail(r rune) int {
	if !isHangulSyllable(r) {
		return -1
	}
	return int(r-hangulFirst) % tailCount
}

// withTail replaces a syllable's final consonant.
func withTail(r rune, t int) rune { return r - rune(tail(r)) + rune(t) }

// lastRune and dropLast split off a string's last rune.
func lastRune(s string) rune {
	r, _ := utf8.DecodeLastRuneInString(s)
	return r
}

func dropLast(s string) string {
	_, n := utf8.DecodeLastRuneInString(s)
	return s[:len(s)-n]
}

func setLast(s string, r rune) string { return dropLast(s) + string(r) }

func syllables(s string) int { return utf8.RuneCountInString(s) }

// particles are the postpositions, copula forms and plural marker that attach to a
// noun in running Korean text, so that "청바지는", "면으로" and "슬림핏이며" still contain
// the keywords 청바지, 면 and 슬림핏. A text word matches a keyword when what follows the
// keyword in it is a sequence of these (particleChain). Longest first.
var particles = sortedByLength([]string{
	// case and auxiliary particles
	"이", "가", "을", "를", "은", "는", "의", "에", "에서", "에게", "께", "한테", "으로", "로",
	"와", "과", "랑", "이랑", "하고", "도", "만", "까지", "부터", "처럼", "같이", "보다", "마다",
	"조차", "마저", "밖에", "이나", "나", "이든지", "든지", "들", "으로서", "로서", "으로써", "로써",
	"에는", "에도", "에선", "엔", "이야", "야",
	// the copula after a noun ("코트입니다", "면이며", "슬림핏인")
	"이다", "다", "입니다", "이며", "며", "이고", "고", "이라", "라", "이라서", "라서", "인", "이에요",
	"예요", "이어서", "여서", "이지만", "지만", "이죠", "죠", "임", "이어", "였", "이었",
})

// blockingPrefixes make a compound the opposite of its head: 인조가죽 (faux leather) is
// not 가죽 (leather). A keyword found inside a word right after one of them is no match.
var blockingPrefixes = []string{"인조", "합성", "페이크", "에코", "가짜", "모조"}

func sortedByLength(list []string) []string {
	out := append([]string(nil), list...)
	for i := 1; i < len(out); i++ { // insertion sort: tiny list, stable, longest first
		for j := i; j > 0 && len(out[j]) > len(out[j-1]); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// particleChain reports whether rest is empty or a sequence of particles. It tries
// every split (the lists overlap: "이다" is one particle, and "이" + "다" two).
func particleChain(rest string) bool {
	if rest == "" {
		return true
	}
	for _, p := range particles {
		if strings.HasPrefix(rest, p) && particleChain(rest[len(p):]) {
			return true
		}
	}
	return false
}

// Endings that may start what follows a predicate stem in a word: 고 다 게 지 ... after
// any stem, 은 을 아 어 ... after a stem ending in a consonant, 하 한 해 ... after the
// noun part of a 하다 adjective, 우 워 ... after an ㅂ-irregular stem that lost its ㅂ.
var (
	consonantEndings = []string{"고", "다", "게", "지", "네", "니", "기", "습", "던", "도록", "죠"}
	vowelEndings     = append([]string{"은", "을", "음", "아", "어", "았", "었", "으"}, consonantEndings...)
	hadaEndings      = []string{"하", "한", "할", "함", "합", "해", "했", "히"}
	bIrregular       = []string{"우", "운", "울", "움", "워", "웠"}
	nEndings         = append([]string{"어", "아", "었", "았"}, consonantEndings...)
)

// form is one way a keyword word can appear in a text: the string itself, and what may
// follow it up to the end of the text word.
type form struct {
	s    string
	rest func(string) bool
}

func startsWithAny(list []string) func(string) bool {
	return func(rest string) bool {
		for _, p := range list {
			if strings.HasPrefix(rest, p) {
				return true
			}
		}
		return false
	}
}

// hangulForms lists the forms of a Hangul keyword word: the word followed by particles,
// and for an adjective or verb in its attributive or plain form, its stem followed by an
// ending: 따뜻한 -> 따뜻하고, 따뜻해서; 부드러운 -> 부드럽고, 부드러워; 짧은 -> 짧고;
// 긴 -> 길고. Stems are found by these few rules, not by a dictionary: an irregular verb
// outside them matches only in the keyword's own form.
func hangulForms(w string) []form {
	forms := []form{{w, particleChain}}
	n := syllables(w)
	for _, suf := range []string{"하다", "하게", "하고", "한", "해"} {
		if strings.HasSuffix(w, suf) && syllables(w) > syllables(suf) {
			return append(forms, form{strings.TrimSuffix(w, suf), startsWithAny(hadaEndings)})
		}
	}
	last := lastRune(w)
	switch {
	case n >= 2 && last == '운':
		stem := dropLast(w)
		forms = append(forms, form{stem, startsWithAny(bIrregular)})
		if tail(lastRune(stem)) == 0 {
			forms = append(forms, form{setLast(stem, withTail(lastRune(stem), tailB)), startsWithAny(consonantEndings)})
		}
	case n >= 2 && last == '은' && tail(lastRune(dropLast(w))) > 0:
		forms = append(forms, form{dropLast(w), startsWithAny(vowelEndings)})
	case tail(last) == tailN:
		stem := setLast(w, withTail(last, 0))
		forms = append(forms, form{stem, startsWithAny(nEndings)})
		forms = append(forms, form{setLast(w, withTail(last, tailL)), startsWithAny(nEndings)}) // ㄹ-irregular: 긴 -> 길다
	}
	return forms
}
