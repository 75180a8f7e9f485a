package main

import (
	"github.com/urfave/cli/v2"

	"synth/pipeline"
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
			"that finishes takes the next product at once. Names shared with synth caption are\n" +
			"accepted for the same settings (--max-new-tokens, --repetition-penalty; docs/parameters.md).\n\n" +
			"STYLE.jsonl: one {\"keywords\": [\"blue jeans\", \"cotton\"] or \"blue jeans, cotton\",\n" +
			"\"text\": \"...\"} a line. --examples-from draws K examples from a dataset's own products\n" +
			"(those with a text and keywords; the same ones for the same --seed) instead. Without\n" +
			"either, a few built-in examples in the --lang language show the style. --lang ko writes\n" +
			"the descriptions in Korean; coverage then matches Korean keywords through particles and\n" +
			"endings, and --glossary across languages.\n\n" +
			"Output: one JSON record per product {id, keywords, images, text, model, params, prompt_tokens,\n" +
			"gen_tokens, ms, finish_reason (stop|length|context), coverage, provenance} or {..., error}.\n" +
			"coverage is the fraction of keywords whose words appear in the text (a lexical check).\n" +
			"A rerun resumes after a kill (--retry-errors redoes failed products); a rerun with other\n" +
			"settings stops and says what changed, --force recomputes (docs/provenance.md).\n\n" +
			"Reproducibility: each product's sampler seed comes from --seed and its id, not its\n" +
			"slot. The same command gives the same texts, but --parallel 1 and --parallel 3 do not:\n" +
			"llama.cpp decodes the slots' tokens as one batch, and the batch's shape changes the\n" +
			"order of its floating-point sums (docs/sharding.md).",
		Flags: append(settingFlags(&pipeline.RewriteParams{}), llmIOFlags()...),
		Action: func(c *cli.Context) error {
			s := &pipeline.Rewrite{In: c.String("in"), Out: c.String("out")}
			return shardedStep(c, s, &s.Params, &s.Shard, "products")
		},
	}
}

// llmIOFlags are the input and output flags of the LLM commands.
func llmIOFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "in", Usage: "product manifest (JSONL, one product a line with its id)", Required: true},
		&cli.StringFlag{Name: "out", Usage: "output JSONL (appended to; resumable)", Required: true},
		&cli.StringFlag{Name: "shard", Usage: "only the products of shard i/n (hash of the id), e.g. 0/4"},
		&cli.BoolFlag{Name: "force", Usage: "recompute the records of --out made with other settings or models"},
	}
}
