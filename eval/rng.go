package eval

import (
	"crypto/sha256"
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strings"
)

// The sampler is written out here, rather than left to math/rand's helpers, so that a
// seed selects the same products and images with every Go version: math/rand/v2 fixes
// the PCG-DXSM output stream of NewPCG(seed1, seed2).Uint64, but not the algorithms of
// Rand.IntN or Rand.Shuffle built on it. Everything below uses only that stream and
// SHA-256. Changing any of it changes samples: bump samplerVersion, which the report
// records.
const samplerVersion = "synth-eval-sampler/v1: products ranked by SHA-256(seed, id); " +
	"images by partial Fisher-Yates on PCG-DXSM(seed, SHA-256(id)) with Lemire bounded draws"

// rng is a PCG-DXSM stream with the bounded draw written out.
type rng struct{ src *rand.PCG }

// newRNG returns the stream for (seed, label): different labels give independent streams
// for the same seed.
func newRNG(seed uint64, label string) *rng {
	h := sha256.Sum256([]byte(label))
	return &rng{rand.NewPCG(seed, binary.LittleEndian.Uint64(h[:8]))}
}

// below returns a uniform integer in [0, n), n > 0, by Lemire's multiply-and-reject
// method ("Fast random integer generation in an interval", ACM TOMACS 2019): the high
// word of x*n is uniform once the low words below 2^64 mod n are rejected.
func (r *rng) below(n uint64) uint64 {
	if n == 0 {
		panic("eval: rng.below(0)")
	}
	hi, lo := bits.Mul64(r.src.Uint64(), n)
	if lo < n {
		threshold := -n % n // 2^64 mod n
		for lo < threshold {
			hi, lo = bits.Mul64(r.src.Uint64(), n)
		}
	}
	return hi
}

// chooseK returns k distinct indices of [0, m) in increasing order, by the first k steps
// of a Fisher-Yates shuffle (each k-subset equally likely).
func (r *rng) chooseK(m, k int) []int {
	idx := make([]int, m)
	for i := range idx {
		idx[i] = i
	}
	for i := range k {
		j := i + int(r.below(uint64(m-i)))
		idx[i], idx[j] = idx[j], idx[i]
	}
	out := slices.Clone(idx[:k])
	slices.Sort(out)
	return out
}

// productRank orders products for sampling: the first n eligible products by rank are
// the sample. Ranks are SHA-256 of (seed, id), i.e. an independent uniform key per
// product, so ranking gives a uniform random order. Because a product's rank depends on
// its id alone, datasets that share product ids are sampled alike (paired), and the
// sample does not depend on the order of the manifest's lines.
func productRank(seed uint64, id string) uint64 {
	h := sha256.New()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], seed)
	h.Write([]byte("synth/eval/product\x00"))
	h.Write(b[:])
	h.Write([]byte(id))
	var sum [32]byte
	return binary.BigEndian.Uint64(h.Sum(sum[:0]))
}

// rankOrder sorts ids by productRank (ties, which need a 64-bit collision, by id) and
// returns the permutation.
func rankOrder(seed uint64, ids []string) []int {
	keys := make([]uint64, len(ids))
	order := make([]int, len(ids))
	for i, id := range ids {
		keys[i] = productRank(seed, id)
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		if keys[a] != keys[b] {
			if keys[a] < keys[b] {
				return -1
			}
			return 1
		}
		return strings.Compare(ids[a], ids[b])
	})
	return order
}

// chooseImages picks k of a product's m images for seed; the choice depends only on
// (seed, id, m, k), so it does not change when other products are added or excluded.
func chooseImages(seed uint64, id string, m, k int) []int {
	return newRNG(seed, "synth/eval/images\x00"+id).chooseK(m, k)
}
