package eval

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

func f32(xs ...float64) []float32 {
	out := make([]float32, len(xs))
	for i, x := range xs {
		out[i] = float32(x)
	}
	return out
}

func f64(xs []float32) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = float64(x)
	}
	return out
}

// testRand returns a seeded generator and logs the seed.
func testRand(t *testing.T, seed uint64) *rand.Rand {
	t.Helper()
	t.Logf("random seed %d", seed)
	return rand.New(rand.NewPCG(seed, 0))
}

func TestSummarizeByHand(t *testing.T) {
	// 1, 2, 3, 4: mean 2.5; squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5, /4 = 1.25.
	s := Summarize(f32(1, 2, 3, 4))
	if s.Count != 4 || s.Mean != 2.5 || s.Var != 1.25 || s.Std != math.Sqrt(1.25) {
		t.Errorf("got %+v", s)
	}
	// One value: variance 0, not NaN.
	if s := Summarize(f32(0.2)); s.Var != 0 || !near(s.Mean, 0.2, 1e-8) {
		t.Errorf("single value: %+v", s)
	}
}

func TestSummarizeMatchesGonum(t *testing.T) {
	r := testRand(t, 1)
	// Values like the paper's: mean 0.18, variance 0.0002, where a one-pass formula would
	// lose most digits.
	xs := make([]float32, 100000)
	for i := range xs {
		xs[i] = float32(0.18 + 0.014*r.NormFloat64())
	}
	s := Summarize(xs)
	mean, variance := stat.PopMeanVariance(f64(xs), nil)
	if !near(s.Mean, mean, 1e-12) || !near(s.Var, variance, 1e-15) {
		t.Errorf("Summarize %v %v, gonum %v %v", s.Mean, s.Var, mean, variance)
	}
}

func TestQuantileType7ByHand(t *testing.T) {
	xs := []float64{1, 2, 3, 4, 5}
	// numpy.quantile([1,2,3,4,5], q): position q*4.
	for _, c := range []struct{ p, want float64 }{{0, 1}, {0.1, 1.4}, {0.25, 2}, {0.5, 3}, {0.975, 4.9}, {1, 5}} {
		if got := quantileSorted(xs, c.p); !near(got, c.want, 1e-12) {
			t.Errorf("quantile(%v) = %v, want %v", c.p, got, c.want)
		}
	}
}

func TestAUCByHand(t *testing.T) {
	// Pairs (same, diff): (.3,.1) 1, (.3,.3) tie 1/2, (.3,.6) 0, (.5,.1) 1, (.5,.3) 1,
	// (.5,.6) 0: 3.5 of 6.
	if got := AUC(f32(0.3, 0.5), f32(0.1, 0.3, 0.6)); !near(got, 3.5/6, 1e-15) {
		t.Errorf("AUC = %v, want %v", got, 3.5/6)
	}
	if got := AUC(f32(2, 3), f32(0, 1)); got != 1 {
		t.Errorf("separated: AUC = %v, want 1", got)
	}
	if got := AUC(f32(1, 1), f32(1, 1, 1)); got != 0.5 {
		t.Errorf("all tied: AUC = %v, want 0.5", got)
	}
}

func TestAUCMatchesPairCount(t *testing.T) {
	r := testRand(t, 2)
	for trial := range 20 {
		// A coarse grid makes ties common.
		same := make([]float32, 1+r.IntN(40))
		diff := make([]float32, 1+r.IntN(200))
		for i := range same {
			same[i] = float32(r.IntN(20)) / 20
		}
		for i := range diff {
			diff[i] = float32(r.IntN(20))/20 - 0.1
		}
		var u float64
		for _, s := range same {
			for _, d := range diff {
				switch {
				case s > d:
					u++
				case s == d:
					u += 0.5
				}
			}
		}
		want := u / float64(len(same)*len(diff))
		slices.Sort(same)
		slices.Sort(diff)
		if got := AUC(same, diff); !near(got, want, 1e-12) {
			t.Fatalf("trial %d: AUC %v, pair count %v", trial, got, want)
		}
	}
}

func TestKSAndW1ByHand(t *testing.T) {
	// F_a - F_b at 1, 2, 3, 4: 1/3, 1/3, 1/3, 0.
	if got := KS(f32(1, 2, 3), f32(2, 3, 4)); !near(got, 1.0/3, 1e-12) {
		t.Errorf("KS = %v, want 1/3", got)
	}
	// |F_a - F_b| is 1/3 on [1, 4): area 1 (each point moves by 1).
	if got := Wasserstein1(f32(1, 2, 3), f32(2, 3, 4)); !near(got, 1, 1e-6) {
		t.Errorf("W1 = %v, want 1", got)
	}
	if got := KS(f32(0, 1), f32(2, 3)); got != 1 {
		t.Errorf("disjoint: KS = %v, want 1", got)
	}
	a := f32(0.1, 0.2, 0.2, 0.7)
	if KS(a, a) != 0 || Wasserstein1(a, a) != 0 {
		t.Error("a sample is at distance 0 from itself")
	}
	// Point mass at 0 against {0, 1}: |F_a - F_b| = 1/2 on [0, 1).
	if got := Wasserstein1(f32(0), f32(0, 1)); !near(got, 0.5, 1e-12) {
		t.Errorf("W1 = %v, want 0.5", got)
	}
	if got := KS(f32(0), f32(0, 1)); got != 0.5 {
		t.Errorf("KS = %v, want 0.5", got)
	}
}

