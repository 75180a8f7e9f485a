package generate

import (
	"math"
	"math/rand/v2"
	"slices"

	"synth/native"
)

var negInf = float32(math.Inf(-1))

// edits are the logits processors of one step, in transformers' order (repetition
// penalty, no-repeat n-gram, min new tokens), as lists of flat indices into the step's
// logits [n, Vocab]: the penalty's, then the bans (set to -inf). They are built on the
// host from the token histories and applied on the device.
type edits struct {
	penalize, ban []int32
	seen          map[int32]bool
}

func (e *edits) reset() { e.penalize, e.ban = e.penalize[:0], e.ban[:0] }

// add collects the edits of the row whose v logits start at flat index base. ctx is
// what the processors see (transformers' input_ids: the row's context and its tokens so
// far) and gen the number of tokens generated before this step.
func (e *edits) add(p Params, base, v int, ctx []int32, gen int) {
	if p.RepetitionPenalty != 0 && p.RepetitionPenalty != 1 {
		// every id in ctx, once however often it occurs
		if e.seen == nil {
			e.seen = map[int32]bool{}
		}
		clear(e.seen)
		for _, t := range ctx {
			if !e.seen[t] && t >= 0 && int(t) < v {
				e.seen[t] = true
				e.penalize = append(e.penalize, int32(base)+t)
			}
		}
	}
	if p.NoRepeatNgramSize > 0 {
		for _, t := range bannedNgramTokens(ctx, p.NoRepeatNgramSize) {
			e.ban = append(e.ban, int32(base)+t)
		}
	}
	if gen < p.MinNewTokens {
		for _, t := range p.EOS {
			e.ban = append(e.ban, int32(base)+t)
		}
	}
}

// apply edits logits in place on the device.
func (e *edits) apply(c *native.Ctx, logits native.Tensor, p Params) {
	c.PenalizeAt(logits, e.penalize, float32(p.RepetitionPenalty))
	c.FillAt(logits, e.ban, negInf)
}

// bannedNgramTokens is NoRepeatNGramLogitsProcessor's ban list: the tokens that would
// complete an n-gram of ctx that occurred before, given ctx's last n-1 tokens.
func bannedNgramTokens(ctx []int32, n int) []int32 {
	cur := len(ctx)
	if cur+1 < n {
		return nil
	}
	prefix := ctx[cur-(n-1):]
	var banned []int32
	for i := 0; i+n <= cur; i++ {
		if slices.Equal(ctx[i:i+n-1], prefix) {
			banned = append(banned, ctx[i+n-1])
		}
	}
	return banned
}

// sampler holds the scratch of sampling steps.
type sampler struct {
	idx   []int
	probs []float64
}

// sample applies the warpers in transformers' order (temperature, top-k, top-p; each
// only when set) and draws a token from softmax(scores) with rng.
func (w *sampler) sample(scores []float32, p Params, rng *rand.Rand) int32 {
	if p.Temperature != 0 && p.Temperature != 1 {
		t := float32(p.Temperature)
		for i := range scores {
			scores[i] /= t
		}
	}
	// Only finite scores can be drawn: -inf entries (filtered or banned) carry no mass.
	w.idx = w.idx[:0]
	for i, s := range scores {
		if s > negInf {
			w.idx = append(w.idx, i)
		}
	}
	if len(w.idx) == 0 {
		return argmax(scores) // every token forbidden: transformers would fail; stay defined
	}
	if k := p.TopK; k > 0 && k < len(w.idx) {
		// TopKLogitsWarper keeps every score >= the k-th largest (ties kept).
		kth := kthLargest(scores, w.idx, k)
		keep := w.idx[:0]
		for _, i := range w.idx {
			if scores[i] >= kth {
				keep = append(keep, i)
			}
		}
		w.idx = keep
	}
	// Sort ascending, as TopPLogitsWarper does (ties: lower index first).
	slices.SortStableFunc(w.idx, func(a, b int) int {
		switch {
		case scores[a] < scores[b]:
			return -1
		case scores[a] > scores[b]:
			return 1
		}
		return 0
	})
	w.probs = softmax64(w.probs[:0], scores, w.idx)
	if p.TopP > 0 && p.TopP < 1 {
		// Remove the low tail whose cumulative mass is <= 1 - top_p; keep at least one.
		cut, cum := 0, 0.0
		for j := 0; j < len(w.idx)-1; j++ {
			cum += w.probs[j]
			if cum > 1-p.TopP {
				break
			}
			cut = j + 1
		}
		w.idx = w.idx[cut:]
		w.probs = softmax64(w.probs[:0], scores, w.idx)
	}
	u := rng.Float64()
	cum := 0.0
	for j, pr := range w.probs {
		cum += pr
		if u < cum {
			return int32(w.idx[j])
		}
	}
	return int32(w.idx[len(w.idx)-1])
}

// kthLargest is the k-th largest of scores over idx (1-based k).
func kthLargest(scores []float32, idx []int, k int) float32 {
	vals := make([]float32, len(idx))
	for j, i := range idx {
		vals[j] = scores[i]
	}
	slices.Sort(vals)
	return vals[len(vals)-k]
}

// softmax64 appends softmax(scores[idx]) in float64 to dst.
func softmax64(dst []float64, scores []float32, idx []int) []float64 {
	mx := math.Inf(-1)
	for _, i := range idx {
		mx = math.Max(mx, float64(scores[i]))
	}
	sum := 0.0
	for _, i := range idx {
		e := math.Exp(float64(scores[i]) - mx)
		dst = append(dst, e)
		sum += e
	}
	for j := range dst {
		dst[j] /= sum
	}
	return dst
}

// argmax is the first index of the largest value (torch.argmax; NaN counts as largest).
func argmax(x []float32) int32 {
	best := 0
	for i, s := range x {
		if s > x[best] || (s != s && x[best] == x[best]) {
			best = i
		}
	}
	return int32(best)
}
