package llm

import (
	"errors"
	"fmt"

	"synth/llm/llamacpp"
)

// Scorer teacher-forces given continuations through a model instead of generating them:
// after a shared prefix (decoded once) and an item's prompt suffix, it decodes the
// continuation's tokens as if the model had chosen them and hands back, for each one,
// the logits that predict it. Two models' logits on the same tokens show how far their
// next-token distributions drift apart without one divergence changing every later
// context (quantization benchmarks).
//
// The prefix lives in sequence 0 of a one-sequence context; each Score drops what the
// previous one appended after it.
type Scorer struct {
	ctx    *llamacpp.Context
	batch  *llamacpp.Batch
	prefix int
}

// NewScorer makes a context of ctxPerSeq positions for m and decodes prefix into it.
func NewScorer(m *llamacpp.Model, prefix []llamacpp.Token, ctxPerSeq, threads int) (*Scorer, error) {
	if len(prefix) == 0 || len(prefix) >= ctxPerSeq {
		return nil, fmt.Errorf("llm: scorer: prefix of %d tokens for a context of %d: %w", len(prefix), ctxPerSeq, ErrPromptTooLong)
	}
	ctx, err := llamacpp.NewContext(m, llamacpp.ContextParams{NCtx: ctxPerSeq, NBatch: 512, NSeqMax: 1, Threads: threads})
	if err != nil {
		return nil, fmt.Errorf("llm: scorer: %w", err)
	}
	s := &Scorer{ctx: ctx, batch: llamacpp.NewBatch(ctx.NBatch()), prefix: len(prefix)}
	if err := s.decode(prefix, 0, -1, nil); err != nil {
		s.Close()
		return nil, fmt.Errorf("llm: scorer: decode prefix: %w", err)
	}
	return s, nil
}

// Close frees the context.
func (s *Scorer) Close() {
	s.batch.Close()
	s.ctx.Close()
}

// Score decodes suffix and then cont after the prefix and calls fn(j, logits) for j = 0
// .. len(cont)-1 in order, logits [n_vocab] being the distribution that predicts
// cont[j] (valid during the call only). suffix must not be empty: its last position
// predicts cont[0].
func (s *Scorer) Score(suffix, cont []llamacpp.Token, fn func(j int, logits []float32) error) error {
	if len(suffix) == 0 {
		return errors.New("llm: scorer: empty suffix: nothing predicts the first token")
	}
	if n := s.prefix + len(suffix) + len(cont); n > s.ctx.NCtxSeq() {
		return fmt.Errorf("llm: scorer: %d positions, the context holds %d: %w", n, s.ctx.NCtxSeq(), ErrPromptTooLong)
	}
	if err := s.ctx.SeqRemove(0, s.prefix, -1); err != nil {
		return fmt.Errorf("llm: scorer: %w", err)
	}
	toks := append(suffix[:len(suffix):len(suffix)], cont[:max(len(cont)-1, 0)]...)
	if err := s.decode(toks, s.prefix, len(suffix)-1, fn); err != nil {
		return fmt.Errorf("llm: scorer: %w", err)
	}
	return nil
}

// decode appends toks at positions from pos on, in chunks of the batch size, and passes
// the logits of every token from index first on to fn (as the prediction of token
// i - first of the continuation); first < 0 asks for none.
func (s *Scorer) decode(toks []llamacpp.Token, pos, first int, fn func(int, []float32) error) error {
	b := s.batch
	for start := 0; start < len(toks); start += b.Cap() {
		b.Clear()
		end := min(start+b.Cap(), len(toks))
		for i := start; i < end; i++ {
			b.Add(toks[i], pos+i, 0, first >= 0 && i >= first)
		}
		if err := s.ctx.Decode(b); err != nil {
			return err
		}
		if first < 0 {
			continue
		}
		for i := max(start, first); i < end; i++ {
			lg, err := s.ctx.Logits(i - start)
			if err != nil {
				return err
			}
			if err := fn(i-first, lg); err != nil {
				return err
			}
		}
	}
	return nil
}
