package pipeline

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"synth/dataset"
	"synth/llm"
	"synth/llm/llamacpp"
)

// TranslateParams are the settings of synth translate and of synth.yaml's translate:
// section. The generation settings are rewrite's, with a translation's defaults.
type TranslateParams struct {
	LLMParams
	MaxTokens   int     `set:"max-tokens,max-new-tokens" def:"512" usage:"most tokens generated per field"`
	From        string  `set:"from" def:"ko" usage:"source language code (ko, en, ...)"`
	To          string  `set:"to" def:"en" usage:"target language code"`
	Fields      string  `set:"fields" def:"text,title,keywords" usage:"comma-separated fields to translate: text, title, keywords, category"`
	Glossary    string  `set:"glossary" path:"1" usage:"TSV file of term pairs (source<TAB>target) the prompt asks the model to use"`
	MinFaithful float64 `set:"min-faithful" def:"0" usage:"retry a field once with another seed when the share of numbers, units and\n\tLatin words it kept is below this, then keep the better attempt (low_faithfulness\n\tif still below); 0 = off"`
}

// overrideDefaults is where a translation's defaults differ from rewrite's: a low
// temperature, as a translation has one right answer.
func (p *TranslateParams) overrideDefaults() { p.Temperature = 0.2 }

func (p *TranslateParams) fields() []string {
	var out []string
	for _, f := range strings.Split(p.Fields, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// Validate checks every value without touching a file.
func (p *TranslateParams) Validate() error {
	if err := p.LLMParams.validate(p.MaxTokens); err != nil {
		return err
	}
	switch {
	case llm.LanguageName(p.From) == "" || llm.LanguageName(p.To) == "" || p.From == p.To:
		return badf("from", "%q to %q: want two different languages of %s", p.From, p.To, strings.Join(llm.LanguageCodes(), ", "))
	case p.MinFaithful < 0 || p.MinFaithful > 1:
		return badf("min-faithful", "%g: want a fraction in [0, 1]", p.MinFaithful)
	}
	if err := llm.CheckFields(p.fields()); err != nil {
		return badf("fields", "%v", err)
	}
	return nil
}

type translateSettings struct {
	llmSettings
	From        string   `json:"from"`
	To          string   `json:"to"`
	Fields      []string `json:"fields"`
	MinFaithful float64  `json:"min_faithful"`
}

// Translate translates the products of a manifest (the paper's step 0, Korean to
// English) into a manifest the other steps read: translated fields in place, the
// originals as <field>_<from>, image paths relative to the output's folder.
type Translate struct {
	Params TranslateParams
	In     string
	Out    string
	Shard  dataset.Shard
}

func (s *Translate) Name() string { return "translate" }

func (s *Translate) Outputs() []string { return []string{s.Out} }

// Publication: the translated manifest is a configuration of the dataset, its records
// (keyed by product) joined with its own images.
func (s *Translate) Publication() Publication {
	return Publication{Name: "translated", Input: s.Out, Output: s.Out, Text: "text"}
}

func (s *Translate) models() []string { return nonEmpty(s.Params.Model) }

func (s *Translate) config() (llm.TranslateConfig, error) {
	p := &s.Params
	system, err := p.systemInstruction(s.Name())
	if err != nil {
		return llm.TranslateConfig{}, err
	}
	cfg := llm.TranslateConfig{From: p.From, To: p.To, Fields: p.fields(), System: system, DateLines: p.DateLines, Model: modelName(p.Model),
		Params: llm.NewGenParams(p.sampling(), p.Seed, p.MaxTokens, 0)}
	if p.Glossary != "" {
		if cfg.Glossary, err = llm.ReadGlossary(p.Glossary); err != nil {
			return cfg, fmt.Errorf("translate: glossary: %w", err)
		}
	}
	return cfg, nil
}

// Check reads the manifest, the glossary and system file, loads the model's vocabulary
// and chat template, builds the prompt, and checks the output's provenance.
func (s *Translate) Check(env *Env) error {
	p := &s.Params
	if err := checkJob(s.Name(), p, s.In, s.Out); err != nil {
		return err
	}
	cfg, err := s.config()
	if err != nil {
		return err
	}
	if err := p.checkModel(s.Name(), func(m *llamacpp.Model) error { _, err := llm.NewTranslator(m, cfg); return err }); err != nil {
		return err
	}
	prov, settings, err := s.provenance(env)
	if err != nil {
		return err
	}
	_, _, err = staleRecords(s.Name(), s.Out, prov, settings, env.Force)
	return err
}

func (s *Translate) provenance(env *Env) (Provenance, translateSettings, error) {
	p := &s.Params
	settings := translateSettings{llmSettings: p.settings(p.MaxTokens), From: p.From, To: p.To, Fields: p.fields(), MinFaithful: p.MinFaithful}
	models, err := env.hashes(s.Name(), [2]string{"model", p.Model}, [2]string{"system", p.SystemFile}, [2]string{"glossary", p.Glossary})
	if err != nil {
		return Provenance{}, settings, err
	}
	return NewProvenance(s.Name(), env.Version, models, settings), settings, nil
}

// Run translates every product of the shard the output does not hold.
func (s *Translate) Run(ctx context.Context, env *Env) (Status, error) {
	p := &s.Params
	cfg, err := s.config()
	if err != nil {
		return Status{Step: s.Name(), Output: s.Out}, err
	}
	prov, settings, err := s.provenance(env)
	if err != nil {
		return Status{Step: s.Name(), Output: s.Out}, err
	}
	outDir := filepath.Dir(s.Out)
	return runLLMJob(ctx, env, llmJob{
		step: s.Name(), params: &p.LLMParams, maxTokens: p.MaxTokens, in: s.In, out: s.Out, shard: s.Shard,
		prov: prov, settings: settings, minScore: p.MinFaithful,
		recorder: func(m *llamacpp.Model, man *dataset.Manifest) (jobRecorder, string, error) {
			cfg.Image = func(img string) string { return man.ImagePathFrom(img, outDir) }
			tr, err := llm.NewTranslator(m, cfg)
			if err != nil {
				return nil, "", err
			}
			tp := tr.Params()
			return tr, fmt.Sprintf("%s to %s, %s, %d examples, %d glossary terms", p.From, p.To, strings.Join(tp.Fields, ","), tp.Shots, tp.Terms), nil
		},
	})
}
