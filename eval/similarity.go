package eval

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/blas64"
)

// Dimension legend: N products, K images per product, D embedding width.

// Similarity holds the image-text cosines of one sample of N products with K images each.
type Similarity struct {
	N, K int
	// S[i*N+q] = cos(image i, text q): S is [N*K, N], image i belongs to product i/K.
	S []float32
}

// NewSimilarity computes the cosines of images [N*K][D] (product-major: images of
// product p are rows p*K..p*K+K-1) with texts [N][D]. Both must be L2-normalised
// (Normalize), so a dot product is the cosine. The product runs through gonum's blas32
// Sgemm: 2000x1000x768 is 1.5 GMAC, a quarter second, where plain loops take seconds.
func NewSimilarity(images, texts [][]float32, k int) *Similarity {
	n := len(texts)
	if k < 1 || n < 1 || len(images) != n*k {
		panic(fmt.Sprintf("eval: NewSimilarity: %d images for %d texts x %d images each", len(images), n, k))
	}
	d := len(texts[0])
	img := flatten32(images, d) // [N*K, D]
	txt := flatten32(texts, d)  // [N, D]
	s := make([]float32, n*k*n) // [N*K, N]
	blas32.Gemm(blas.NoTrans, blas.Trans, 1,
		blas32.General{Rows: n * k, Cols: d, Stride: d, Data: img},
		blas32.General{Rows: n, Cols: d, Stride: d, Data: txt},
		0, blas32.General{Rows: n * k, Cols: n, Stride: n, Data: s})
	return &Similarity{N: n, K: k, S: s}
}

func flatten32(rows [][]float32, d int) []float32 {
	out := make([]float32, 0, len(rows)*d)
	for i, r := range rows {
		if len(r) != d {
			panic(fmt.Sprintf("eval: row %d has %d values, want %d", i, len(r), d))
		}
		out = append(out, r...)
	}
	return out
}

// Same returns cos(I_pk, T_p) for every product p and image k, in row order: N*K values.
func (s *Similarity) Same() []float32 {
	out := make([]float32, 0, s.N*s.K)
	for i := range s.N * s.K {
		out = append(out, s.S[i*s.N+i/s.K])
	}
	return out
}

// Diff returns cos(I_pk, T_q) for every image and every q != p, in row order:
// N*K*(N-1) values.
func (s *Similarity) Diff() []float32 {
	out := make([]float32, 0, s.N*s.K*(s.N-1))
	for i := range s.N * s.K {
		row := s.S[i*s.N : (i+1)*s.N]
		p := i / s.K
		out = append(out, row[:p]...)
		out = append(out, row[p+1:]...)
	}
	return out
}

// Recall holds recall@1, @5 and @10: the fraction of queries whose match ranks in the
// top K. Ties count against the query (a match tied with a wrong item ranks below it),
// so degenerate embeddings score chance or worse, never perfect.
type Recall struct {
	At1  float64 `json:"r1"`
	At5  float64 `json:"r5"`
	At10 float64 `json:"r10"`
}

func recallFromRanks(ranks []int) Recall {
	var r Recall
	for _, k := range ranks {
		if k < 1 {
			r.At1++
		}
		if k < 5 {
			r.At5++
		}
		if k < 10 {
			r.At10++
		}
	}
	n := float64(len(ranks))
	return Recall{At1: r.At1 / n, At5: r.At5 / n, At10: r.At10 / n}
}

// ImageToText ranks, for each of the N*K images, its product's text among the N texts:
// rank = number of other texts with cosine >= the matching one.
func (s *Similarity) ImageToText() Recall {
	ranks := make([]int, s.N*s.K)
	for i := range ranks {
		row := s.S[i*s.N : (i+1)*s.N]
		p := i / s.K
		for q, v := range row {
			if q != p && v >= row[p] {
				ranks[i]++
			}
		}
	}
	return recallFromRanks(ranks)
}

// TextToImage ranks, for each of the N texts, its product's best-matching image among all
// N*K images: rank = number of other products' images with cosine >= that best one (the
// usual image-gallery retrieval: a hit when any of the product's images is in the top K).
func (s *Similarity) TextToImage() Recall {
	ranks := make([]int, s.N)
	for p := range s.N {
		best := float32(math.Inf(-1))
		for j := range s.K {
			best = max(best, s.S[(p*s.K+j)*s.N+p])
		}
		for i := range s.N * s.K {
			if i/s.K != p && s.S[i*s.N+p] >= best {
				ranks[p]++
			}
		}
	}
	return recallFromRanks(ranks)
}

// BootstrapCI returns percentile bootstrap 95% intervals of the same and diff means.
// The resampled unit is the product, which is what the protocol samples: a replicate
// draws N products with replacement (multiplicities m_p) and recomputes both means over
// the resampled set exactly as the protocol would, each copy of a product counting in
// full and the pairs of two copies of one product being same-product pairs, not diff:
//
//	same* = sum_p m_p s_p / (K N)                        s_p = sum_k cos(I_pk, T_p)
//	diff* = sum_{p != q} m_p m_q D_pq / (K (N^2 - sum_p m_p^2))   D_pq = sum_k cos(I_pk, T_q)
//
// Resampling single cosines instead would treat the N*K*(N-1) diff values as independent
// when each image and each text appears in N-1 of them, and give intervals far too
// narrow. The diff numerators of all replicates are one [R, N] x [N, N] product (Dgemm).
func (s *Similarity) BootstrapCI(replicates int, r *rng) (same, diff Interval) {
	sameReps, diffReps, diffMean := s.bootstrap(replicates, r)
	same = percentileInterval(sameReps, 0.05)
	if len(diffReps) == 0 {
		return same, Interval{Low: diffMean, High: diffMean}
	}
	return same, percentileInterval(diffReps, 0.05)
}

