package pipeline

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"synth/dataset"
	"synth/llm"
	"synth/llm/llamacpp"
)

// RewriteParams are the settings of synth rewrite and of synth.yaml's rewrite: section
// (docs/parameters.md maps them to llama.cpp's names and to caption's).
type RewriteParams struct {
	LLMParams
	MaxTokens    int     `set:"max-tokens,max-new-tokens" def:"256" usage:"most tokens generated per product"`
	Examples     string  `set:"examples" path:"1" usage:"few-shot style examples, JSONL {keywords, text} (default: built-in ones in the lang language)"`
	ExamplesFrom string  `set:"examples-from" path:"1" usage:"draw the few-shot examples from this manifest's products with a text and keywords"`
	Shots        int     `set:"shots" def:"0" usage:"examples drawn by examples-from, the same ones for the same seed (0: 4)"`
	Lang         string  `set:"lang" def:"en" usage:"language of the descriptions: en or ko (instruction, labels, built-in examples)"`
	Glossary     string  `set:"glossary" path:"1" usage:"TSV file of term pairs (ko<TAB>en): keyword coverage matches keywords in one\n\tlanguage against a text in the other through it, and records which"`
	MinCoverage  float64 `set:"min-coverage" def:"0" usage:"retry a product once with another seed when its coverage is below this,\n\tthen keep the better attempt and flag it (low_coverage) if still below; 0 = off"`
}

// Validate checks every value without touching a file.
func (p *RewriteParams) Validate() error {
	if err := p.LLMParams.validate(p.MaxTokens); err != nil {
		return err
	}
	switch {
	case !slices.Contains(llm.RewriteLangs, p.Lang):
		return badf("lang", "%q: want %s", p.Lang, strings.Join(llm.RewriteLangs, " or "))
	case p.Examples != "" && p.ExamplesFrom != "":
		return badf("examples-from", "and examples both given: the examples come from one of them")
	case p.Shots < 0:
		return badf("shots", "%d: want at least 1 (0: 4)", p.Shots)
	case p.Shots > 0 && p.ExamplesFrom == "":
		return badf("shots", "is the number of examples examples-from draws")
	case p.MinCoverage < 0 || p.MinCoverage > 1:
		return badf("min-coverage", "%g: want a fraction in [0, 1]", p.MinCoverage)
	}
	return nil
}

// shots is the number of examples drawn by examples-from.
func (p *RewriteParams) shots() int {
	if p.Shots == 0 {
		return 4
	}
	return p.Shots
}

// rewriteSettings are the settings a rewrite's fingerprint covers (the examples, system
// and glossary files by their hashes).
type rewriteSettings struct {
	llmSettings
	Lang        string  `json:"lang"`
	Shots       int     `json:"shots,omitempty"`
	MinCoverage float64 `json:"min_coverage"`
}

// Rewrite turns the keyword lists of a manifest's products into sentence descriptions
// with an instruction-tuned LLM (llama.cpp) and few-shot style examples.
type Rewrite struct {
	Params RewriteParams
	In     string // product manifest with keywords
	Out    string
	Shard  dataset.Shard
}

func (s *Rewrite) Name() string { return "rewrite" }

func (s *Rewrite) Outputs() []string { return []string{s.Out} }

func (s *Rewrite) Publication() Publication {
	return Publication{Name: "rewritten", Input: s.In, Output: s.Out, Text: "text"}
}

func (s *Rewrite) models() []string { return nonEmpty(s.Params.Model) }

// prompt reads what the prompt is made of: the examples (a file, drawn from a manifest,
// or built in), the system instruction and the glossary, and the parameters records say.
func (s *Rewrite) prompt() (examples []llm.Example, system string, glossary *llm.Glossary, params llm.RewriteParams, err error) {
	p := &s.Params
	params = llm.RewriteParams{Lang: p.Lang}
	examples = llm.DefaultExamples(p.Lang)
	switch {
	case p.Examples != "":
		if examples, err = llm.ReadExamples(p.Examples); err != nil {
			return nil, "", nil, params, fmt.Errorf("rewrite: examples: %w", err)
		}
	case p.ExamplesFrom != "":
		src, err := dataset.ReadManifest(p.ExamplesFrom)
		if err != nil {
			return nil, "", nil, params, fmt.Errorf("rewrite: examples-from: %w", err)
		}
		if examples, params.ExampleIDs, err = llm.ExamplesFrom(src.Products, p.shots(), p.Seed); err != nil {
			return nil, "", nil, params, fmt.Errorf("rewrite: examples-from %s: %w", p.ExamplesFrom, err)
		}
		params.ExamplesFrom, params.Shots = filepath.Base(p.ExamplesFrom), p.shots()
	}
	if system, err = p.systemInstruction(s.Name()); err != nil {
		return nil, "", nil, params, err
	}
	if p.Glossary != "" {
		if glossary, err = llm.ReadGlossary(p.Glossary); err != nil {
			return nil, "", nil, params, fmt.Errorf("rewrite: glossary: %w", err)
		}
		params.Glossary = filepath.Base(p.Glossary)
	}
	return examples, system, glossary, params, nil
}

