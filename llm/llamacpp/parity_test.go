package llamacpp

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"synth/internal/fixtures"
)

// expected mirrors <model>.expected.json beside each GGUF in fixtures/llm (see its
// README): outputs of the real llama.cpp at our pinned commit.
type expected struct {
	NVocab     int              `json:"n_vocab"`
	SpecialIDs map[string]Token `json:"special_ids"`
	EOGIDs     []Token          `json:"eog_ids"`
	Tokenize   []struct {
		Text         string   `json:"text"`
		ParseSpecial bool     `json:"parse_special"`
		IDs          []Token  `json:"ids"`
		Pieces       []string `json:"pieces"`
		Detokenized  string   `json:"detokenized"`
	} `json:"tokenize"`
	Chat struct {
		Messages     []ChatMessage `json:"messages"`
		AddAssistant bool          `json:"add_assistant"`
		Formatted    string        `json:"formatted"`
		IDs          []Token       `json:"ids"`
	} `json:"chat"`
	Greedy []struct {
		Messages  []ChatMessage `json:"messages"`
		PromptIDs []Token       `json:"prompt_ids"`
		Result    genResult     `json:"result"`
	} `json:"greedy"`
	Parallel struct {
		Result struct {
			SharedPrefixTokens int         `json:"shared_prefix_tokens"`
			Sequences          []genResult `json:"sequences"`
			DecodeCalls        int         `json:"decode_calls"`
		} `json:"result"`
	} `json:"parallel"`
	NPredict      int `json:"n_predict"`
	ContextParams struct {
		NCtx    int `json:"n_ctx"`
		NSeqMax int `json:"n_seq_max"`
	} `json:"context_params"`
}

type genResult struct {
	OutputIDs    []Token `json:"output_ids"`
	StoppedOnEOG bool    `json:"stopped_on_eog"`
	MinGap       float64 `json:"min_top2_logit_gap"`
}

type fixtureModel struct {
	name string
	m    *Model
	exp  expected
}

// fixtureModels loads every <name>.gguf in fixtures/llm that has <name>.expected.json.
func fixtureModels(t *testing.T) []fixtureModel {
	t.Helper()
	var out []fixtureModel
	for _, ej := range fixtures.Files(t, "llm", "*.expected.json") {
		gguf := strings.TrimSuffix(ej, ".expected.json") + ".gguf"
		if _, err := os.Stat(gguf); err != nil {
			continue
		}
		data, err := os.ReadFile(ej)
		if err != nil {
			t.Fatal(err)
		}
		var exp expected
		if err := json.Unmarshal(data, &exp); err != nil {
			t.Fatalf("%s: %v", ej, err)
		}
		m, err := LoadModel(gguf, ModelParams{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.Close)
		out = append(out, fixtureModel{name: strings.TrimSuffix(gguf[strings.LastIndexByte(gguf, '/')+1:], ".gguf"), m: m, exp: exp})
	}
	if len(out) == 0 {
		t.Skip("no fixtures/llm/<name>.gguf with <name>.expected.json")
	}
	return out
}

func TestTokenizerMatchesLlamaCpp(t *testing.T) {
	for _, fm := range fixtureModels(t) {
		t.Run(fm.name, func(t *testing.T) {
			m, exp := fm.m, fm.exp
			if m.NVocab() != exp.NVocab {
				t.Fatalf("n_vocab %d, want %d", m.NVocab(), exp.NVocab)
			}
			if got := m.EOGTokens(); !slices.Equal(got, exp.EOGIDs) {
				t.Errorf("EOG tokens %v, want %v", got, exp.EOGIDs)
			}
			for _, eog := range exp.EOGIDs {
				if !m.IsEOG(eog) {
					t.Errorf("IsEOG(%d) false", eog)
				}
			}
			if m.BOS() != exp.SpecialIDs["<|begin_of_text|>"] || m.EOT() != exp.SpecialIDs["<|eot_id|>"] {
				t.Errorf("BOS %d, EOT %d, want %v", m.BOS(), m.EOT(), exp.SpecialIDs)
			}
			for i, tc := range exp.Tokenize {
				ids, err := m.Tokenize(tc.Text, true, tc.ParseSpecial)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(ids, tc.IDs) {
					t.Errorf("case %d %q: ids %v\nwant %v", i, tc.Text, ids, tc.IDs)
					continue
				}
				var joined []byte
				for k, id := range ids {
					p, err := m.TokenPiece(id, tc.ParseSpecial)
					if err != nil {
						t.Fatal(err)
					}
					joined = append(joined, p...)
					// JSON cannot carry a piece that is part of a UTF-8 sequence; those
					// are checked through the concatenation below.
					if utf8.Valid(p) && string(p) != tc.Pieces[k] {
						t.Errorf("case %d token %d: piece %q, want %q", i, k, p, tc.Pieces[k])
					}
				}
				if !tc.ParseSpecial && string(joined) != strings.ToValidUTF8(tc.Text, "\uFFFD") {
					t.Errorf("case %d: pieces join to %q, want the input %q", i, joined, tc.Text)
				}
				det, err := m.Detokenize(ids, true, tc.ParseSpecial)
				if err != nil {
					t.Fatal(err)
				}
				if det != tc.Detokenized {
					t.Errorf("case %d: detokenized %q, want %q", i, det, tc.Detokenized)
				}
			}
		})
	}
}

func TestChatTemplateMatchesLlamaCpp(t *testing.T) {
	for _, fm := range fixtureModels(t) {
		t.Run(fm.name, func(t *testing.T) {
			c := fm.exp.Chat
			got, err := fm.m.ApplyChatTemplate("", c.Messages, c.AddAssistant)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.Formatted {
				t.Fatalf("formatted\n%q\nwant\n%q", got, c.Formatted)
			}
			ids, err := fm.m.Tokenize(got, true, true)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids, c.IDs) {
				t.Errorf("ids %v\nwant %v", ids, c.IDs)
			}
			if !strings.Contains(fm.m.ChatTemplate(), "<|start_header_id|>") {
				t.Errorf("model chat template is not Llama 3's: %.80q", fm.m.ChatTemplate())
			}
		})
	}
}

