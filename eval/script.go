package eval

import (
	"fmt"
	"unicode"
)

// Scripts is the writing systems of a dataset's texts: Long-CLIP's tokenizer is
// English (byte-level BPE learned on English), so a text in Hangul is scored as
// byte-level noise rather than as words.
type Scripts struct {
	Texts    int     `json:"texts"`     // texts counted (the eligible products')
	NonLatin float64 `json:"non_latin"` // share of texts whose letters are mostly not Latin script
	Hangul   float64 `json:"hangul"`    // share of texts whose letters are mostly Hangul
}

// MostlyNonLatin is the share of non-Latin texts above which Run warns.
const MostlyNonLatin = 0.5

// CountScripts classifies each text by the script of the majority of its letters.
func CountScripts(texts []string) Scripts {
	s := Scripts{Texts: len(texts)}
	if len(texts) == 0 {
		return s
	}
	nonLatin, hangul := 0, 0
	for _, t := range texts {
		letters, latin, hg := 0, 0, 0
		for _, r := range t {
			if !unicode.IsLetter(r) {
				continue
			}
			letters++
			switch {
			case unicode.Is(unicode.Latin, r):
				latin++
			case unicode.Is(unicode.Hangul, r):
				hg++
			}
		}
		if 2*latin < letters {
			nonLatin++
		}
		if 2*hg > letters {
			hangul++
		}
	}
	s.NonLatin = float64(nonLatin) / float64(len(texts))
	s.Hangul = float64(hangul) / float64(len(texts))
	return s
}

// warning is the dataset's language warning, "" when its texts are mostly Latin script.
func (s Scripts) warning(name string) string {
	if s.Texts == 0 || s.NonLatin <= MostlyNonLatin {
		return ""
	}
	return fmt.Sprintf("dataset %s: %.0f%% of its %d texts are mostly not in Latin script (%.0f%% Hangul); Long-CLIP's tokenizer is English, "+
		"so their similarities measure byte-level noise, not the descriptions: translate them first (synth translate)",
		name, 100*s.NonLatin, s.Texts, 100*s.Hangul)
}
