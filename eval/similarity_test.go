package eval

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// randomSample returns n products of k normalised images and one text, with a shared
// product direction so that same > diff on average, as for real data.
func randomSample(r *rand.Rand, n, k, d int) (images, texts [][]float32) {
	vec := func(base []float64, w float64) []float32 {
		v := make([]float32, d)
		for j := range v {
			v[j] = float32(w*base[j] + r.NormFloat64())
		}
		if err := Normalize(v); err != nil {
			panic(err)
		}
		return v
	}
	for range n {
		dir := make([]float64, d)
		for j := range dir {
			dir[j] = r.NormFloat64()
		}
		for range k {
			images = append(images, vec(dir, 0.7))
		}
		texts = append(texts, vec(dir, 0.5))
	}
	return images, texts
}

func dot64(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

func TestSimilarityMatchesLoops(t *testing.T) {
	r := testRand(t, 10)
	const n, k, d = 13, 3, 37
	images, texts := randomSample(r, n, k, d)
	s := NewSimilarity(images, texts, k)
	var same, diff []float64
	for p := range n {
		for j := range k {
			for q := range n {
				c := dot64(images[p*k+j], texts[q])
				if q == p {
					same = append(same, c)
				} else {
					diff = append(diff, c)
				}
			}
		}
	}
	gotSame, gotDiff := s.Same(), s.Diff()
	if len(gotSame) != n*k || len(gotDiff) != n*k*(n-1) {
		t.Fatalf("%d same and %d diff values, want %d and %d", len(gotSame), len(gotDiff), n*k, n*k*(n-1))
	}
	// float32 dot products of unit vectors: error well under 1e-6.
	for i := range same {
		if !near(float64(gotSame[i]), same[i], 1e-6) {
			t.Fatalf("same[%d] = %v, want %v", i, gotSame[i], same[i])
		}
	}
	for i := range diff {
		if !near(float64(gotDiff[i]), diff[i], 1e-6) {
			t.Fatalf("diff[%d] = %v, want %v", i, gotDiff[i], diff[i])
		}
	}
}

func TestRecallByHand(t *testing.T) {
	// 3 products, 1 image each; S[image][text]:
	//   image 0: 0.9 0.1 0.2 -> own text first: rank 0
	//   image 1: 0.5 0.4 0.4 -> one text above, one tied (ties count against): rank 2
	//   image 2: 0.3 0.6 0.2 -> two above: rank 2
	s := &Similarity{N: 3, K: 1, S: f32(
		0.9, 0.1, 0.2,
		0.5, 0.4, 0.4,
		0.3, 0.6, 0.2)}
	it := s.ImageToText()
	if !near(it.At1, 1.0/3, 1e-12) || it.At5 != 1 || it.At10 != 1 {
		t.Errorf("image->text %+v, want r1 1/3, r5 1, r10 1", it)
	}
	// Columns: text 0: 0.9 0.5 0.3, own image 0.9 first: rank 0. text 1: 0.1 0.4 0.6, own
	// image 0.4, image 2 above: rank 1. text 2: 0.2 0.4 0.2, own image 0.2, image 1 above
	// and image 0 tied: rank 2.
	ti := s.TextToImage()
	if !near(ti.At1, 1.0/3, 1e-12) || ti.At5 != 1 {
		t.Errorf("text->image %+v, want r1 1/3, r5 1", ti)
	}

	// Two images per product: text->image takes the product's best image.
	// Products 0 and 1; rows are images 0a 0b 1a 1b, columns texts 0 and 1.
	s2 := &Similarity{N: 2, K: 2, S: f32(
		0.1, 0.5, // 0a prefers text 1
		0.8, 0.2, // 0b prefers text 0
		0.3, 0.4, // 1a prefers text 1
		0.9, 0.3)} // 1b prefers text 0
	// image->text ranks: 0a 1, 0b 0, 1a 0, 1b 1.
	if it := s2.ImageToText(); it.At1 != 0.5 {
		t.Errorf("k=2 image->text r1 %v, want 0.5", it.At1)
	}
	// text 0: best own 0.8, image 1b (0.9) above: rank 1. text 1: best own 0.4, image 0a
	// (0.5) above: rank 1.
	if ti := s2.TextToImage(); ti.At1 != 0 || ti.At5 != 1 {
		t.Errorf("k=2 text->image %+v, want r1 0, r5 1", ti)
	}
}

func TestRecallMatchesSortedRanks(t *testing.T) {
	r := testRand(t, 11)
	const n, k, d = 40, 2, 16
	images, texts := randomSample(r, n, k, d)
	s := NewSimilarity(images, texts, k)
	// Independent: sort each image's texts by cosine and find the own text's position.
	hits := map[int]int{}
	for i := range n * k {
		order := make([]int, n)
		for q := range order {
			order[q] = q
		}
		row := s.S[i*n : (i+1)*n]
		slices.SortStableFunc(order, func(a, b int) int {
			switch {
			case row[a] > row[b]:
				return -1
			case row[a] < row[b]:
				return 1
			}
			return 0
		})
		pos := slices.Index(order, i/k)
		for _, K := range []int{1, 5, 10} {
			if pos < K {
				hits[K]++
			}
		}
	}
	got := s.ImageToText()
	for K, want := range map[int]float64{1: got.At1, 5: got.At5, 10: got.At10} {
		if exp := float64(hits[K]) / float64(n*k); !near(want, exp, 1e-12) {
			t.Errorf("recall@%d = %v, sorting gives %v", K, want, exp)
		}
	}
}

func TestImageImageMatchesLoops(t *testing.T) {
	r := testRand(t, 12)
	for _, k := range []int{1, 2, 3} {
		const n, d = 11, 24
		images, _ := randomSample(r, n, k, d)
		var same, diff []float32
		for i := range images {
			for j := i + 1; j < len(images); j++ {
				c := float32(dot64(images[i], images[j]))
				if i/k == j/k {
					same = append(same, c)
				} else {
					diff = append(diff, c)
				}
			}
		}
		gotSame, gotDiff := ImageImage(images, k)
		wantDiff := Summarize(diff)
		if gotDiff.Count != wantDiff.Count || !near(gotDiff.Mean, wantDiff.Mean, 1e-7) || !near(gotDiff.Var, wantDiff.Var, 1e-7) {
			t.Errorf("k=%d diff: %+v, loops %+v", k, gotDiff, wantDiff)
		}
		if k == 1 {
			if gotSame != nil {
				t.Errorf("k=1: same image-image %+v, want none", gotSame)
			}
			continue
		}
		if wantSame := Summarize(same); gotSame == nil || gotSame.Count != wantSame.Count || !near(gotSame.Mean, wantSame.Mean, 1e-7) {
			t.Errorf("k=%d same: %+v, loops %+v", k, gotSame, wantSame)
		}
	}
}

// The bootstrap's matrix shortcut must equal the protocol recomputed on the resampled
// product list: every copy of a product contributes its same values; every pair of
// copies of different products contributes its diff values.
func TestBootstrapReplicatesMatchResampledProtocol(t *testing.T) {
	r := testRand(t, 13)
	const n, k, d, reps = 9, 2, 12, 25
	images, texts := randomSample(r, n, k, d)
	s := NewSimilarity(images, texts, k)
	sameReps, diffReps, diffMean := s.bootstrap(reps, newRNG(7, "test"))
	if want := Summarize(s.Diff()).Mean; !near(diffMean, want, 1e-6) {
		t.Errorf("diff mean %v, want %v", diffMean, want)
	}

	draws := newRNG(7, "test")
	var diffAt int
	for b := range reps {
		chosen := make([]int, n)
		for i := range chosen {
			chosen[i] = int(draws.below(n))
		}
		var sameSum, diffSum float64
		var sameN, diffN int
		for _, p := range chosen {
			for j := range k {
				sameSum += dot64(images[p*k+j], texts[p])
				sameN++
				for _, q := range chosen {
					if q != p {
						diffSum += dot64(images[p*k+j], texts[q])
						diffN++
					}
				}
			}
		}
		if !near(sameReps[b], sameSum/float64(sameN), 1e-6) {
			t.Fatalf("replicate %d: same %v, recomputed %v", b, sameReps[b], sameSum/float64(sameN))
		}
		if diffN == 0 {
			continue // no diff pairs: this replicate is left out
		}
		if !near(diffReps[diffAt], diffSum/float64(diffN), 1e-6) {
			t.Fatalf("replicate %d: diff %v, recomputed %v", b, diffReps[diffAt], diffSum/float64(diffN))
		}
		diffAt++
	}
	if diffAt != len(diffReps) {
		t.Errorf("%d diff replicates, recomputation kept %d", len(diffReps), diffAt)
	}
}

func TestBootstrapCIBracketsTheMeanAndNarrowsWithN(t *testing.T) {
	r := testRand(t, 14)
	width := func(n int) (same, diff float64) {
		images, texts := randomSample(r, n, 2, 32)
		s := NewSimilarity(images, texts, 2)
		sm, dm := Summarize(s.Same()).Mean, Summarize(s.Diff()).Mean
		sci, dci := s.BootstrapCI(500, newRNG(1, "ci"))
		if !(sci.Low < sm && sm < sci.High) || !(dci.Low < dm && dm < dci.High) {
			t.Errorf("n=%d: intervals %+v %+v do not bracket the means %v %v", n, sci, dci, sm, dm)
		}
		return sci.High - sci.Low, dci.High - dci.Low
	}
	s50, d50 := width(50)
	s800, d800 := width(800)
	// The width scales as 1/sqrt(n): 4x narrower at 16x the products; 2x is a loose bound.
	if s800 > s50/2 || d800 > d50/2 {
		t.Errorf("widths at n=50: %v %v, at n=800: %v %v", s50, d50, s800, d800)
	}
	// Same seed, same interval.
	images, texts := randomSample(r, 30, 2, 16)
	s := NewSimilarity(images, texts, 2)
	a1, b1 := s.BootstrapCI(200, newRNG(3, "ci"))
	a2, b2 := s.BootstrapCI(200, newRNG(3, "ci"))
	if a1 != a2 || b1 != b2 {
		t.Error("the bootstrap is not deterministic for a seed")
	}
}

func TestNormalize(t *testing.T) {
	v := f32(3, 4)
	if err := Normalize(v); err != nil || !near(float64(v[0]), 0.6, 1e-7) || !near(float64(v[1]), 0.8, 1e-7) {
		t.Errorf("Normalize(3, 4) = %v, %v", v, err)
	}
	for _, bad := range [][]float32{f32(0, 0), {float32(math.NaN()), 1}, {float32(math.Inf(1)), 0}} {
		if err := Normalize(bad); err == nil {
			t.Errorf("Normalize(%v) succeeded", bad)
		}
	}
}
