package quant

import (
	"unicode"
)

// chrF (Popović 2015, "chrF: character n-gram F-score for automatic MT evaluation") as
// computed here:
//
//   - characters are Unicode code points with white space removed, case kept;
//   - for each order n = 1..ChrFOrder, hyp, ref and match count the hypothesis's
//     n-grams, the reference's, and their clipped overlap (sum over n-grams of the
//     smaller count), summed over every sentence pair of the corpus;
//   - precision P_n = match/hyp and recall R_n = match/ref (0 when the count is 0);
//     orders where neither side has an n-gram are left out;
//   - chrP and chrR are the means of P_n and R_n over the orders kept, and
//     chrF = 100 (1 + beta^2) chrP chrR / (beta^2 chrP + chrR) with beta = 2 (recall
//     weighs twice as much), 0 when chrP + chrR = 0; two empty texts score 100.
//
// This is the original paper's averaging of precisions and recalls (sacreBLEU's chrF
// averages per-order F-scores instead, so its numbers differ slightly).

// ChrFOrder and ChrFBeta are the character n-gram order and the recall weight.
const (
	ChrFOrder = 6
	ChrFBeta  = 2
)

// ChrF accumulates chrF's statistics over sentence pairs (a corpus score).
type ChrF struct {
	hyp, ref, match [ChrFOrder]int
}

// Add counts one hypothesis against its reference.
func (c *ChrF) Add(hyp, ref string) {
	h, r := chars(hyp), chars(ref)
	for n := 1; n <= ChrFOrder; n++ {
		hc, rc := ngrams(h, n), ngrams(r, n)
		for g, k := range hc {
			c.hyp[n-1] += k
			c.match[n-1] += min(k, rc[g])
		}
		for _, k := range rc {
			c.ref[n-1] += k
		}
	}
}

// Score is chrF in [0, 100] over the pairs added (100 with none, or only empty pairs).
func (c *ChrF) Score() float64 {
	var sp, sr float64
	kept := 0
	for n := range ChrFOrder {
		if c.hyp[n] == 0 && c.ref[n] == 0 {
			continue
		}
		kept++
		if c.hyp[n] > 0 {
			sp += float64(c.match[n]) / float64(c.hyp[n])
		}
		if c.ref[n] > 0 {
			sr += float64(c.match[n]) / float64(c.ref[n])
		}
	}
	if kept == 0 {
		return 100
	}
	p, r := sp/float64(kept), sr/float64(kept)
	if p+r == 0 {
		return 0
	}
	const b2 = ChrFBeta * ChrFBeta
	return 100 * (1 + b2) * p * r / (b2*p + r)
}

// ChrFScore is the corpus chrF of hyps against refs (pairs by index).
func ChrFScore(hyps, refs []string) float64 {
	var c ChrF
	for i := range hyps {
		c.Add(hyps[i], refs[i])
	}
	return c.Score()
}

func chars(s string) []rune {
	out := make([]rune, 0, len(s))
	for _, r := range s {
		if !unicode.IsSpace(r) {
			out = append(out, r)
		}
	}
	return out
}

func ngrams(s []rune, n int) map[string]int {
	out := map[string]int{}
	for i := 0; i+n <= len(s); i++ {
		out[string(s[i:i+n])]++
	}
	return out
}