func TestKSMatchesGonum(t *testing.T) {
	r := testRand(t, 3)
	for trial := range 20 {
		a := make([]float32, 1+r.IntN(300))
		b := make([]float32, 1+r.IntN(300))
		for i := range a {
			a[i] = float32(r.IntN(50)) / 50
		}
		for i := range b {
			b[i] = float32(r.IntN(50))/50 + 0.05
		}
		slices.Sort(a)
		slices.Sort(b)
		want := stat.KolmogorovSmirnov(f64(a), nil, f64(b), nil)
		if got := KS(a, b); !near(got, want, 1e-12) {
			t.Fatalf("trial %d: KS %v, gonum %v", trial, got, want)
		}
	}
}

// w1Quantiles is W1 by the other formula: the integral over u in (0, 1) of
// |Qa(u) - Qb(u)|, with the empirical quantile functions constant between the
// breakpoints i/na and j/nb.
func w1Quantiles(a, b []float32) float64 {
	na, nb := len(a), len(b)
	var w, u float64
	i, j := 0, 0
	for i < na && j < nb {
		next := math.Min(float64(i+1)/float64(na), float64(j+1)/float64(nb))
		w += (next - u) * math.Abs(float64(a[i])-float64(b[j]))
		u = next
		if float64(i+1)/float64(na) <= u {
			i++
		}
		if float64(j+1)/float64(nb) <= u {
			j++
		}
	}
	return w
}

func TestW1MatchesQuantileFormula(t *testing.T) {
	r := testRand(t, 4)
	for trial := range 20 {
		a := make([]float32, 1+r.IntN(100))
		b := make([]float32, 1+r.IntN(100))
		for i := range a {
			a[i] = float32(r.NormFloat64())
		}
		for i := range b {
			b[i] = float32(r.ExpFloat64())
		}
		slices.Sort(a)
		slices.Sort(b)
		if got, want := Wasserstein1(a, b), w1Quantiles(a, b); !near(got, want, 1e-5) {
			t.Fatalf("trial %d (%d vs %d values): W1 %v, quantile formula %v", trial, len(a), len(b), got, want)
		}
	}
}

// Large samples of known distributions: the statistics approach their population values.
func TestKSAndW1OnKnownDistributions(t *testing.T) {
	r := testRand(t, 5)
	sample := func(n int, draw func() float64) []float32 {
		out := make([]float32, n)
		for i := range out {
			out[i] = float32(draw())
		}
		slices.Sort(out)
		return out
	}
	const n = 200000
	// N(0,1) vs N(0.5,1): W1 = 0.5 (a shift moves all mass by 0.5); KS = 2*Phi(0.25) - 1,
	// the CDFs being furthest apart at the midpoint 0.25.
	a := sample(n, r.NormFloat64)
	b := sample(n, func() float64 { return 0.5 + r.NormFloat64() })
	wantKS := 2*distuv.UnitNormal.CDF(0.25) - 1
	// Sampling error of the statistics is about 1/sqrt(n) = 0.002; 0.01 is 5 of those.
	if got := KS(a, b); !near(got, wantKS, 0.01) {
		t.Errorf("normal shift: KS %v, want %v", got, wantKS)
	}
	if got := Wasserstein1(a, b); !near(got, 0.5, 0.01) {
		t.Errorf("normal shift: W1 %v, want 0.5", got)
	}
	// U(0,1) vs U(0,2): KS = 1/2 (at x = 1); W1 = integral of |x - x/2| on [0,1] plus
	// |1 - x/2| on [1,2] = 1/4 + 1/4 = 1/2.
	u1 := sample(n, r.Float64)
	u2 := sample(n, func() float64 { return 2 * r.Float64() })
	if got := KS(u1, u2); !near(got, 0.5, 0.01) {
		t.Errorf("uniform scale: KS %v, want 0.5", got)
	}
	if got := Wasserstein1(u1, u2); !near(got, 0.5, 0.01) {
		t.Errorf("uniform scale: W1 %v, want 0.5", got)
	}
	// Two samples of one distribution: both near 0.
	c := sample(n, r.NormFloat64)
	if ks, w := KS(a, c), Wasserstein1(a, c); ks > 0.01 || w > 0.01 {
		t.Errorf("same distribution: KS %v, W1 %v", ks, w)
	}
}

func TestSortFloat32MatchesSlicesSort(t *testing.T) {
	r := testRand(t, 6)
	for _, n := range []int{0, 1, 100, radixMin, 50000} {
		xs := make([]float32, n)
		for i := range xs {
			switch r.IntN(10) {
			case 0:
				xs[i] = 0
			case 1:
				xs[i] = float32(r.IntN(3)) - 1 // repeated values
			case 2:
				xs[i] = float32(r.NormFloat64() * 1e30)
			default:
				xs[i] = float32(r.NormFloat64())
			}
		}
		want := slices.Clone(xs)
		slices.Sort(want)
		sortFloat32(xs)
		if !slices.Equal(xs, want) {
			t.Fatalf("n=%d: radix sort differs from slices.Sort", n)
		}
	}
	same := make([]float32, 3*radixMin)
	for i := range same {
		same[i] = 0.25
	}
	sortFloat32(same) // all bytes equal: every pass skipped
	if slices.ContainsFunc(same, func(x float32) bool { return x != 0.25 }) {
		t.Error("constant input changed")
	}
}
