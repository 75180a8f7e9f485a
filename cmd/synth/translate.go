package main

import (
	"github.com/urfave/cli/v2"

	"synth/pipeline"
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
			"the model, the parameters, what each field's translation found and the provenance. A\n" +
			"product that fails keeps only its originals and an error. A product whose lang is already\n" +
			"--to is copied.\n\n" +
			"--glossary: a TSV file, one \"source<TAB>target\" term pair a line (# comments), e.g.\n" +
			"슬림핏<TAB>slim fit; the prompt lists every pair.",
		Flags: append(settingFlags(&pipeline.TranslateParams{}), llmIOFlags()...),
		Action: func(c *cli.Context) error {
			s := &pipeline.Translate{In: c.String("in"), Out: c.String("out")}
			return shardedStep(c, s, &s.Params, &s.Shard, "products")
		},
	}
}
