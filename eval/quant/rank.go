package quant

import (
	"fmt"
	"math"
	"sort"
)

// Rank agreement of two scorings of the same records (the reference's and a level's):
// whether the level orders the records as the reference does, whatever their values.

// Ranks returns the rank of each value (1 = smallest), tied values sharing the average
// of the ranks they span.
func Ranks(x []float64) []float64 {
	idx := make([]int, len(x))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return x[idx[a]] < x[idx[b]] })
	r := make([]float64, len(x))
	for i := 0; i < len(idx); {
		j := i + 1
		for j < len(idx) && x[idx[j]] == x[idx[i]] {
			j++
		}
		avg := float64(i+j+1) / 2 // ranks i+1 .. j
		for k := i; k < j; k++ {
			r[idx[k]] = avg
		}
		i = j
	}
	return r
}

// Spearman is Spearman's rank correlation rho: the Pearson correlation of the ranks
// (Ranks, ties averaged). NaN when either side has fewer than 2 records or all its
// values tie.
func Spearman(a, b []float64) float64 {
	checkPaired("Spearman", a, b)
	return pearson(Ranks(a), Ranks(b))
}

func pearson(x, y []float64) float64 {
	n := float64(len(x))
	if len(x) < 2 {
		return math.NaN()
	}
	var mx, my float64
	for i := range x {
		mx += x[i]
		my += y[i]
	}
	mx, my = mx/n, my/n
	var sxy, sxx, syy float64
	for i := range x {
		dx, dy := x[i]-mx, y[i]-my
		sxy += dx * dy
		sxx += dx * dx
		syy += dy * dy
	}
	if sxx == 0 || syy == 0 {
		return math.NaN()
	}
	return sxy / math.Sqrt(sxx*syy)
}

// KendallTauB is Kendall's tau-b over every pair of records: (C - D) / sqrt((P - Ta)(P -
// Tb)) with C and D the concordant and discordant pairs, P all pairs, Ta and Tb the pairs
// tied in a and in b. O(n^2): thousands of records take milliseconds. NaN when either
// side ties every pair.
func KendallTauB(a, b []float64) float64 {
	checkPaired("KendallTauB", a, b)
	var c, d, ta, tb, pairs float64
	for i := range a {
		for j := i + 1; j < len(a); j++ {
			pairs++
			sa, sb := sign(a[i]-a[j]), sign(b[i]-b[j])
			if sa == 0 {
				ta++
			}
			if sb == 0 {
				tb++
			}
			switch p := sa * sb; {
			case p > 0:
				c++
			case p < 0:
				d++
			}
		}
	}
	den := math.Sqrt((pairs - ta) * (pairs - tb))
	if den == 0 {
		return math.NaN()
	}
	return (c - d) / den
}

func sign(x float64) int {
	switch {
	case x > 0:
		return 1
	case x < 0:
		return -1
	}
	return 0
}

func checkPaired(what string, a, b []float64) {
	if len(a) != len(b) {
		panic(fmt.Sprintf("quant: %s of %d and %d records", what, len(a), len(b)))
	}
}
