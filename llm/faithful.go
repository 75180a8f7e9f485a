package llm

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/width"
)

// Faithfulness is what CheckFaithful found.
type Faithfulness struct {
	Score    float64  // found / required
	Required int      // numbers, units and Latin-script words the translation must keep
	Missing  []string // those it lost, as the source writes them
	OK       bool     // false when the source has nothing to check (Score undefined)
}

// units groups the ways of writing a unit after a number, in the scripts a fashion
// listing uses: a source "32인치" is kept by "32 inches" or "32in", "101cm" by "101 cm".
// A unit counts only right after a number (a space between allowed), in the source and
// in the translation alike, so the English word "in" alone never passes for inches.
var units = [][]string{
	{"cm", "㎝", "센티미터", "센티", "센치", "centimeters", "centimeter", "centimetres", "centimetre"},
	{"mm", "㎜", "밀리미터", "밀리", "미리", "millimeters", "millimeter", "millimetres", "millimetre"},
	{"m", "미터", "meters", "meter", "metres", "metre"},
	{"kg", "㎏", "킬로그램", "킬로", "키로", "kilograms", "kilogram", "kilos", "kilo"},
	{"g", "그램", "grams", "gram", "gr"},
	{"inch", "inches", "in", "\"", "″", "인치"},
	{"%", "percent", "퍼센트", "프로"},
	{"ml", "㎖", "밀리리터", "milliliters", "milliliter", "millilitres", "millilitre"},
	{"l", "리터", "liters", "liter", "litres", "litre"},
	{"℃", "°c", "degrees celsius", "도씨"},
	{"oz", "온스", "ounces", "ounce"},
	{"lb", "lbs", "파운드", "pounds", "pound"},
}

var (
	numberRE = regexp.MustCompile(`[0-9]+(?:[.,][0-9]+)*`)
	// a word in Latin letters: a brand, a model code, a size ("GORE-TEX", "H&M", "XL", "A1")
	latinRE     = regexp.MustCompile(`[A-Za-z][A-Za-z0-9]*(?:['’&.+-][A-Za-z0-9]+)*`)
	thousandsRE = regexp.MustCompile(`^[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?$`)
)

// normNumber writes 1,200 as 1200 and 2,5 as 2.5, so that either spelling in the
// translation keeps the source's number.
func normNumber(s string) string {
	if thousandsRE.MatchString(s) {
		return strings.ReplaceAll(s, ",", "")
	}
	return strings.ReplaceAll(s, ",", ".")
}

// quantity is a number and the unit group after it (-1: none).
type quantity struct {
	num, numText string
	unit         int
	unitText     string
	end          int // byte offset after the unit (or the number)
}

// quantities finds the numbers of s and the unit written right after each. Digits
// inside a Latin-script word (model A123) belong to that word.
func quantities(s string) []quantity {
	var out []quantity
	for _, loc := range numberRE.FindAllStringIndex(s, -1) {
		if r, _ := utf8.DecodeLastRuneInString(s[:loc[0]]); isASCIILetter(r) {
			continue
		}
		q := quantity{numText: s[loc[0]:loc[1]], num: normNumber(s[loc[0]:loc[1]]), unit: -1, end: loc[1]}
		rest := strings.TrimLeft(s[loc[1]:], " ")
		lower := strings.ToLower(rest)
		best := 0
		for gi, forms := range units {
			for _, f := range forms {
				if len(f) <= best || !strings.HasPrefix(lower, f) {
					continue
				}
				// A Latin unit must end the word: "5m" and "5 m." are metres, "5 minutes" is not.
				if r, _ := utf8.DecodeRuneInString(lower[len(f):]); isASCIILetter(rune(f[len(f)-1])) && isASCIILetter(r) {
					continue
				}
				best, q.unit, q.unitText = len(f), gi, rest[:len(f)]
			}
		}
		if best > 0 {
			q.end = len(s) - len(rest) + best
		}
		out = append(out, q)
	}
	return out
}

func isASCIILetter(r rune) bool { return r < utf8.RuneSelf && unicode.IsLetter(r) }

// CheckFaithful checks that a translation kept what a translation must not change:
// every number of the source, the unit written after each number (in any of its usual
// spellings, see units), and, when the source language is not written in Latin script
// (sourceLatin false), every Latin-script word of the source (brand names, model codes,
// sizes such as XL), compared case-insensitively as whole words. Full-width characters
// (１００％) are read as their ASCII forms. Missing lists what was lost, as the source
// writes it, once each.
func CheckFaithful(source, translation string, sourceLatin bool) Faithfulness {
	source, translation = width.Fold.String(source), width.Fold.String(translation)
	outNums, outUnits := map[string]bool{}, map[int]bool{}
	for _, q := range quantities(translation) {
		outNums[q.num] = true
		if q.unit >= 0 {
			outUnits[q.unit] = true
		}
	}
	var f Faithfulness
	seen := map[string]bool{}
	need := func(key, shown string, ok bool) {
		if seen[key] {
			return
		}
		seen[key] = true
		f.Required++
		if !ok {
			f.Missing = append(f.Missing, shown)
		}
	}
	qs := quantities(source)
	var unitSpans [][2]int // where the source's units are, so they are not Latin words too
	for _, q := range qs {
		need("n:"+q.num, q.numText, outNums[q.num])
		if q.unit >= 0 {
			need("u:"+units[q.unit][0], q.unitText, outUnits[q.unit])
			unitSpans = append(unitSpans, [2]int{q.end - len(q.unitText), q.end})
		}
	}
	if !sourceLatin {
		lowerOut := strings.ToLower(translation)
	words:
		for _, loc := range latinRE.FindAllStringIndex(source, -1) {
			for _, sp := range unitSpans {
				if loc[0] >= sp[0] && loc[1] <= sp[1] {
					continue words
				}
			}
			w := source[loc[0]:loc[1]]
			need("w:"+strings.ToLower(w), w, hasWord(lowerOut, strings.ToLower(w)))
		}
	}
	if f.Required == 0 {
		return Faithfulness{}
	}
	f.Score = float64(f.Required-len(f.Missing)) / float64(f.Required)
	f.OK = true
	return f
}

// hasWord reports w in s (both lowercased) with no ASCII letter or digit on either side.
func hasWord(s, w string) bool {
	for i := 0; ; {
		k := strings.Index(s[i:], w)
		if k < 0 {
			return false
		}
		at := i + k
		before, _ := utf8.DecodeLastRuneInString(s[:at])
		after, _ := utf8.DecodeRuneInString(s[at+len(w):])
		if !isWordChar(before) && !isWordChar(after) {
			return true
		}
		i = at + 1
	}
}

func isWordChar(r rune) bool {
	return r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r))
}
