package generate

import (
	"math"
	"slices"

	"synth/native"
)

// hypothesis is a finished (or, at the end, live) beam.
type hypothesis struct {
	tokens []int32
	score  float64
	eos    bool
}

// hypotheses is transformers' BeamHypotheses: the best n hypotheses of a row.
type hypotheses struct {
	n     int
	lp    float64
	early EarlyStopping
	max   int // MaxNewTokens, for EarlyNever
	beams []hypothesis
	worst float64
}

// add offers a hypothesis of sum log-probability sum and generated length genLen (the
// EOS step counted).
func (h *hypotheses) add(tokens []int32, sum float64, genLen int, eos bool) {
	score := sum / math.Pow(float64(genLen), h.lp)
	if len(h.beams) < h.n || score > h.worst {
		h.beams = append(h.beams, hypothesis{tokens: tokens, score: score, eos: eos})
		if len(h.beams) > h.n {
			// drop the worst (the first of the worst on ties), as upstream's sort on
			// (score, index) does; the new worst is the next one in that order
			order := make([]int, len(h.beams))
			for i := range order {
				order[i] = i
			}
			slices.SortStableFunc(order, func(a, b int) int {
				switch {
				case h.beams[a].score < h.beams[b].score:
					return -1
				case h.beams[a].score > h.beams[b].score:
					return 1
				}
				return 0
			})
			h.worst = h.beams[order[1]].score
			h.beams = slices.Delete(h.beams, order[0], order[0]+1)
		} else {
			h.worst = math.Min(score, h.worst)
		}
	}
}

// done is BeamHypotheses.is_done: best is the best candidate's running sum log-prob
// this step and cur the generated length including this step.
func (h *hypotheses) done(best float64, cur int) bool {
	if len(h.beams) < h.n {
		return false
	}
	switch h.early {
	case EarlyTrue:
		return true
	case EarlyNever:
		if h.lp > 0 {
			return h.worst >= best/math.Pow(float64(h.max), h.lp)
		}
	}
	return h.worst >= best/math.Pow(float64(cur), h.lp)
}

// best is the highest-scoring hypothesis; on ties the one added last, as upstream's
// sorted(...).pop() picks.
func (h *hypotheses) best() hypothesis {
	b := 0
	for i, hy := range h.beams {
		if hy.score >= h.beams[b].score {
			b = i
		}
	}
	return h.beams[b]
}

// beamRow is one row's beam search state.
type beamRow struct {
	slots  []int     // cache slot of each live beam
	scores []float32 // running sum of log-probs of each beam (float32, as upstream)
	tokens [][]int32 // generated tokens of each beam
	hyps   hypotheses
	done   bool
}

type candidate struct {
	score float32
	beam  int
	token int32
}

