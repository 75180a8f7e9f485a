// Package seed derives per-item random seeds from a run's seed, so that an item's random
// stream (a sampled caption, a rewritten text) depends on the run seed and the item's
// identity only: not on the order items run in, the batch or slot that runs them, or how
// the job is sharded.
//
//	s := seed.Item(runSeed, product.ID, image)
//
// seed imports the standard library only.
package seed

import (
	"hash/fnv"
	"strconv"
)

// Item is FNV-1a 64 of the run seed in decimal followed by each part, each preceded by
// a NUL byte: "<run>\x00<part0>\x00<part1>...". Parts are the item's identity (its id,
// an image path, an attempt number). Changing this changes every sampled output of a
// seeded run, and rewrite records the seed it gave (item_seed).
func Item(run uint64, parts ...string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(strconv.FormatUint(run, 10)))
	for _, p := range parts {
		h.Write([]byte{0})
		h.Write([]byte(p))
	}
	return h.Sum64()
}