func newFixtureContext(t *testing.T, fm fixtureModel, unified bool) *Context {
	t.Helper()
	cp := fm.exp.ContextParams
	// One thread: the fixture's outputs are the same with 1 or 2, and on a small shared
	// machine ggml's spinning threads of a tiny model mostly wait on each other.
	c, err := NewContext(fm.m, ContextParams{NCtx: cp.NCtx, NSeqMax: cp.NSeqMax, Threads: 1, KVUnified: unified})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// TestGreedyMatchesLlamaCpp decodes each recorded prompt alone and compares the greedy
// token ids with llama.cpp's. The fixture's min_top2_logit_gap says how close the
// choice was: on another instruction set a gap near 0 may flip a token.
func TestGreedyMatchesLlamaCpp(t *testing.T) {
	for _, fm := range fixtureModels(t) {
		t.Run(fm.name, func(t *testing.T) {
			c := newFixtureContext(t, fm, false)
			s, err := NewSampler(fm.m, SamplerParams{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			b := NewBatch(c.NBatch())
			defer b.Close()
			for gi, g := range fm.exp.Greedy {
				formatted, err := fm.m.ApplyChatTemplate("", g.Messages, true)
				if err != nil {
					t.Fatal(err)
				}
				prompt, err := fm.m.Tokenize(formatted, true, true)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(prompt, g.PromptIDs) {
					t.Fatalf("prompt %d: ids differ from llama.cpp's", gi)
				}
				c.ClearMemory()
				s.Reset()
				b.Clear()
				for i, id := range prompt {
					b.Add(id, i, 0, i == len(prompt)-1)
				}
				var out []Token
				for step := 0; step < fm.exp.NPredict; step++ {
					if err := c.Decode(b); err != nil {
						t.Fatal(err)
					}
					tok, err := s.Sample(c, b.Len()-1)
					if err != nil {
						t.Fatal(err)
					}
					out = append(out, tok)
					if fm.m.IsEOG(tok) {
						break
					}
					b.Clear()
					b.Add(tok, len(prompt)+step, 0, true)
				}
				if !slices.Equal(out, g.Result.OutputIDs) {
					t.Errorf("prompt %d: greedy ids %v\nwant %v (min top-2 logit gap %g)", gi, out, g.Result.OutputIDs, g.Result.MinGap)
				}
			}
		})
	}
}

// TestParallelSharedPrefixMatchesLlamaCpp replays the fixture's parallel run: the common
// prefix decoded once on sequence 0 and shared with SeqCopy, the suffixes in one batch,
// then one Decode per step for all sequences; with and without a unified KV cache.
func TestParallelSharedPrefixMatchesLlamaCpp(t *testing.T) {
	for _, fm := range fixtureModels(t) {
		for _, unified := range []bool{false, true} {
			name := fm.name + "/kv_unified=" + map[bool]string{false: "false", true: "true"}[unified]
			t.Run(name, func(t *testing.T) {
				par := fm.exp.Parallel.Result
				var prompts [][]Token
				for _, g := range fm.exp.Greedy {
					prompts = append(prompts, g.PromptIDs)
				}
				prefix := len(prompts[0])
				for _, p := range prompts[1:] {
					n := 0
					for n < prefix && n < len(p) && p[n] == prompts[0][n] {
						n++
					}
					prefix = n
				}
				if prefix != par.SharedPrefixTokens {
					t.Fatalf("common prefix %d tokens, fixture says %d", prefix, par.SharedPrefixTokens)
				}
				c := newFixtureContext(t, fm, unified)
				b := NewBatch(c.NBatch())
				defer b.Close()
				calls := 0
				decode := func() {
					t.Helper()
					calls++
					if err := c.Decode(b); err != nil {
						t.Fatal(err)
					}
				}
				for i := 0; i < prefix; i++ {
					b.Add(prompts[0][i], i, 0, false)
				}
				decode()
				samplers := make([]*Sampler, len(prompts))
				idx := make([]int, len(prompts))
				b.Clear()
				for s, p := range prompts {
					if s > 0 {
						if err := c.SeqCopy(0, s, -1, -1); err != nil {
							t.Fatal(err)
						}
					}
					var err error
					if samplers[s], err = NewSampler(fm.m, SamplerParams{}); err != nil {
						t.Fatal(err)
					}
					defer samplers[s].Close()
					for i := prefix; i < len(p); i++ {
						idx[s] = b.Add(p[i], i, s, i == len(p)-1)
					}
				}
				decode()
				outs := make([][]Token, len(prompts))
				for step := 0; ; step++ {
					for s := range prompts {
						tok, err := samplers[s].Sample(c, idx[s])
						if err != nil {
							t.Fatal(err)
						}
						outs[s] = append(outs[s], tok)
					}
					if step == fm.exp.NPredict-1 {
						break
					}
					b.Clear()
					for s, p := range prompts {
						idx[s] = b.Add(outs[s][step], len(p)+step, s, true)
					}
					decode()
				}
				for s := range prompts {
					if !slices.Equal(outs[s], par.Sequences[s].OutputIDs) {
						t.Errorf("sequence %d: ids %v\nwant %v", s, outs[s], par.Sequences[s].OutputIDs)
					}
				}
				if calls != par.DecodeCalls {
					t.Errorf("%d decode calls, fixture made %d", calls, par.DecodeCalls)
				}
			})
		}
	}
}
