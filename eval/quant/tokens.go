package quant

import (
	"fmt"
	"math"
)

// LogSoftmax returns log(softmax(logits)) in float64: x - max - log(sum(exp(x - max))).
// A -Inf logit gets -Inf; a NaN logit makes every value NaN.
func LogSoftmax(dst []float64, logits []float32) []float64 {
	dst = append(dst[:0], make([]float64, len(logits))...)
	m := math.Inf(-1)
	for _, v := range logits {
		m = max(m, float64(v))
	}
	var sum float64
	for i, v := range logits {
		dst[i] = float64(v) - m
		sum += math.Exp(dst[i])
	}
	ls := math.Log(sum)
	for i := range dst {
		dst[i] -= ls
	}
	return dst
}

// KL is the Kullback-Leibler divergence KL(P || Q) = sum_v P(v) (log P(v) - log Q(v)) in
// nats, from log-probabilities of the same vocabulary. Tokens with P(v) = 0 add nothing;
// a token P gives mass and Q gives none makes it +Inf.
func KL(logP, logQ []float64) float64 {
	if len(logP) != len(logQ) {
		panic(fmt.Sprintf("quant: KL of %d and %d log-probabilities", len(logP), len(logQ)))
	}
	var kl float64
	for i, lp := range logP {
		if math.IsInf(lp, -1) {
			continue
		}
		kl += math.Exp(lp) * (lp - logQ[i])
	}
	// Rounding can leave a tiny negative sum for identical distributions.
	return max(kl, 0)
}

// Argmax is the index of the largest value, the first one on ties (torch.argmax).
func Argmax[T float32 | float64](x []T) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// NextToken accumulates next-token fidelity over teacher-forced positions: at each one
// the reference's and the level's logits for the same context.
type NextToken struct {
	Positions int `json:"positions"`
	KLMean    Num `json:"kl_mean"` // nats per position
	KLMax     Num `json:"kl_max"`
	// Top1 is the share of positions whose most likely token is the reference's.
	Top1 float64 `json:"top1_agreement"`

	klSum float64
	same  int
	p, q  []float64
}

// Add takes one position's logits of the reference and of the level.
func (n *NextToken) Add(ref, level []float32) {
	n.p = LogSoftmax(n.p, ref)
	n.q = LogSoftmax(n.q, level)
	n.AddLogProbs(n.p, n.q)
}

// AddLogProbs takes one position's log-probabilities (LogSoftmax) of the reference and
// of the level.
func (n *NextToken) AddLogProbs(ref, level []float64) {
	kl := KL(ref, level)
	n.Positions++
	n.klSum += kl
	n.KLMax = Num(max(float64(n.KLMax), kl))
	if Argmax(ref) == Argmax(level) {
		n.same++
	}
	n.KLMean = Num(n.klSum / float64(n.Positions))
	n.Top1 = float64(n.same) / float64(n.Positions)
}