// bootstrap returns the replicates of the same and diff means, and the diff mean itself.
func (s *Similarity) bootstrap(replicates int, r *rng) (sameReps, diffReps []float64, diffMean float64) {
	n, k := s.N, s.K
	sp := make([]float64, n)    // s_p
	dpq := make([]float64, n*n) // D [N, N], zero diagonal
	var diffTotal float64
	for i := range n * k {
		p := i / k
		for q, v := range s.S[i*n : (i+1)*n] {
			if q == p {
				sp[p] += float64(v)
			} else {
				dpq[p*n+q] += float64(v)
				diffTotal += float64(v)
			}
		}
	}
	m := make([]float64, replicates*n) // [R, N] multiplicities
	for b := range replicates {
		for range n {
			m[b*n+int(r.below(uint64(n)))]++
		}
	}
	md := make([]float64, replicates*n) // [R, N]: (M D^T)[b, p] = sum_q m_bq D_pq
	blas64.Gemm(blas.NoTrans, blas.Trans, 1,
		blas64.General{Rows: replicates, Cols: n, Stride: n, Data: m},
		blas64.General{Rows: n, Cols: n, Stride: n, Data: dpq},
		0, blas64.General{Rows: replicates, Cols: n, Stride: n, Data: md})
	sameReps = make([]float64, replicates)
	diffReps = make([]float64, 0, replicates)
	for b := range replicates {
		mb := m[b*n : (b+1)*n]
		var sameSum, diffSum, sq float64
		for p, mp := range mb {
			sameSum += mp * sp[p]
			diffSum += mp * md[b*n+p]
			sq += mp * mp
		}
		sameReps[b] = sameSum / float64(k*n)
		// n^2 - sum m^2 is 0 only if one product was drawn n times: no diff pairs at all,
		// with probability n^(1-n) (1/2 at n = 2, nil at real sizes). Such a replicate has
		// no diff mean and is left out.
		if pairs := float64(n*n) - sq; pairs > 0 {
			diffReps = append(diffReps, diffSum/(float64(k)*pairs))
		}
	}
	return sameReps, diffReps, diffTotal / float64(k*n*(n-1))
}

// ImageImage summarises cos(I_pa, I_qb) over unordered pairs of distinct images: same
// when p == q (N*K*(K-1)/2 values; nil when K == 1), diff otherwise
// (N*(N-1)*K^2/2 values). images is [N*K][D], product-major and normalised.
//
// The diff sums come from the D x D Gram matrix G = X^T X instead of the N*K x N*K
// cosine matrix: sum_{i,j} c_ij = |sum_i x_i|^2 and sum_{i,j} c_ij^2 = |G|_F^2, which is
// 2.6x less arithmetic at N*K = 2000, D = 768. Same pairs are few and summed directly.
func ImageImage(images [][]float32, k int) (same *Summary, diff Summary) {
	total := len(images)
	if k < 1 || total%k != 0 || total/k < 2 {
		panic(fmt.Sprintf("eval: ImageImage: %d images in products of %d", total, k))
	}
	n := total / k
	d := len(images[0])
	x := make([]float64, total*d) // [N*K, D]
	colSum := make([]float64, d)
	var diagSum, diagSq float64 // sum_i c_ii and c_ii^2 (1 for normalised rows)
	for i, row := range images {
		var nn float64
		for j, v := range row {
			x[i*d+j] = float64(v)
			colSum[j] += float64(v)
			nn += float64(v) * float64(v)
		}
		diagSum += nn
		diagSq += nn * nn
	}
	g := make([]float64, d*d) // [D, D], upper triangle
	blas64.Syrk(blas.Trans, 1, blas64.General{Rows: total, Cols: d, Stride: d, Data: x},
		0, blas64.Symmetric{Uplo: blas.Upper, N: d, Stride: d, Data: g})
	var allSum, allSq float64
	for _, v := range colSum {
		allSum += v * v
	}
	for a := range d {
		allSq += g[a*d+a] * g[a*d+a]
		for b := a + 1; b < d; b++ {
			allSq += 2 * g[a*d+b] * g[a*d+b]
		}
	}

	var sameVals []float32
	var sameSum, sameSq float64 // over unordered same pairs
	for p := range n {
		for a := range k {
			for b := a + 1; b < k; b++ {
				var c float64
				for j := range d {
					c += x[(p*k+a)*d+j] * x[(p*k+b)*d+j]
				}
				sameVals = append(sameVals, float32(c))
				sameSum += c
				sameSq += c * c
			}
		}
	}
	if len(sameVals) > 0 {
		s := Summarize(sameVals)
		same = &s
	}
	count := float64(total*(total-1)/2 - len(sameVals))
	sum := (allSum-diagSum)/2 - sameSum
	sq := (allSq-diagSq)/2 - sameSq
	mean := sum / count
	v := max(sq/count-mean*mean, 0)
	return same, Summary{Count: int(count), Mean: mean, Var: v, Std: math.Sqrt(v)}
}

// Normalize scales v to unit L2 norm in place, computing the norm in float64. It fails
// for a vector that is zero or not finite: such an embedding says nothing.
func Normalize(v []float32) error {
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	if ss == 0 || math.IsInf(ss, 0) || math.IsNaN(ss) {
		return fmt.Errorf("embedding has norm %v", math.Sqrt(ss))
	}
	inv := 1 / math.Sqrt(ss)
	for i, x := range v {
		v[i] = float32(float64(x) * inv)
	}
	return nil
}
