package eval

import (
	"fmt"
	"slices"
	"testing"
)

// The sampler's output for fixed seeds is pinned: a change here changes every report's
// sample, which must come with a new samplerVersion.
func TestSamplerIsPinned(t *testing.T) {
	r := newRNG(0, "pinned")
	var draws []uint64
	for _, n := range []uint64{10, 1000, 3, 1 << 40, 7} {
		draws = append(draws, r.below(n))
	}
	ids := make([]string, 8)
	for i := range ids {
		ids[i] = fmt.Sprintf("p%d", i)
	}
	got := fmt.Sprint(draws, rankOrder(0, ids), rankOrder(1, ids), chooseImages(0, "p1", 6, 2), chooseImages(0, "p1", 6, 3))
	const want = "[7 761 0 1074586409594 5] [4 0 3 7 5 6 1 2] [3 2 1 0 4 6 7 5] [1 2] [1 2 3]"
	if got != want {
		t.Errorf("sampler output changed:\n got %s\nwant %s\n(if intended, bump samplerVersion and update want)", got, want)
	}
}

func TestBelowIsUniform(t *testing.T) {
	r := newRNG(42, "uniform")
	const n, draws = 7, 70000
	var counts [n]int
	for range draws {
		v := r.below(n)
		if v >= n {
			t.Fatalf("below(%d) = %d", n, v)
		}
		counts[v]++
	}
	// Chi-square with 6 degrees of freedom: P(X > 22.46) = 0.001.
	var chi2 float64
	for _, c := range counts {
		e := float64(draws) / n
		chi2 += (float64(c) - e) * (float64(c) - e) / e
	}
	if chi2 > 22.46 {
		t.Errorf("counts %v: chi-square %.1f, not uniform", counts, chi2)
	}
}

func TestChooseKIsUniformOverSubsets(t *testing.T) {
	r := newRNG(5, "subsets")
	const m, k, draws = 5, 2, 50000
	counts := map[string]int{}
	for range draws {
		c := r.chooseK(m, k)
		if len(c) != k || c[0] >= c[1] || c[1] >= m {
			t.Fatalf("chooseK(%d, %d) = %v", m, k, c)
		}
		counts[fmt.Sprint(c)]++
	}
	if len(counts) != 10 {
		t.Fatalf("%d distinct subsets, want C(5,2) = 10", len(counts))
	}
	// Chi-square with 9 degrees of freedom: P(X > 27.88) = 0.001.
	var chi2 float64
	for _, c := range counts {
		e := float64(draws) / 10
		chi2 += (float64(c) - e) * (float64(c) - e) / e
	}
	if chi2 > 27.88 {
		t.Errorf("subset counts %v: chi-square %.1f", counts, chi2)
	}
}

func TestRankOrderDependsOnSeedNotInputOrder(t *testing.T) {
	ids := make([]string, 200)
	for i := range ids {
		ids[i] = fmt.Sprintf("product-%03d", i)
	}
	byID := func(seed uint64, ids []string) []string {
		var out []string
		for _, i := range rankOrder(seed, ids) {
			out = append(out, ids[i])
		}
		return out
	}
	a := byID(0, ids)
	if !slices.Equal(a, byID(0, ids)) {
		t.Fatal("rankOrder is not deterministic")
	}
	if slices.Equal(a[:20], byID(1, ids)[:20]) {
		t.Error("seeds 0 and 1 give the same first 20 products")
	}
	rev := slices.Clone(ids)
	slices.Reverse(rev)
	if !slices.Equal(a, byID(0, rev)) {
		t.Error("the order depends on the input order")
	}
}
