package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"synth/internal/fixtures"
	"synth/llm/llamacpp"
)

// greedyFixture is the part of <model>.expected.json (fixtures/llm) these tests replay:
// prompts and llama.cpp's greedy continuations of them.
type greedyFixture struct {
	name   string
	model  *llamacpp.Model
	greedy []struct {
		Messages  []llamacpp.ChatMessage `json:"messages"`
		PromptIDs []llamacpp.Token       `json:"prompt_ids"`
		Result    struct {
			OutputIDs []llamacpp.Token `json:"output_ids"`
		} `json:"result"`
	}
}

func loadGreedyFixtures(t *testing.T) []greedyFixture {
	t.Helper()
	var out []greedyFixture
	for _, ej := range fixtures.Files(t, "llm", "*.expected.json") {
		gguf := strings.TrimSuffix(ej, ".expected.json") + ".gguf"
		if _, err := os.Stat(gguf); err != nil {
			continue
		}
		data, err := os.ReadFile(ej)
		if err != nil {
			t.Fatal(err)
		}
		fx := greedyFixture{name: strings.TrimSuffix(gguf[strings.LastIndexByte(gguf, '/')+1:], ".gguf")}
		var exp struct {
			Greedy json.RawMessage `json:"greedy"`
		}
		if err := json.Unmarshal(data, &exp); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(exp.Greedy, &fx.greedy); err != nil {
			t.Fatal(err)
		}
		if fx.model, err = llamacpp.LoadModel(gguf, llamacpp.ModelParams{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(fx.model.Close)
		out = append(out, fx)
	}
	if len(out) == 0 {
		t.Skip("no fixtures/llm/<name>.gguf with <name>.expected.json")
	}
	return out
}

// commonPrefix splits the fixture prompts into their longest common prefix and suffixes.
func (fx greedyFixture) split() (prefix []llamacpp.Token, suffixes [][]llamacpp.Token) {
	n := len(fx.greedy[0].PromptIDs)
	for _, g := range fx.greedy[1:] {
		k := 0
		for k < n && k < len(g.PromptIDs) && g.PromptIDs[k] == fx.greedy[0].PromptIDs[k] {
			k++
		}
		n = k
	}
	for _, g := range fx.greedy {
		suffixes = append(suffixes, g.PromptIDs[n:])
	}
	return fx.greedy[0].PromptIDs[:n], suffixes
}

func runAll(t *testing.T, g *Generator, reqs []Request) map[string]Result {
	t.Helper()
	out := map[string]Result{}
	i := 0
	err := g.Run(context.Background(), func() (Request, bool) {
		if i == len(reqs) {
			return Request{}, false
		}
		i++
		return reqs[i-1], true
	}, func(r Result) error {
		if _, dup := out[r.Req.ID]; dup {
			t.Errorf("%s emitted twice", r.Req.ID)
		}
		out[r.Req.ID] = r
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(reqs) {
		t.Fatalf("%d results for %d requests", len(out), len(reqs))
	}
	return out
}

// The generation loop must give exactly llama.cpp's greedy tokens whatever the slot
// count, batch size and finishing order: slots reused after a product ends, a prompt
// prefilled beside other slots' generation, prompts split over several steps.
func TestGeneratorMatchesLlamaCppGreedy(t *testing.T) {
	for _, fx := range loadGreedyFixtures(t) {
		prefix, suffixes := fx.split()
		cases := []struct {
			parallel, nBatch int
			maxTokens        []int // per request; 0 = all 20
		}{
			{parallel: 1},
			{parallel: 3},
			{parallel: 2},                            // third request waits for a slot
			{parallel: 2, maxTokens: []int{5, 0, 0}}, // third starts beside the second's generation
			{parallel: 3, nBatch: 4},                 // prompts prefilled over several steps
			{parallel: 3, maxTokens: []int{3, 11, 0}},
		}
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s/parallel=%d/batch=%d/max=%v", fx.name, tc.parallel, tc.nBatch, tc.maxTokens), func(t *testing.T) {
				g, err := NewGenerator(fx.model, prefix, Options{
					Parallel: tc.parallel, MaxTokens: 20, CtxPerSeq: 256, NBatch: tc.nBatch, Threads: 1,
				})
				if err != nil {
					t.Fatal(err)
				}
				defer g.Close()
				var reqs []Request
				for i, s := range suffixes {
					r := Request{ID: fmt.Sprint("p", i), Suffix: s}
					if tc.maxTokens != nil {
						r.MaxTokens = tc.maxTokens[i]
					}
					reqs = append(reqs, r)
				}
				res := runAll(t, g, reqs)
				for i, r := range reqs {
					got := res[r.ID]
					want := fx.greedy[i].Result.OutputIDs
					if r.MaxTokens > 0 {
						want = want[:r.MaxTokens]
					}
					if got.Err != nil || !slices.Equal(got.Tokens, want) {
						t.Errorf("%s: %v tokens %v\nwant %v", r.ID, got.Err, got.Tokens, want)
					}
					if got.Finish != FinishLength || got.PromptTokens != len(fx.greedy[i].PromptIDs) {
						t.Errorf("%s: finish %q, prompt tokens %d", r.ID, got.Finish, got.PromptTokens)
					}
				}
				st := g.Stats()
				if st.PrefixTokens != len(prefix) || st.PrefixAvoided != len(prefix)*(len(reqs)-1) || st.Products != len(reqs) ||
					st.DecodeTime <= 0 || st.SampleTime <= 0 || st.GenTokens != len(reqs)*20-sumMax(tc.maxTokens) {
					t.Errorf("stats %+v", st)
				}
			})
		}
	}
}

func TestGeneratorPerItemLimits(t *testing.T) {
	fx := loadGreedyFixtures(t)[0]
	prefix, suffixes := fx.split()
	long := slices.Repeat(suffixes[0], 10)
	ctxPerSeq := len(prefix) + len(suffixes[0]) + 8
	g, err := NewGenerator(fx.model, prefix, Options{Parallel: 2, MaxTokens: 20, CtxPerSeq: ctxPerSeq, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	res := runAll(t, g, []Request{
		{ID: "long", Suffix: long},
		{ID: "tight", Suffix: suffixes[0]},
		{ID: "ok", Suffix: suffixes[0], MaxTokens: 4},
		{ID: "empty"},
	})
	if err := res["long"].Err; !errors.Is(err, ErrPromptTooLong) || !strings.Contains(err.Error(), fmt.Sprint(ctxPerSeq)) {
		t.Errorf("long prompt: %v", err)
	}
	if r := res["tight"]; r.Err != nil || r.Finish != FinishContext || len(r.Tokens) != 8 {
		t.Errorf("tight: err %v, finish %q, %d tokens; want context after 8", r.Err, r.Finish, len(r.Tokens))
	}
	if r := res["ok"]; r.Err != nil || r.Finish != FinishLength || len(r.Tokens) != 4 {
		t.Errorf("ok: err %v, finish %q, %d tokens", r.Err, r.Finish, len(r.Tokens))
	}
	if res["empty"].Err == nil {
		t.Error("empty prompt accepted")
	}
	if _, err := NewGenerator(fx.model, prefix, Options{Parallel: 1, MaxTokens: 4, CtxPerSeq: len(prefix)}); !errors.Is(err, ErrPromptTooLong) {
		t.Errorf("prefix longer than the context: %v", err)
	}
	if _, err := NewGenerator(fx.model, prefix, Options{Parallel: 4, MaxTokens: 4, CtxPerSeq: 512, NBatch: 3}); err == nil {
		t.Error("batch smaller than parallel accepted")
	}
}

// An end-of-generation token ends the product with "stop"; it is not part of the text.
func TestGeneratorStopsOnEndOfTurn(t *testing.T) {
	fx := loadGreedyFixtures(t)[0]
	prefix, suffixes := fx.split()
	g, err := NewGenerator(fx.model, prefix, Options{
		Parallel: 2, MaxTokens: 20, CtxPerSeq: 256, Threads: 1,
		Sampling: llamacpp.SamplerParams{Temperature: 0.8, TopK: 40, LogitBias: map[llamacpp.Token]float32{fx.model.EOT(): 1000}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	res := runAll(t, g, []Request{{ID: "a", Suffix: suffixes[0], Seed: 1}, {ID: "b", Suffix: suffixes[1], Seed: 2}})
	for id, r := range res {
		if r.Err != nil || r.Finish != FinishStop || len(r.Tokens) != 0 || r.Text != "" {
			t.Errorf("%s: err %v, finish %q, tokens %v", id, r.Err, r.Finish, r.Tokens)
		}
	}
}

func TestGeneratorStopsWhenCancelledOrEmitFails(t *testing.T) {
	fx := loadGreedyFixtures(t)[0]
	prefix, suffixes := fx.split()
	g, err := NewGenerator(fx.model, prefix, Options{Parallel: 2, MaxTokens: 5, CtxPerSeq: 256, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	next := func() (Request, bool) { return Request{ID: "x", Suffix: suffixes[0]}, true } // endless
	boom := errors.New("disk full")
	if err := g.Run(context.Background(), next, func(Result) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("emit error: Run returned %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	err = g.Run(ctx, next, func(Result) error {
		if n++; n == 3 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: Run returned %v", err)
	}
	// The slots were released: a later run still matches llama.cpp.
	res := runAll(t, g, []Request{{ID: "p0", Suffix: suffixes[0]}})
	if want := fx.greedy[0].Result.OutputIDs[:5]; !slices.Equal(res["p0"].Tokens, want) {
		t.Errorf("after cancel: %v, want %v", res["p0"].Tokens, want)
	}
}

func TestItemSeed(t *testing.T) {
	a := ItemSeed(0, "p1", 0)
	if a != ItemSeed(0, "p1", 0) {
		t.Error("not deterministic")
	}
	seen := map[uint32]bool{a: true}
	for _, s := range []uint32{ItemSeed(1, "p1", 0), ItemSeed(0, "p2", 0), ItemSeed(0, "p1", 1), ItemSeed(0, "p", 10)} {
		if seen[s] {
			t.Errorf("seed collision %d", s)
		}
		seen[s] = true
	}
}

// A request queued by emit after next has reported "nothing now" must still run: the
// CLI's --min-coverage retries arrive that way.
func TestGeneratorTakesRequestsQueuedByEmit(t *testing.T) {
	fx := loadGreedyFixtures(t)[0]
	prefix, suffixes := fx.split()
	// More slots than requests: next reports "nothing" before the first result.
	g, err := NewGenerator(fx.model, prefix, Options{Parallel: 3, MaxTokens: 3, CtxPerSeq: 256, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	queue := []Request{{ID: "a", Suffix: suffixes[0]}, {ID: "b", Suffix: suffixes[1]}}
	var done []string
	err = g.Run(context.Background(), func() (Request, bool) {
		if len(queue) == 0 {
			return Request{}, false
		}
		r := queue[0]
		queue = queue[1:]
		return r, true
	}, func(r Result) error {
		done = append(done, r.Req.ID)
		if !strings.HasSuffix(r.Req.ID, "-again") {
			queue = append(queue, Request{ID: r.Req.ID + "-again", Suffix: r.Req.Suffix})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(done)
	if want := []string{"a", "a-again", "b", "b-again"}; !slices.Equal(done, want) {
		t.Errorf("done %v, want %v", done, want)
	}
}

// sumMax is how many fewer than 20 tokens the requests of a case generate.
func sumMax(maxTokens []int) int {
	less := 0
	for _, m := range maxTokens {
		if m > 0 {
			less += 20 - m
		}
	}
	return less
}
