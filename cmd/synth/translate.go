package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"synth/dataset"
	"synth/llm"
	"synth/llm/llamacpp"
)

func translateCommand() *cli.Command {
	return &cli.Command{
		Name:      "translate",
		Usage:     "translate a product manifest (Korean to English) offline with an LLM (llama.cpp)",
		UsageText: "synth translate --model FILE.gguf --in MANIFEST --out FILE.jsonl --from ko --to en [--fields text,title,keywords] [--glossary FILE.tsv] [options]",
		Description: "Step 0 of the paper, done offline: its Korean product descriptions were machine-translated\n" +
			"to English before fine-tuning and evaluation. An instruction-tuned LLM (any GGUF) translates\n" +
			"each field of each product through the same engine as `synth rewrite`: one shared prompt\n" +
			"prefix (the instruction, the --glossary terms and a few built-in examples) decoded once,\n" +
			"--parallel slots decoding together, resumable output, per-product errors.\n\n" +
			"The prompt asks for a faithful translation that keeps sizes, units, numbers and brand\n" +
			"names. Each field is then checked: every number, every unit after a number (in any of its\n" +
			"spellings: 32인치 = 32 inches) and every Latin-script word of the source (GORE-TEX, XL)\n" +
			"must be in the translation; what is not is listed in the record (faithful: false,\n" +
			"missing), and --min-faithful retries such a field once with another seed. Keywords are\n" +
			"translated as one numbered list per product and must come back as a list of the same length.\n\n" +
			"The output is a manifest the other commands read directly: each line is the product with\n" +
			"the translated fields in place of the originals, lang set to --to and image paths relative\n" +
			"to the output's folder, followed by the originals as <field>_<from> (text_ko, keywords_ko),\n" +
			"the model, the parameters and what each field's translation found. A product that fails\n" +
			"keeps only its originals and an error. A product whose lang is already --to is copied.\n\n" +
			"--glossary: a TSV file, one \"source<TAB>target\" term pair a line (# comments), e.g.\n" +
			"슬림핏<TAB>slim fit; the prompt lists every pair.",
		Flags: append(generationFlags(512, 0.2),
			&cli.StringFlag{Name: "from", Value: "ko", Usage: "source language code (" + strings.Join(llm.LanguageCodes(), ", ") + ")"},
			&cli.StringFlag{Name: "to", Value: "en", Usage: "target language code"},
			&cli.StringFlag{Name: "fields", Value: "text,title,keywords", Usage: "comma-separated fields to translate: text, title, keywords, category"},
			&cli.StringFlag{Name: "glossary", Usage: "TSV `FILE` of term pairs (source<TAB>target) the prompt asks the model to use"},
			&cli.Float64Flag{Name: "min-faithful", Value: 0, Usage: "retry a field once with another seed when the share of numbers, units and\n\tLatin words it kept is below this, then keep the better attempt (low_faithfulness\n\tif still below); 0 = off"},
		),
		Action: translateAction,
	}
}

func translateAction(c *cli.Context) error {
	cfg, err := parseGenerationFlags(c, "translate")
	if err != nil {
		return err
	}
	minFaithful, err := minScoreFlag(c, "min-faithful")
	if err != nil {
		return err
	}
	from, to := c.String("from"), c.String("to")
	if llm.LanguageName(from) == "" || llm.LanguageName(to) == "" || from == to {
		return usageErrorf("--from %q --to %q: want two different languages of %s", from, to, strings.Join(llm.LanguageCodes(), ", "))
	}
	var fields []string
	for _, f := range strings.Split(c.String("fields"), ",") {
		if f = strings.TrimSpace(f); f != "" {
			fields = append(fields, f)
		}
	}
	if err := llm.CheckFields(fields); err != nil {
		return usageErrorf("--fields: %v", err)
	}
	system, err := cfg.systemInstruction("translate")
	if err != nil {
		return err
	}
	var glossary *llm.Glossary
	if c.String("glossary") != "" {
		if glossary, err = llm.ReadGlossary(c.String("glossary")); err != nil {
			return err
		}
	}
	outDir := filepath.Dir(cfg.out)
	return runLLMJob(c, llmJob{
		name: "translate", cfg: cfg, minScore: minFaithful,
		score: "faithfulness", scoredOver: "fields with numbers, units or Latin words", lowField: "low_faithfulness",
		recorder: func(m *llamacpp.Model, man *dataset.Manifest) (jobRecorder, string, error) {
			tr, err := llm.NewTranslator(m, llm.TranslateConfig{
				From: from, To: to, Fields: fields, Glossary: glossary, System: system, DateLines: cfg.dateLines,
				Model: modelName(cfg.modelPath), Params: llm.NewGenParams(cfg.sampling, cfg.seed, cfg.maxTokens, 0),
				Image: func(img string) string { return man.ImagePathFrom(img, outDir) },
			})
			if err != nil {
				return nil, "", err
			}
			p := tr.Params()
			return tr, fmt.Sprintf("%s to %s, %s, %d examples, %d glossary terms", from, to, strings.Join(p.Fields, ","), p.Shots, p.Terms), nil
		},
	})
}
