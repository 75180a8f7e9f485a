package opt

import (
	"fmt"

	"synth/native"
)

// Session is a batch of sequences decoding through one KV cache on the model's
// device, one sequence per slot; it is the generate.Model of an OPT decoder. Prefill and
// Step return logits in the Ctx's arena (the caller releases them with its marks).
type Session struct {
	m     *Model
	c     *native.Ctx
	kv    *native.KVCache
	masks [][]bool // per slot: attention mask over its positions; nil while all are real
	seen  []int    // per slot: real (unmasked) positions held
	pos   []int32
	lens  []int
}

// NewSession allocates a cache of m.KVCache elements for slots sequences of up to
// maxLen positions each (prompt and new tokens; at most max_position_embeddings).
func (m *Model) NewSession(c *native.Ctx, slots, maxLen int) (*Session, error) {
	if slots < 1 || maxLen < 1 {
		return nil, fmt.Errorf("opt: session of %d slots of %d positions", slots, maxLen)
	}
	if maxLen > m.Cfg.MaxPositions {
		return nil, fmt.Errorf("opt: %d positions per sequence exceed max_position_embeddings %d", maxLen, m.Cfg.MaxPositions)
	}
	return &Session{
		m: m, c: c,
		kv:    c.Device().NewKVCache(len(m.Layers), slots, maxLen, m.Cfg.Hidden, m.KVCache),
		masks: make([][]bool, slots),
		seen:  make([]int, slots),
	}, nil
}

// Close frees the session's KV cache.
func (s *Session) Close() { s.c.FreeKV(s.kv) }

// Model is the decoder the session runs.
func (s *Session) Model() *Model { return s.m }

// Ctx is the Ctx the session runs on.
func (s *Session) Ctx() *native.Ctx { return s.c }

// Vocab is the number of logits per position.
func (s *Session) Vocab() int { return s.m.Cfg.Vocab }

// Len is the number of positions slot holds.
func (s *Session) Len(slot int) int { return s.kv.Len(slot) }

// MaxLen is the number of positions a slot can hold.
func (s *Session) MaxLen() int { return s.kv.MaxLen() }

// Prefill empties slots and runs their prompts: x [N, P] holds the input embeddings of
// lens[i] positions for slots[i], stacked; masks[i] is slot i's attention mask over them
// (true: a real token; nil or a nil entry: all real). It returns the next-token logits
// of each slot's last position, [len(slots), V], in the arena.
func (s *Session) Prefill(x native.Tensor, slots, lens []int, masks [][]bool) native.Tensor {
	if len(lens) != len(slots) || (masks != nil && len(masks) != len(slots)) {
		panic(fmt.Sprintf("opt: Prefill: %d slots, %d lengths, %d masks", len(slots), len(lens), len(masks)))
	}
	s.pos = s.pos[:0]
	last := make([]int32, len(slots))
	var keyMask [][]bool
	row := 0
	for i, slot := range slots {
		if lens[i] < 1 {
			panic(fmt.Sprintf("opt: Prefill: slot %d with %d positions", slot, lens[i]))
		}
		s.kv.SetLen(slot, 0)
		var mask []bool
		if masks != nil && masks[i] != nil {
			if len(masks[i]) != lens[i] {
				panic(fmt.Sprintf("opt: Prefill: slot %d: mask of %d for %d positions", slot, len(masks[i]), lens[i]))
			}
			if !allTrue(masks[i]) {
				mask = append(make([]bool, 0, s.kv.MaxLen()), masks[i]...)
			}
		}
		s.masks[slot] = mask
		s.pos = PositionIDs(s.pos, mask, lens[i], 0)
		s.seen[slot] = lens[i]
		if mask != nil {
			s.seen[slot] = count(mask)
			if keyMask == nil {
				keyMask = make([][]bool, len(slots))
			}
			keyMask[i] = mask
		}
		row += lens[i]
		last[i] = int32(row - 1)
	}
	h := s.m.Forward(s.c, s.kv, x, Batch{Slots: slots, Lens: lens, Pos: s.pos, KeyMask: keyMask})
	return s.m.Logits(s.c, s.c.GatherRows(h, last))
}

// Step appends ids[i] to the sequence in slots[i] (one position each, all in one pass)
// and returns each slot's next-token logits, [len(slots), V], in the arena.
func (s *Session) Step(slots []int, ids []int32) native.Tensor {
	if len(ids) != len(slots) {
		panic(fmt.Sprintf("opt: Step: %d slots, %d ids", len(slots), len(ids)))
	}
	s.pos, s.lens = s.pos[:0], s.lens[:0]
	var keyMask [][]bool
	for i, slot := range slots {
		s.seen[slot]++
		s.pos = append(s.pos, int32(s.seen[slot]+1))
		s.lens = append(s.lens, 1)
		if s.masks[slot] != nil {
			s.masks[slot] = append(s.masks[slot], true)
			if keyMask == nil {
				keyMask = make([][]bool, len(slots))
			}
			keyMask[i] = s.masks[slot]
		}
	}
	x := s.m.EmbedTokens(s.c, ids)
	return s.m.Logits(s.c, s.m.Forward(s.c, s.kv, x, Batch{Slots: slots, Lens: s.lens, Pos: s.pos, KeyMask: keyMask}))
}

// CopySlot makes slot dst a copy of slot src (cache, mask and positions).
func (s *Session) CopySlot(dst, src int) {
	s.c.CopyKVSlot(s.kv, dst, src)
	s.seen[dst] = s.seen[src]
	if s.masks[src] == nil {
		s.masks[dst] = nil
	} else {
		s.masks[dst] = append(s.masks[dst][:0], s.masks[src]...)
	}
}

func allTrue(m []bool) bool {
	for _, ok := range m {
		if !ok {
			return false
		}
	}
	return true
}

func count(m []bool) int {
	n := 0
	for _, ok := range m {
		if ok {
			n++
		}
	}
	return n
}
