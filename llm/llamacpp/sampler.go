package llamacpp

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
)

// SamplerParams choose a llama.cpp sampler chain. The chain is, in llama.cpp's usual
// order: logit bias, repeat penalty, then either greedy (Temperature <= 0) or
// top-k -> top-p -> min-p -> temperature -> a seeded random draw. A field at its "off"
// value leaves its sampler out.
type SamplerParams struct {
	Temperature float32 // <= 0: greedy (argmax)
	TopK        int     // keep the k most likely tokens; 0: off
	TopP        float32 // nucleus: keep the smallest set with probability >= p; 0 or 1: off
	MinP        float32 // drop tokens below p x the best token's probability; 0: off
	// RepeatPenalty divides positive (multiplies negative) logits of tokens seen in the
	// last RepeatLastN generated tokens (llama.cpp penalties sampler); 0 or 1: off.
	RepeatPenalty float32
	RepeatLastN   int // 0: 64, llama.cpp's default
	// Seed seeds the random draw. llama.cpp replaces 0xFFFFFFFF (LLAMA_DEFAULT_SEED) by a
	// random seed; every other value gives the same draws on every run.
	Seed uint32
	// LogitBias is added to the logits of its tokens before anything else (-Inf bans).
	LogitBias map[Token]float32
}

// Validate checks the ranges of p.
func (p SamplerParams) Validate() error {
	bad := func(name string, v float32, lo, hi float64) error {
		if math.IsNaN(float64(v)) || float64(v) < lo || float64(v) > hi {
			return fmt.Errorf("llamacpp: sampler: %s %g not in [%g, %g]", name, v, lo, hi)
		}
		return nil
	}
	if err := bad("temperature", p.Temperature, math.Inf(-1), 100); err != nil {
		return err
	}
	if err := bad("top_p", p.TopP, 0, 1); err != nil {
		return err
	}
	if err := bad("min_p", p.MinP, 0, 1); err != nil {
		return err
	}
	if err := bad("repeat_penalty", p.RepeatPenalty, 0, 100); err != nil {
		return err
	}
	if p.TopK < 0 {
		return fmt.Errorf("llamacpp: sampler: top_k %d is negative", p.TopK)
	}
	if p.RepeatLastN < 0 {
		return fmt.Errorf("llamacpp: sampler: repeat_last_n %d is negative", p.RepeatLastN)
	}
	for t, b := range p.LogitBias {
		if math.IsNaN(float64(b)) {
			return fmt.Errorf("llamacpp: sampler: logit bias of token %d is NaN", t)
		}
	}
	return nil
}

// Sampler is a llama.cpp sampler chain with its own state (random generator, penalty
// history) and a reused candidate buffer. One sampler serves one sequence at a time.
type Sampler struct {
	model  *Model
	s      *C.struct_llama_sampler
	cand   *C.llama_token_data // [n_vocab], C memory
	nVocab int
}