// beamSearch is transformers' beam search (BeamSearchScorer with one beam group and
// num_return_sequences 1). Rows that are done leave the batch.
//
// Each step the device computes the log-softmax of every live beam's logits, applies
// the logits processors and returns each beam's top `keep` candidates; the host merges
// a row's beams by score plus the beam's running sum. That is exact: within a beam the
// running sum is a constant, so the row's best `keep` candidates overall are among its
// beams' own best `keep`, and ties keep upstream's order (lower beam, then lower token).
func beamSearch(m Model, p Params, rows []Row, first native.Tensor) []Result {
	c := m.Ctx()
	v, nb := m.Vocab(), p.NumBeams
	br := make([]beamRow, len(rows))
	for i, r := range rows {
		b := &br[i]
		b.slots = append([]int(nil), r.Slots...)
		b.scores = make([]float32, nb)
		b.tokens = make([][]int32, nb)
		b.hyps = hypotheses{n: nb, lp: p.LengthPenalty, early: p.EarlyStopping, max: p.MaxNewTokens, worst: 1e9}
		for j := 1; j < nb; j++ {
			// Upstream repeats the prompt per beam; the first step expands beam 0 only
			// (the others start at -1e9), so copying beam 0's cache is the same.
			m.CopySlot(r.Slots[j], r.Slots[0])
			b.scores[j] = -1e9
		}
	}
	keep := max(2, 1+len(p.EOS)) * nb
	cands := make([]candidate, 0, keep)
	var ed edits
	var slots []int
	var ids []int32
	var stepRows []int
	ctx := make([]int32, 0, p.MaxNewTokens+16)
	for i := range rows {
		stepRows = append(stepRows, i)
	}
	logits := first // the first step: one row per prompt, its beams all start from it
	perRow := 1
	mark := c.Mark()
	for gen := 0; ; gen++ {
		cur := gen + 1 // generated length including this step
		// log-probabilities, processed, and each beam's best candidates, on the device
		lp := c.LogSoftmax(logits)
		ed.reset()
		for k, i := range stepRows {
			for j := 0; j < perRow; j++ {
				ctx = append(append(ctx[:0], rows[i].Context...), br[i].tokens[j]...)
				ed.add(p, (k*perRow+j)*v, v, ctx, gen)
			}
		}
		ed.apply(c, lp, p)
		topIdx, topVal := c.TopK(lp, keep)
		next := stepRows[:0]
		slots, ids = slots[:0], ids[:0]
		for k, i := range stepRows {
			b := &br[i]
			cands = cands[:0]
			for j := range nb {
				r := k*perRow + min(j, perRow-1)
				for e, t := range topIdx[r] {
					cands = pushTop(cands, keep, candidate{score: topVal[r][e] + b.scores[j], beam: j, token: t})
				}
			}
			nextTok := make([][]int32, 0, nb)
			nextScore := make([]float32, 0, nb)
			nextSrc := make([]int, 0, nb)
			for rank, cd := range cands {
				if p.isEOS(cd.token) {
					if rank >= nb {
						continue
					}
					b.hyps.add(b.tokens[cd.beam], float64(cd.score), cur, true)
				} else {
					nextTok = append(nextTok, append(slices.Clip(b.tokens[cd.beam]), cd.token))
					nextScore = append(nextScore, cd.score)
					nextSrc = append(nextSrc, cd.beam)
				}
				if len(nextTok) == nb {
					break
				}
			}
			b.done = b.hyps.done(float64(cands[0].score), cur)
			b.tokens, b.scores = nextTok, nextScore
			if b.done || cur >= p.MaxNewTokens {
				continue
			}
			b.reorder(m, nextSrc)
			for j := range nb {
				slots = append(slots, b.slots[j])
				ids = append(ids, b.tokens[j][len(b.tokens[j])-1])
			}
			next = append(next, i)
		}
		stepRows = next
		if len(stepRows) == 0 {
			break
		}
		c.Release(mark)
		logits, perRow = m.Step(slots, ids), nb
	}
	c.Release(mark)
	res := make([]Result, len(rows))
	for i := range br {
		b := &br[i]
		if !b.done {
			for j := range nb {
				b.hyps.add(b.tokens[j], float64(b.scores[j]), len(b.tokens[j]), false)
			}
		}
		h := b.hyps.best()
		res[i] = Result{Tokens: h.tokens, EOS: h.eos, Score: h.score}
	}
	return res
}

// pushTop inserts c into the list of the best n candidates, sorted by score
// (descending; on ties the earlier candidate first, i.e. lower beam*vocab+token, as
// torch.topk returns in practice). Candidates arrive beam by beam, each beam's in
// descending order with ties by lower token, so "earlier" is arrival order.
func pushTop(list []candidate, n int, c candidate) []candidate {
	if len(list) == n && !(c.score > list[n-1].score) {
		return list
	}
	i := len(list)
	if i < n {
		list = append(list, c)
	} else {
		i = n - 1
	}
	for i > 0 && c.score > list[i-1].score {
		list[i] = list[i-1]
		i--
	}
	list[i] = c
	return list
}

// reorder gives each next beam j the cache of its source beam src[j]: the first beam
// that takes a source keeps that slot, later ones get a copy in a slot no beam took.
func (b *beamRow) reorder(m Model, src []int) {
	nb := len(b.slots)
	taken := make([]bool, nb) // by old beam index
	next := make([]int, nb)
	var dup []int // next beams still needing a slot
	for j, s := range src {
		if !taken[s] {
			taken[s] = true
			next[j] = b.slots[s]
		} else {
			dup = append(dup, j)
		}
	}
	free := make([]int, 0, len(dup))
	for s := range nb {
		if !taken[s] {
			free = append(free, b.slots[s])
		}
	}
	for k, j := range dup {
		m.CopySlot(free[k], b.slots[src[j]])
		next[j] = free[k]
	}
	b.slots = next
}
