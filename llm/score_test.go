package llm

import (
	"slices"
	"testing"

	"synth/llm/llamacpp"
)

// A greedy generation teacher-forced through the same model gives back its own tokens
// as the most likely ones, position by position; a second Score of the same tokens (the
// previous one dropped) gives the same logits.
func TestScorerMatchesGreedyGeneration(t *testing.T) {
	m := tinyModel(t)
	p, err := NewPrompter(m, PromptConfig{Examples: DefaultExamples("en")})
	if err != nil {
		t.Fatal(err)
	}
	var reqs []Request
	for i, kw := range [][]string{{"red", "dress"}, {"navy", "wool", "coat", "double breasted"}} {
		suffix, err := p.Suffix(Item{Keywords: kw})
		if err != nil {
			t.Fatal(err)
		}
		reqs = append(reqs, Request{ID: string(rune('a' + i)), Suffix: suffix})
	}
	g, err := NewGenerator(m, p.Prefix(), Options{Parallel: 1, MaxTokens: 24, CtxPerSeq: 1024, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	res := runAll(t, g, reqs)
	g.Close()

	s, err := NewScorer(m, p.Prefix(), 1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, req := range reqs {
		gen := res[req.ID].Tokens
		if len(gen) == 0 {
			t.Fatalf("%s: greedy generation gave no tokens", req.ID)
		}
		var first [][]float32
		for pass := 0; pass < 2; pass++ {
			n := 0
			err := s.Score(req.Suffix, gen, func(j int, logits []float32) error {
				if j != n {
					t.Fatalf("%s: logits for position %d, want %d", req.ID, j, n)
				}
				n++
				if len(logits) != m.NVocab() {
					t.Fatalf("%s: %d logits, vocabulary %d", req.ID, len(logits), m.NVocab())
				}
				best := llamacpp.Token(0)
				for i, v := range logits {
					if v > logits[best] {
						best = llamacpp.Token(i)
					}
				}
				if best != gen[j] {
					t.Errorf("%s position %d: teacher-forced argmax %d, greedy chose %d", req.ID, j, best, gen[j])
				}
				if pass == 0 {
					first = append(first, slices.Clone(logits))
				} else if !slices.Equal(first[j], logits) {
					t.Errorf("%s position %d: a second Score gives other logits", req.ID, j)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if n != len(gen) {
				t.Errorf("%s: %d positions scored for %d tokens", req.ID, n, len(gen))
			}
		}
	}
	if err := s.Score(nil, []llamacpp.Token{1}, func(int, []float32) error { return nil }); err == nil {
		t.Error("empty suffix: no error")
	}
}
