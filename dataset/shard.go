package dataset

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
)

// Shard selects a deterministic part of a dataset: item ids are split by a hash of the
// id, so every machine computes the same split without coordination, and the split does
// not depend on manifest order.
type Shard struct {
	Index, Count int // 0 <= Index < Count
}

// All is the trivial shard holding everything.
var All = Shard{Index: 0, Count: 1}

// ParseShard parses "i/n" (0-based i), as given to --shard.
func ParseShard(s string) (Shard, error) {
	if s == "" {
		return All, nil
	}
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(strings.TrimSpace(a))
	n, err2 := strconv.Atoi(strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return Shard{}, fmt.Errorf("dataset: shard %q: want i/n with 0 <= i < n, e.g. 0/4", s)
	}
	return Shard{Index: i, Count: n}, nil
}

// Has reports whether the item with this id belongs to the shard (FNV-1a 64 of the id,
// modulo Count).
func (s Shard) Has(id string) bool {
	if s.Count <= 1 {
		return true
	}
	h := fnv.New64a()
	h.Write([]byte(id))
	return h.Sum64()%uint64(s.Count) == uint64(s.Index)
}

func (s Shard) String() string { return fmt.Sprintf("%d/%d", s.Index, s.Count) }
