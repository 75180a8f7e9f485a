package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"synth/dataset"
	"synth/llm"
	"synth/llm/llamacpp"
)

func rewriteCommand() *cli.Command {
	return &cli.Command{
		Name:      "rewrite",
		Usage:     "turn product keyword lists into long sentence descriptions with Llama 3.1 (llama.cpp)",
		UsageText: "synth rewrite --model FILE.gguf [--examples STYLE.jsonl | --examples-from MANIFEST --shots K] --in MANIFEST.jsonl --out OUT.jsonl [--lang ko|en] [options]",
		Description: "Step 2 of the paper: an instruction-tuned Llama (any GGUF quant) writes a description\n" +
			"of each product of the manifest from its keywords (and category/title when present),\n" +
			"in the style of the few-shot examples. The prompt is a system instruction + the\n" +
			"examples as user/assistant turns + the product's turn, formatted with the chat\n" +
			"template in the GGUF. System turn and examples are decoded once and shared by all\n" +
			"--parallel slots; the slots decode together, one llama_decode per step, and a slot\n" +
			"that finishes takes the next product at once.\n\n" +
			"STYLE.jsonl: one {\"keywords\": [\"blue jeans\", \"cotton\"] or \"blue jeans, cotton\",\n" +
			"\"text\": \"...\"} a line. --examples-from draws K examples from a dataset's own products\n" +
			"(those with a text and keywords; the same ones for the same --seed) instead. Without\n" +
			"either, a few built-in examples in the --lang language show the style. --lang ko writes\n" +
			"the descriptions in Korean (Korean instruction and labels); coverage then matches\n" +
			"Korean keywords through particles and endings, and --glossary across languages.\n\n" +
			"Output: one JSON record per product {id, keywords, text, model, params, prompt_tokens,\n" +
			"gen_tokens, ms, finish_reason (stop|length|context), coverage, ...} or {..., error}.\n" +
			"coverage is the fraction of keywords whose words appear in the text (a lexical check).\n" +
			"The run is resumable: rerun the same command after a kill and done products are\n" +
			"skipped (--retry-errors redoes failed ones). Progress goes to stderr.\n\n" +
			"Reproducibility: each product's sampler seed comes from --seed and its id, not its\n" +
			"slot. The same command gives the same texts, but --parallel 1 and --parallel 3 do\n" +
			"not: llama.cpp decodes the slots' tokens as one batch, and the batch's shape changes\n" +
			"the order of its floating-point sums, so logits differ in the last bits and a\n" +
			"sampled token, and the text after it, can differ (docs/sharding.md).",
		Flags: append(generationFlags(256, 0.6),
			&cli.StringFlag{Name: "examples", Usage: "few-shot style examples, JSONL {keywords, text}"},
			&cli.StringFlag{Name: "examples-from", Usage: "draw the few-shot examples from this `MANIFEST`'s products with a text and keywords"},
			&cli.IntFlag{Name: "shots", Value: 4, Usage: "examples drawn by --examples-from (deterministic for a --seed)"},
			&cli.StringFlag{Name: "lang", Value: "en", Usage: "language of the descriptions: en or ko (instruction, labels, built-in examples)"},
			&cli.StringFlag{Name: "glossary", Usage: "TSV `FILE` of term pairs (ko<TAB>en): keyword coverage matches keywords in one\n\tlanguage against a text in the other through it, and records which"},
			&cli.Float64Flag{Name: "min-coverage", Value: 0, Usage: "retry a product once with another seed when its coverage is below this,\n\tthen keep the better attempt and flag it (low_coverage) if still below; 0 = off"},
		),
		Action: rewriteAction,
	}
}

func rewriteAction(c *cli.Context) error {
	cfg, err := parseGenerationFlags(c, "rewrite")
	if err != nil {
		return err
	}
	minCoverage, err := minScoreFlag(c, "min-coverage")
	if err != nil {
		return err
	}
	lang := c.String("lang")
	if lang != "en" && lang != "ko" {
		return usageErrorf("--lang %q: want en or ko", lang)
	}
	switch {
	case c.IsSet("examples") && c.IsSet("examples-from"):
		return usageErrorf("--examples and --examples-from both given: the examples come from one of them")
	case c.IsSet("shots") && !c.IsSet("examples-from"):
		return usageErrorf("--shots is the number of examples --examples-from draws")
	case c.Int("shots") < 1:
		return usageErrorf("--shots %d: want at least 1", c.Int("shots"))
	}
	system, err := cfg.systemInstruction("rewrite")
	if err != nil {
		return err
	}
	params := llm.RewriteParams{Lang: lang}
	examples := llm.DefaultExamples(lang)
	switch {
	case c.String("examples") != "":
		if examples, err = llm.ReadExamples(c.String("examples")); err != nil {
			return err
		}
	case c.String("examples-from") != "":
		src, err := dataset.ReadManifest(c.String("examples-from"))
		if err != nil {
			return err
		}
		if examples, params.ExampleIDs, err = llm.ExamplesFrom(src.Products, c.Int("shots"), cfg.seed); err != nil {
			return fmt.Errorf("rewrite: --examples-from %s: %w", c.String("examples-from"), err)
		}
		params.ExamplesFrom, params.Shots = c.String("examples-from"), c.Int("shots")
	}
	var glossary *llm.Glossary
	if c.String("glossary") != "" {
		if glossary, err = llm.ReadGlossary(c.String("glossary")); err != nil {
			return err
		}
		params.Glossary = c.String("glossary")
	}
	return runLLMJob(c, llmJob{
		name: "rewrite", cfg: cfg, minScore: minCoverage,
		score: "keyword coverage", scoredOver: "products", lowField: "low_coverage",
		recorder: func(m *llamacpp.Model, _ *dataset.Manifest) (jobRecorder, string, error) {
			params.GenParams = llm.NewGenParams(cfg.sampling, cfg.seed, cfg.maxTokens, 0)
			rw, err := llm.NewRewriter(m, llm.RewriteConfig{
				Prompt:   llm.PromptConfig{System: system, Examples: examples, Lang: lang, DateLines: cfg.dateLines},
				Glossary: glossary, Model: modelName(cfg.modelPath), Params: params,
			})
			return rw, fmt.Sprintf("%d examples, %s", len(examples), lang), err
		},
	})
}
