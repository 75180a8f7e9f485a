package bpe

import "sync"

// Model is a set of byte-pair merges over interned symbols. Build it with Intern and
// AddMerge (single goroutine), then call Merge from any number of goroutines.
type Model struct {
	syms  []string
	ids   map[string]int32
	pairs map[uint64]merge

	mu       sync.RWMutex
	cache    map[string][]int32
	cacheMax int
}

type merge struct {
	rank   int32
	merged int32
}

// DefaultCacheEntries bounds the merge cache; when full it is emptied and refilled, which
// keeps memory bounded over millions of distinct words at the price of recomputing.
const DefaultCacheEntries = 1 << 17

// New returns an empty model with a merge cache of cacheEntries words (0: the default).
func New(cacheEntries int) *Model {
	if cacheEntries <= 0 {
		cacheEntries = DefaultCacheEntries
	}
	return &Model{ids: map[string]int32{}, pairs: map[uint64]merge{}, cache: map[string][]int32{}, cacheMax: cacheEntries}
}

// Intern returns the id of symbol s, adding it when new.
func (m *Model) Intern(s string) int32 {
	if id, ok := m.ids[s]; ok {
		return id
	}
	id := int32(len(m.syms))
	m.syms = append(m.syms, s)
	m.ids[s] = id
	return id
}

// ID returns the id of symbol s.
func (m *Model) ID(s string) (int32, bool) {
	id, ok := m.ids[s]
	return id, ok
}

// Symbol returns the string of symbol id.
func (m *Model) Symbol(id int32) string { return m.syms[id] }

// NumSymbols is the number of interned symbols.
func (m *Model) NumSymbols() int { return len(m.syms) }

// AddMerge records that the adjacent pair (a, b) merges into a+b with the given rank
// (lower merges first). A pair added again takes the new rank, as the Python dict that
// upstream builds from the merges list (dict(zip(merges, range(n)))) keeps the last one.
func (m *Model) AddMerge(a, b string, rank int) {
	ia, ib := m.Intern(a), m.Intern(b)
	m.pairs[pairKey(ia, ib)] = merge{rank: int32(rank), merged: m.Intern(a + b)}
}

// NumMerges is the number of merges added.
func (m *Model) NumMerges() int { return len(m.pairs) }

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// Merge applies the merges to a word given as initial symbols and returns the final
// symbols. key identifies the word for the cache (the caller's pre-token); the returned
// slice is shared with the cache and must not be modified.
//
// The loop is the reference BPE of GPT-2 and CLIP: repeatedly find the adjacent pair with
// the lowest rank; merge every occurrence of it left to right without overlap; stop when
// no adjacent pair has a rank or one symbol is left.
func (m *Model) Merge(key string, word []int32) []int32 {
	m.mu.RLock()
	out, ok := m.cache[key]
	m.mu.RUnlock()
	if ok {
		return out
	}
	out = m.merge(append([]int32(nil), word...))
	m.mu.Lock()
	if len(m.cache) >= m.cacheMax {
		m.cache = make(map[string][]int32, m.cacheMax/4)
	}
	m.cache[key] = out
	m.mu.Unlock()
	return out
}

func (m *Model) merge(word []int32) []int32 {
	for len(word) > 1 {
		best := merge{rank: -1}
		var bestKey uint64
		for i := 0; i+1 < len(word); i++ {
			k := pairKey(word[i], word[i+1])
			if mg, ok := m.pairs[k]; ok && (best.rank < 0 || mg.rank < best.rank) {
				best, bestKey = mg, k
			}
		}
		if best.rank < 0 {
			break
		}
		a, b := int32(bestKey>>32), int32(uint32(bestKey))
		j := 0
		for i := 0; i < len(word); {
			if i+1 < len(word) && word[i] == a && word[i+1] == b {
				word[j] = best.merged
				i += 2
			} else {
				word[j] = word[i]
				i++
			}
			j++
		}
		word = word[:j]
	}
	return word
}
