package llamacpp

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The calls below would abort the process, or read out of bounds, if they reached
// llama.cpp unchecked; each must come back as an error.
func TestBadInputBecomesErrors(t *testing.T) {
	fm := fixtureModels(t)[0]
	m := fm.m
	c := newFixtureContext(t, fm, true)
	b := NewBatch(c.NBatch() + 1)
	defer b.Close()

	if _, err := m.TokenPiece(Token(m.NVocab()), false); !errors.Is(err, ErrToken) {
		t.Errorf("TokenPiece(n_vocab): %v", err)
	}
	if _, err := m.Detokenize([]Token{1, -3}, true, false); !errors.Is(err, ErrToken) {
		t.Errorf("Detokenize(-3): %v", err)
	}
	if m.IsEOG(-1) {
		t.Error("IsEOG(-1) true")
	}

	if err := c.Decode(b); !errors.Is(err, ErrBatch) {
		t.Errorf("empty batch: %v", err)
	}
	b.Add(Token(m.NVocab()+5), 0, 0, true)
	if err := c.Decode(b); !errors.Is(err, ErrToken) {
		t.Errorf("token out of range: %v", err)
	}
	b.Clear()
	b.Add(1, 0, c.NSeqMax(), true)
	if err := c.Decode(b); !errors.Is(err, ErrSeq) {
		t.Errorf("seq out of range: %v", err)
	}
	b.Clear()
	for i := 0; i <= c.NBatch(); i++ {
		b.Add(1, i, 0, false)
	}
	if err := c.Decode(b); !errors.Is(err, ErrBatch) {
		t.Errorf("batch larger than n_batch: %v", err)
	}
	b.Clear()
	b.Add(1, c.NCtxSeq(), 0, true)
	if err := c.Decode(b); !errors.Is(err, ErrKVFull) {
		t.Errorf("position past the context: %v", err)
	}

	// A position that does not continue the sequence is refused by llama.cpp itself.
	b.Clear()
	b.Add(1, 0, 0, false)
	b.Add(2, 1, 0, true)
	if err := c.Decode(b); err != nil {
		t.Fatal(err)
	}
	b.Clear()
	b.Add(3, 7, 0, true)
	err := c.Decode(b)
	if !errors.Is(err, ErrBatch) || !strings.Contains(err.Error(), "decode") {
		t.Errorf("gap in positions: %v", err)
	}

	s, err := NewSampler(m, SamplerParams{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b.Clear()
	b.Add(3, 2, 0, false)
	b.Add(4, 3, 0, true)
	if err := c.Decode(b); err != nil {
		t.Fatal(err)
	}
	for _, idx := range []int{0, 2, -1} {
		if _, err := s.Sample(c, idx); !errors.Is(err, ErrNoLogits) {
			t.Errorf("Sample(%d) without logits: %v", idx, err)
		}
		if _, err := c.Logits(idx); !errors.Is(err, ErrNoLogits) {
			t.Errorf("Logits(%d) without logits: %v", idx, err)
		}
	}
	if _, err := s.Sample(c, 1); err != nil {
		t.Errorf("Sample(1): %v", err)
	}

	for _, seq := range []int{-2, c.NSeqMax()} {
		if err := c.SeqRemove(seq, 0, -1); !errors.Is(err, ErrSeq) {
			t.Errorf("SeqRemove(%d): %v", seq, err)
		}
		if err := c.SeqCopy(0, seq, -1, -1); !errors.Is(err, ErrSeq) {
			t.Errorf("SeqCopy(0, %d): %v", seq, err)
		}
		if _, err := c.SeqPosMax(seq); !errors.Is(err, ErrSeq) {
			t.Errorf("SeqPosMax(%d): %v", seq, err)
		}
	}

	split := newFixtureContext(t, fm, false)
	if err := split.SeqCopy(0, 1, 2, -1); err == nil {
		t.Error("partial copy across KV streams accepted")
	}

	for _, p := range []SamplerParams{
		{Temperature: float32(math.NaN())},
		{Temperature: 1, TopP: 1.5},
		{Temperature: 1, MinP: -0.1},
		{TopK: -1},
		{RepeatPenalty: -1},
	} {
		if _, err := NewSampler(m, p); err == nil {
			t.Errorf("NewSampler(%+v) accepted", p)
		}
	}
	if _, err := NewSampler(m, SamplerParams{LogitBias: map[Token]float32{Token(m.NVocab()): 1}}); !errors.Is(err, ErrToken) {
		t.Errorf("logit bias on a token out of range: %v", err)
	}
	if _, err := NewContext(m, ContextParams{NSeqMax: 257}); !errors.Is(err, ErrContext) {
		t.Errorf("n_seq_max 257: %v", err)
	}

	if _, err := m.ApplyChatTemplate("{{ not a known format }}", []ChatMessage{{"user", "hi"}}, true); !errors.Is(err, ErrTemplate) {
		t.Errorf("unknown template: %v", err)
	}
	if _, err := m.ApplyChatTemplate("", []ChatMessage{{"user", "a\x00b"}}, true); err == nil {
		t.Error("NUL in a message accepted")
	}
}

func TestLoadModelErrorsSayWhy(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.gguf")
	if err := os.WriteFile(garbage, []byte("this is not a GGUF file at all, just text"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The error carries what llama.cpp logged (gguf: invalid magic characters ...).
	_, err := LoadModel(garbage, ModelParams{})
	if !errors.Is(err, ErrLoad) || !strings.Contains(err.Error(), garbage) || !strings.Contains(err.Error(), "magic") {
		t.Errorf("garbage file: %v", err)
	}
	if _, err := LoadModel(filepath.Join(dir, "absent.gguf"), ModelParams{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("absent file: %v", err)
	}
	if _, err := LoadModel(dir, ModelParams{}); !errors.Is(err, ErrLoad) {
		t.Errorf("folder: %v", err)
	}
}

func TestVocabOnlyModel(t *testing.T) {
	fm := fixtureModels(t)[0]
	v, err := LoadModel(fm.m.Path(), ModelParams{VocabOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	a, _ := fm.m.Tokenize("blue jeans, cotton", true, false)
	b, _ := v.Tokenize("blue jeans, cotton", true, false)
	if !slices.Equal(a, b) {
		t.Errorf("vocab-only tokenization %v, full model %v", b, a)
	}
	if _, err := NewContext(v, ContextParams{}); !errors.Is(err, ErrContext) {
		t.Errorf("context from a vocab-only model: %v", err)
	}
}

// Forcing <|eot_id|> with a logit bias checks that sampling honours the bias and that
// the token is recognised as the end of generation (random weights never choose it).
func TestLogitBiasForcesEndOfTurn(t *testing.T) {
	fm := fixtureModels(t)[0]
	m := fm.m
	c := newFixtureContext(t, fm, true)
	for _, temp := range []float32{0, 0.8} {
		s, err := NewSampler(m, SamplerParams{Temperature: temp, TopK: 40, TopP: 0.9, Seed: 1, LogitBias: map[Token]float32{m.EOT(): 1000}})
		if err != nil {
			t.Fatal(err)
		}
		c.ClearMemory()
		b := NewBatch(8)
		b.Add(m.BOS(), 0, 0, true)
		if err := c.Decode(b); err != nil {
			t.Fatal(err)
		}
		tok, err := s.Sample(c, 0)
		if err != nil {
			t.Fatal(err)
		}
		if tok != m.EOT() || !m.IsEOG(tok) {
			t.Errorf("temperature %g: sampled %d, want <|eot_id|> %d", temp, tok, m.EOT())
		}
		s.Close()
		b.Close()
	}
}

// Same seed, same draws; another seed, other draws (over 24 tokens of a random-weight
// model at temperature 1 a collision is practically impossible).
func TestSeededSamplingIsReproducible(t *testing.T) {
	fm := fixtureModels(t)[0]
	m := fm.m
	c := newFixtureContext(t, fm, true)
	prompt, _ := m.Tokenize("Keywords: navy, wool, coat", true, false)
	run := func(seed uint32) []Token {
		s, err := NewSampler(m, SamplerParams{Temperature: 1, TopK: 50, TopP: 0.95, MinP: 0.01, RepeatPenalty: 1.1, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		c.ClearMemory()
		b := NewBatch(len(prompt))
		defer b.Close()
		for i, id := range prompt {
			b.Add(id, i, 0, i == len(prompt)-1)
		}
		var out []Token
		for step := 0; step < 24; step++ {
			if err := c.Decode(b); err != nil {
				t.Fatal(err)
			}
			tok, err := s.Sample(c, b.Len()-1)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, tok)
			b.Clear()
			b.Add(tok, len(prompt)+step, 0, true)
		}
		return out
	}
	a, again, other := run(7), run(7), run(8)
	if !slices.Equal(a, again) {
		t.Errorf("seed 7 gave %v then %v", a, again)
	}
	if slices.Equal(a, other) {
		t.Errorf("seeds 7 and 8 gave the same %v", a)
	}
}

// SampleEach must draw what Sample draws one sampler at a time, step after step.
func TestSampleEachMatchesSample(t *testing.T) {
	fm := fixtureModels(t)[0]
	m := fm.m
	const seqs, steps = 3, 12
	run := func(together bool) [][]Token {
		c := newFixtureContext(t, fm, true)
		b := NewBatch(64)
		defer b.Close()
		samplers := make([]*Sampler, seqs)
		for s := range samplers {
			var err error
			samplers[s], err = NewSampler(m, SamplerParams{Temperature: 1, TopK: 40, TopP: 0.95, RepeatPenalty: 1.1, Seed: uint32(s + 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer samplers[s].Close()
		}
		prompt, _ := m.Tokenize("Keywords: red, linen", true, false)
		idx := make([]int, seqs)
		for s := range seqs {
			for i, tok := range prompt {
				idx[s] = b.Add(tok, i, s, i == len(prompt)-1)
			}
		}
		out := make([][]Token, seqs)
		toks := make([]Token, seqs)
		for step := 0; step < steps; step++ {
			if err := c.Decode(b); err != nil {
				t.Fatal(err)
			}
			if together {
				if err := SampleEach(c, samplers, idx, toks); err != nil {
					t.Fatal(err)
				}
			} else {
				for s := range seqs {
					var err error
					if toks[s], err = samplers[s].Sample(c, idx[s]); err != nil {
						t.Fatal(err)
					}
				}
			}
			b.Clear()
			for s := range seqs {
				out[s] = append(out[s], toks[s])
				idx[s] = b.Add(toks[s], len(prompt)+step, s, true)
			}
		}
		return out
	}
	one, each := run(false), run(true)
	for s := range one {
		if !slices.Equal(one[s], each[s]) {
			t.Errorf("sequence %d: Sample %v, SampleEach %v", s, one[s], each[s])
		}
	}
	c := newFixtureContext(t, fm, true)
	b := NewBatch(4)
	defer b.Close()
	b.Add(1, 0, 0, false)
	b.Add(2, 1, 0, true)
	if err := c.Decode(b); err != nil {
		t.Fatal(err)
	}
	s, _ := NewSampler(m, SamplerParams{})
	defer s.Close()
	if err := SampleEach(c, []*Sampler{s}, []int{0}, make([]Token, 1)); !errors.Is(err, ErrNoLogits) {
		t.Errorf("SampleEach at an index without logits: %v", err)
	}
}
