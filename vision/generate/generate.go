package generate

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"synth/native"
)

// Model is a decoder holding sequences in cache slots, on a device.
type Model interface {
	// Vocab is the number of logits per position.
	Vocab() int
	// Ctx is the Ctx the model runs on; the search runs its ops (log-softmax, the
	// logits processors, argmax, top-k) there too, so only token ids and a few scores
	// cross to the host per step.
	Ctx() *native.Ctx
	// Step appends ids[i] to the sequence in slots[i], all in one forward pass, and
	// returns each slot's next-token logits, [len(slots), Vocab()] on the device, row i
	// for slots[i], in the Ctx's arena.
	Step(slots []int, ids []int32) native.Tensor
	// CopySlot makes slot dst a copy of slot src (beam search reorders beams with it).
	CopySlot(dst, src int)
}

// EarlyStopping is beam search's stopping rule (transformers' early_stopping).
type EarlyStopping uint8

const (
	// EarlyHeuristic (early_stopping=False, the default) stops a row when no live beam
	// can beat its worst finished hypothesis at the current length.
	EarlyHeuristic EarlyStopping = iota
	// EarlyTrue stops a row as soon as it has NumBeams finished hypotheses.
	EarlyTrue
	// EarlyNever stops a row only when no live beam can win at any length up to
	// MaxNewTokens.
	EarlyNever
)

// ParseEarlyStopping reads "false", "true" or "never".
func ParseEarlyStopping(s string) (EarlyStopping, error) {
	switch s {
	case "false", "False", "":
		return EarlyHeuristic, nil
	case "true", "True":
		return EarlyTrue, nil
	case "never":
		return EarlyNever, nil
	}
	return 0, fmt.Errorf("generate: early stopping %q is not false, true or never", s)
}

func (e EarlyStopping) String() string {
	switch e {
	case EarlyTrue:
		return "true"
	case EarlyNever:
		return "never"
	}
	return "false"
}

// Params are generate()'s switches. The zero values of the processor fields mean
// "off"; Defaults gives transformers' defaults.
type Params struct {
	MaxNewTokens int // at least 1
	MinNewTokens int // EOS is forbidden while fewer tokens were generated

	NumBeams      int     // 1: greedy or sampling
	LengthPenalty float64 // beam hypothesis score = sum log-probs / length^LengthPenalty
	EarlyStopping EarlyStopping

	DoSample    bool
	Temperature float64 // sampling: logits / Temperature (1 or 0: off)
	TopK        int     // sampling: keep the TopK largest (ties kept; 0: off)
	TopP        float64 // sampling: nucleus; keep the smallest set with mass >= TopP (1: off)

	RepetitionPenalty float64 // logits of seen tokens: / p when positive, * p when negative (1 or 0: off)
	NoRepeatNgramSize int     // forbid repeating any n-gram of this size (0: off)

	EOS []int32 // end-of-sequence ids; a row stops when it produces one
}

// Defaults are transformers' GenerationConfig defaults (greedy, top_k 50 for sampling,
// length_penalty 1, early_stopping False) with maxNew new tokens.
func Defaults(maxNew int, eos ...int32) Params {
	return Params{MaxNewTokens: maxNew, NumBeams: 1, LengthPenalty: 1, Temperature: 1, TopK: 50, TopP: 1,
		RepetitionPenalty: 1, EOS: eos}
}

// ErrParams marks invalid generation parameters.
var ErrParams = errors.New("generate: invalid parameters")

// Validate checks p against what the strategies support.
func (p Params) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrParams, fmt.Sprintf(format, args...))
	}
	switch {
	case p.MaxNewTokens < 1:
		return bad("max new tokens %d must be at least 1", p.MaxNewTokens)
	case p.MinNewTokens < 0 || p.MinNewTokens > p.MaxNewTokens:
		return bad("min new tokens %d must be within 0..%d (max new tokens)", p.MinNewTokens, p.MaxNewTokens)
	case p.NumBeams < 1:
		return bad("beams %d must be at least 1", p.NumBeams)
	case p.DoSample && p.NumBeams > 1:
		return bad("sampling with %d beams (beam sampling) is not offered: use beams 1 with sampling, or beam search without", p.NumBeams)
	case p.Temperature < 0 || math.IsNaN(p.Temperature) || math.IsInf(p.Temperature, 0):
		return bad("temperature %v must be positive", p.Temperature)
	case p.TopK < 0:
		return bad("top-k %d must be >= 0", p.TopK)
	case !(p.TopP > 0 && p.TopP <= 1) && p.TopP != 0:
		return bad("top-p %v must be in (0, 1]", p.TopP)
	case p.RepetitionPenalty < 0 || math.IsNaN(p.RepetitionPenalty) || math.IsInf(p.RepetitionPenalty, 0):
		return bad("repetition penalty %v must be positive", p.RepetitionPenalty)
	case p.NoRepeatNgramSize < 0:
		return bad("no-repeat n-gram size %d must be >= 0", p.NoRepeatNgramSize)
	case math.IsNaN(p.LengthPenalty) || math.IsInf(p.LengthPenalty, 0):
		return bad("length penalty %v must be finite", p.LengthPenalty)
	}
	return nil
}