// NewSampler builds the chain p describes for m's vocabulary.
func NewSampler(m *Model, p SamplerParams) (*Sampler, error) {
	if m == nil || m.m == nil {
		return nil, fmt.Errorf("llamacpp: sampler: model: %w", ErrClosed)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	bias := make([]C.llama_logit_bias, 0, len(p.LogitBias))
	for t, b := range p.LogitBias {
		if err := m.checkToken(t); err != nil {
			return nil, fmt.Errorf("llamacpp: sampler: logit bias: %w", err)
		}
		bias = append(bias, C.llama_logit_bias{token: C.llama_token(t), bias: C.float(b)})
	}

	cp := C.llama_sampler_chain_default_params()
	cp.no_perf = true
	chain := C.llama_sampler_chain_init(cp)
	add := func(s *C.struct_llama_sampler) { C.llama_sampler_chain_add(chain, s) }
	if len(bias) > 0 {
		add(C.llama_sampler_init_logit_bias(C.int32_t(m.nVocab), C.int32_t(len(bias)), &bias[0]))
	}
	if p.RepeatPenalty > 0 && p.RepeatPenalty != 1 {
		lastN := p.RepeatLastN
		if lastN == 0 {
			lastN = 64
		}
		add(C.llama_sampler_init_penalties(C.int32_t(min(lastN, math.MaxInt32)), C.float(p.RepeatPenalty), 0, 0))
	}
	if p.Temperature <= 0 {
		add(C.llama_sampler_init_greedy())
	} else {
		if p.TopK > 0 {
			add(C.llama_sampler_init_top_k(C.int32_t(min(p.TopK, math.MaxInt32))))
		}
		if p.TopP > 0 && p.TopP < 1 {
			add(C.llama_sampler_init_top_p(C.float(p.TopP), 1))
		}
		if p.MinP > 0 {
			add(C.llama_sampler_init_min_p(C.float(p.MinP), 1))
		}
		add(C.llama_sampler_init_temp(C.float(p.Temperature)))
		add(C.llama_sampler_init_dist(C.uint32_t(p.Seed)))
	}
	cand := (*C.llama_token_data)(C.malloc(C.size_t(m.nVocab) * C.size_t(unsafe.Sizeof(C.llama_token_data{}))))
	if cand == nil {
		C.llama_sampler_free(chain)
		return nil, fmt.Errorf("llamacpp: sampler: cannot allocate %d candidates", m.nVocab)
	}
	return &Sampler{model: m, s: chain, cand: cand, nVocab: m.nVocab}, nil
}

// Sample picks a token from the logits of batch index idx of c's last Decode and adds
// it to the sampler's history.
func (s *Sampler) Sample(c *Context, idx int) (Token, error) {
	if s.s == nil {
		return -1, fmt.Errorf("llamacpp: sample: %w", ErrClosed)
	}
	if c.model.nVocab != s.nVocab {
		return -1, fmt.Errorf("llamacpp: sample: sampler for a %d-token vocabulary used with a %d-token model", s.nVocab, c.model.nVocab)
	}
	if err := c.checkOutput(idx); err != nil {
		return -1, fmt.Errorf("llamacpp: sample: %w", err)
	}
	t := C.synth_sample(s.s, c.c, C.int32_t(idx), s.cand, C.int32_t(s.nVocab))
	switch {
	case t == -1:
		return -1, fmt.Errorf("llamacpp: sample: %w: %d", ErrNoLogits, idx)
	case t < 0:
		return -1, fmt.Errorf("llamacpp: sample: the sampler chain chose no token (are all logits -Inf?)")
	}
	return Token(t), nil
}

// SampleEach samples out[i] with samplers[i] from batch index idx[i] of c's last
// Decode, for every i, concurrently: each slot of a parallel generation has its own
// sampler, and over a large vocabulary sampling costs as much as a small model's
// decode step when done one after the other. The logits are fetched first, in turn
// (llama.cpp's logits accessor synchronises the context and applies the last decode's
// output order), and only the sampler chains, which share nothing, run at once.
// A Sampler appears at most once.
func SampleEach(c *Context, samplers []*Sampler, idx []int, out []Token) error {
	if len(idx) != len(samplers) || len(out) != len(samplers) {
		panic(fmt.Sprintf("llamacpp: SampleEach: %d samplers, %d indices, %d outputs", len(samplers), len(idx), len(out)))
	}
	logits := make([]*C.float, len(samplers))
	for i, s := range samplers {
		if s.s == nil {
			return fmt.Errorf("llamacpp: sample: %w", ErrClosed)
		}
		if c.model.nVocab != s.nVocab {
			return fmt.Errorf("llamacpp: sample: sampler for a %d-token vocabulary used with a %d-token model", s.nVocab, c.model.nVocab)
		}
		if err := c.checkOutput(idx[i]); err != nil {
			return fmt.Errorf("llamacpp: sample: %w", err)
		}
		if logits[i] = C.llama_get_logits_ith(c.c, C.int32_t(idx[i])); logits[i] == nil {
			return fmt.Errorf("llamacpp: sample: %w: %d", ErrNoLogits, idx[i])
		}
	}
	errs := make([]error, len(samplers))
	sample := func(i int) {
		s := samplers[i]
		t := C.synth_sample_logits(s.s, logits[i], s.cand, C.int32_t(s.nVocab))
		if t < 0 {
			errs[i] = fmt.Errorf("llamacpp: sample: the sampler chain chose no token (are all logits -Inf?)")
			return
		}
		out[i] = Token(t)
	}
	workers := min(len(samplers), runtime.GOMAXPROCS(0))
	if workers <= 1 {
		for i := range samplers {
			sample(i)
		}
		return errors.Join(errs...)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(samplers); i = int(next.Add(1)) - 1 {
				sample(i)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Reset clears the sampler's history (penalties); the random generator restarts from
// its seed.
func (s *Sampler) Reset() {
	if s.s != nil {
		C.llama_sampler_reset(s.s)
	}
}

// Close frees the sampler.
func (s *Sampler) Close() {
	if s == nil || s.s == nil {
		return
	}
	C.llama_sampler_free(s.s)
	C.free(unsafe.Pointer(s.cand))
	s.s, s.cand = nil, nil
}