// Check reads the manifest, the examples, system file and glossary, loads the model's
// vocabulary and chat template (not its weights), builds the shared prompt, and checks
// that the output was not made with other settings.
func (s *Rewrite) Check(env *Env) error {
	p := &s.Params
	if err := checkJob(s.Name(), p, s.In, s.Out); err != nil {
		return err
	}
	for _, f := range [][2]string{{"examples", p.Examples}, {"examples-from", p.ExamplesFrom}, {"system-file", p.SystemFile}, {"glossary", p.Glossary}} {
		if f[1] != "" && !env.Pending(f[1]) {
			if err := exists(s.Name(), f[0], f[1], false); err != nil {
				return err
			}
		}
	}
	if env.Pending(p.Examples) || env.Pending(p.ExamplesFrom) || env.Pending(p.SystemFile) {
		return nil // read when the step runs
	}
	ex, system, _, _, err := s.prompt()
	if err != nil {
		return err
	}
	err = p.checkModel(s.Name(), func(m *llamacpp.Model) error {
		_, err := llm.NewPrompter(m, llm.PromptConfig{System: system, Examples: ex, Lang: p.Lang, DateLines: p.DateLines})
		return err
	})
	if err != nil {
		return err
	}
	prov, settings, err := s.provenance(env)
	if err != nil {
		return err
	}
	_, _, err = staleRecords(s.Name(), s.Out, prov, settings, env.Force)
	return err
}

func (s *Rewrite) provenance(env *Env) (Provenance, rewriteSettings, error) {
	p := &s.Params
	settings := rewriteSettings{llmSettings: p.settings(p.MaxTokens), Lang: p.Lang, MinCoverage: p.MinCoverage}
	if p.ExamplesFrom != "" {
		settings.Shots = p.shots()
	}
	models, err := env.hashes(s.Name(), [2]string{"model", p.Model}, [2]string{"examples", p.Examples},
		[2]string{"examples_from", p.ExamplesFrom}, [2]string{"system", p.SystemFile}, [2]string{"glossary", p.Glossary})
	if err != nil {
		return Provenance{}, settings, err
	}
	return NewProvenance(s.Name(), env.Version, models, settings), settings, nil
}

// Run writes a description for every product of the shard the output does not hold.
func (s *Rewrite) Run(ctx context.Context, env *Env) (Status, error) {
	p := &s.Params
	examples, system, glossary, params, err := s.prompt()
	if err != nil {
		return Status{Step: s.Name(), Output: s.Out}, err
	}
	prov, settings, err := s.provenance(env)
	if err != nil {
		return Status{Step: s.Name(), Output: s.Out}, err
	}
	return runLLMJob(ctx, env, llmJob{
		step: s.Name(), params: &p.LLMParams, maxTokens: p.MaxTokens, in: s.In, out: s.Out, shard: s.Shard,
		prov: prov, settings: settings, minScore: p.MinCoverage,
		recorder: func(m *llamacpp.Model, _ *dataset.Manifest) (jobRecorder, string, error) {
			params.GenParams = llm.NewGenParams(p.sampling(), p.Seed, p.MaxTokens, 0)
			rw, err := llm.NewRewriter(m, llm.RewriteConfig{
				Prompt:   llm.PromptConfig{System: system, Examples: examples, Lang: p.Lang, DateLines: p.DateLines},
				Glossary: glossary, Model: modelName(p.Model), Params: params,
			})
			return rw, fmt.Sprintf("%d examples, %s", len(examples), p.Lang), err
		},
		extra: func(t *llm.Task) map[string]any {
			images := t.Data.(dataset.Product).Images
			if images == nil {
				images = []string{}
			}
			return map[string]any{"images": images}
		},
	})
}