// Row is one sequence to continue (NumBeams sequences in beam search).
type Row struct {
	// Slots are the cache slots the row uses, NumBeams of them. The prompt has been run
	// in Slots[0]; beam search copies it into the others.
	Slots []int
	// Context is what the logits processors see before the new tokens (transformers'
	// input_ids): the prompt ids for a plain decoder, empty for BLIP-2, which generates
	// from embeddings.
	Context []int32
	// Seed seeds the row's sampler (each row has its own stream, so a row's text does not
	// depend on which rows share its batch).
	Seed uint64
}

// Result is a row's output.
type Result struct {
	// Tokens are the new tokens, without the EOS that ended them.
	Tokens []int32
	// EOS reports whether the row ended with an EOS id (false: MaxNewTokens reached).
	EOS bool
	// Score is beam search's hypothesis score, sum of log-probabilities / length^
	// LengthPenalty (transformers' sequences_scores); 0 for greedy and sampling.
	Score float64
}

// Run continues every row and returns their results in order. first holds the
// next-token logits after each row's prompt, [len(rows), Vocab] on the model's device
// (row i for rows[i]).
func Run(m Model, p Params, rows []Row, first native.Tensor) ([]Result, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	v := m.Vocab()
	for i, r := range rows {
		if len(r.Slots) != p.NumBeams {
			return nil, fmt.Errorf("%w: row %d has %d slots for %d beams", ErrParams, i, len(r.Slots), p.NumBeams)
		}
	}
	if n, cols := first.Dims2(); n != len(rows) || (n > 0 && cols != v) {
		return nil, fmt.Errorf("%w: first logits %v for %d rows of a vocabulary of %d", ErrParams, first.Shape(), len(rows), v)
	}
	for _, e := range p.EOS {
		if e < 0 || int(e) >= v {
			return nil, fmt.Errorf("%w: EOS id %d outside the vocabulary of %d", ErrParams, e, v)
		}
	}
	if len(rows) == 0 {
		return nil, nil
	}
	if p.NumBeams > 1 {
		return beamSearch(m, p, rows, first), nil
	}
	return search(m, p, rows, first), nil
}

// search is greedy search or sampling: one sequence per row. Greedy picks on the
// device; sampling brings the processed logits of each row to the host for the
// warpers and the draw.
func search(m Model, p Params, rows []Row, first native.Tensor) []Result {
	c := m.Ctx()
	v := m.Vocab()
	res := make([]Result, len(rows))
	ctxs := make([][]int32, len(rows))
	rngs := make([]*rand.Rand, len(rows))
	live := make([]int, 0, len(rows))
	for i, r := range rows {
		ctxs[i] = append([]int32(nil), r.Context...)
		if p.DoSample {
			rngs[i] = rand.New(rand.NewPCG(r.Seed, 0x9e3779b97f4a7c15))
		}
		live = append(live, i)
	}
	var w sampler
	var ed edits
	var host []float32
	slots := make([]int, 0, len(rows))
	ids := make([]int32, 0, len(rows))
	logits := first
	mark := c.Mark()
	for gen := 0; len(live) > 0; gen++ {
		ed.reset()
		for k, i := range live {
			ed.add(p, k*v, v, ctxs[i], gen)
		}
		ed.apply(c, logits, p)
		var toks []int32
		if p.DoSample {
			host = c.ToHostInto(host, logits)
			for k, i := range live {
				toks = append(toks, w.sample(host[k*v:(k+1)*v], p, rngs[i]))
			}
		} else {
			for _, t := range c.Argmax(logits) {
				toks = append(toks, int32(t))
			}
		}
		slots, ids = slots[:0], ids[:0]
		next := live[:0]
		for k, i := range live {
			tok := toks[k]
			if p.isEOS(tok) {
				res[i].EOS = true
				continue
			}
			res[i].Tokens = append(res[i].Tokens, tok)
			ctxs[i] = append(ctxs[i], tok)
			if gen+1 >= p.MaxNewTokens {
				continue
			}
			next = append(next, i)
			slots = append(slots, rows[i].Slots[0])
			ids = append(ids, tok)
		}
		live = next
		if len(live) == 0 {
			break
		}
		c.Release(mark)
		logits = m.Step(slots, ids)
	}
	c.Release(mark)
	return res
}

func (p Params) isEOS(t int32) bool {
	for _, e := range p.EOS {
		if e == t {
			return true
		}
	}
	return false
}
