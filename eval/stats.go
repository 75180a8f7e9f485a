package eval

import (
	"math"
	"slices"
)

// Summary describes a set of values: the paper's mean and population variance, plus the
// standard deviation and the count.
type Summary struct {
	Count int     `json:"count"`
	Mean  float64 `json:"mean"`
	Var   float64 `json:"var"` // population variance (ddof 0), as the paper reports
	Std   float64 `json:"std"` // sqrt(Var)
}

// Summarize computes the Summary of xs (at least one value) in float64 with two passes,
// so the variance does not lose digits to cancellation.
func Summarize(xs []float32) Summary {
	if len(xs) == 0 {
		panic("eval: Summarize of no values")
	}
	var sum float64
	for _, x := range xs {
		sum += float64(x)
	}
	mean := sum / float64(len(xs))
	// Corrected two-pass algorithm (Chan, Golub, LeVeque 1983): the second term removes
	// the rounding error left in mean.
	var ss, comp float64
	for _, x := range xs {
		d := float64(x) - mean
		ss += d * d
		comp += d
	}
	v := (ss - comp*comp/float64(len(xs))) / float64(len(xs))
	v = max(v, 0)
	return Summary{Count: len(xs), Mean: mean, Var: v, Std: math.Sqrt(v)}
}

// Interval is a confidence interval.
type Interval struct {
	Low  float64 `json:"low"`
	High float64 `json:"high"`
}

// quantileSorted is the linear-interpolation quantile of sorted xs (Hyndman and Fan's
// type 7, numpy's default): position p*(n-1), interpolated between its neighbours.
func quantileSorted(xs []float64, p float64) float64 {
	h := p * float64(len(xs)-1)
	i := int(math.Floor(h))
	if i >= len(xs)-1 {
		return xs[len(xs)-1]
	}
	return xs[i] + (h-float64(i))*(xs[i+1]-xs[i])
}

// percentileInterval is the central (1-alpha) percentile interval of the bootstrap
// replicates (sorted in place).
func percentileInterval(reps []float64, alpha float64) Interval {
	slices.Sort(reps)
	return Interval{Low: quantileSorted(reps, alpha/2), High: quantileSorted(reps, 1-alpha/2)}
}

// AUC is P(same > diff) + P(same = diff)/2 for a same and a diff value drawn
// independently: the Mann-Whitney U statistic over |same|*|diff|, the area under the ROC
// curve of the cosine as a same-product detector. Both slices must be sorted ascending;
// the count is exact (one merge, no pairs enumerated).
func AUC(same, diff []float32) float64 {
	if len(same) == 0 || len(diff) == 0 {
		panic("eval: AUC of an empty sample")
	}
	// twiceU counts 2 per same > diff pair and 1 per tie, so it stays an integer:
	// at most 2 * 2000 * 2M = 8e9 at the default sizes.
	var twiceU uint64
	lt, le := 0, 0 // same values < d and <= d, for the current diff value d
	for _, d := range diff {
		for lt < len(same) && same[lt] < d {
			lt++
		}
		le = max(le, lt)
		for le < len(same) && same[le] <= d {
			le++
		}
		twiceU += 2*uint64(len(same)-le) + uint64(le-lt)
	}
	return float64(twiceU) / (2 * float64(len(same)) * float64(len(diff)))
}

// KS is the two-sample Kolmogorov-Smirnov statistic sup_x |F_a(x) - F_b(x)| of the
// empirical distribution functions of a and b (both sorted ascending, non-empty).
func KS(a, b []float32) float64 {
	if len(a) == 0 || len(b) == 0 {
		panic("eval: KS of an empty sample")
	}
	na, nb := float64(len(a)), float64(len(b))
	var i, j int
	var d float64
	for i < len(a) && j < len(b) {
		x := min(a[i], b[j])
		// Step past every copy of x in both samples before comparing the CDFs there.
		for i < len(a) && a[i] == x {
			i++
		}
		for j < len(b) && b[j] == x {
			j++
		}
		d = max(d, math.Abs(float64(i)/na-float64(j)/nb))
	}
	// Past the end of one sample the other CDF only rises towards 1; the largest gap is
	// where the first ended, already counted.
	return d
}

// Wasserstein1 is the 1-Wasserstein (earth mover's) distance between the empirical
// distributions of a and b (both sorted ascending, non-empty): the integral of
// |F_a(x) - F_b(x)| over x, exact for step functions.
func Wasserstein1(a, b []float32) float64 {
	if len(a) == 0 || len(b) == 0 {
		panic("eval: Wasserstein1 of an empty sample")
	}
	na, nb := float64(len(a)), float64(len(b))
	var i, j int
	var w float64
	x := float64(min(a[0], b[0]))
	for i < len(a) || j < len(b) {
		var next float32
		switch {
		case i == len(a):
			next = b[j]
		case j == len(b):
			next = a[i]
		default:
			next = min(a[i], b[j])
		}
		// On [x, next) both CDFs are constant at i/na and j/nb.
		w += math.Abs(float64(i)/na-float64(j)/nb) * (float64(next) - x)
		x = float64(next)
		for i < len(a) && a[i] == next {
			i++
		}
		for j < len(b) && b[j] == next {
			j++
		}
	}
	return w
}
