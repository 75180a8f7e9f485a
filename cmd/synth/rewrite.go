package main

import (
	"github.com/urfave/cli/v2"

	"synth/pipeline"
)

func rewriteCommand() *cli.Command {
	return &cli.Command{
		Name:      "rewrite",
		Usage:     "turn product keyword lists into long sentence descriptions with Llama 3.1 (llama.cpp)",
		UsageText: "synth rewrite --model FILE.gguf --examples STYLE.jsonl --in MANIFEST.jsonl --out OUT.jsonl [options]",
		Description: "Step 2 of the paper: an instruction-tuned Llama (any GGUF quant) writes a description\n" +
			"of each product of the manifest from its keywords (and category/title when present),\n" +
			"in the style of the few-shot examples. The prompt is a system instruction + the\n" +
			"examples as user/assistant turns + the product's turn, formatted with the chat\n" +
			"template in the GGUF. System turn and examples are decoded once and shared by all\n" +
			"--parallel slots; the slots decode together, one llama_decode per step, and a slot\n" +
			"that finishes takes the next product at once. Names shared with synth caption are\n" +
			"accepted for the same settings (--max-new-tokens, --repetition-penalty; docs/parameters.md).\n\n" +
			"STYLE.jsonl: one {\"keywords\": [\"blue jeans\", \"cotton\"] or \"blue jeans, cotton\",\n" +
			"\"text\": \"...\"} a line.\n\n" +
			"Output: one JSON record per product {id, keywords, images, text, model, params, item_seed,\n" +
			"prompt_tokens, gen_tokens, ms, finish_reason (stop|length|context), coverage, provenance}\n" +
			"or {..., error}. coverage is the fraction of keywords whose words appear in the text (a\n" +
			"lexical check). The run is resumable: rerun the same command after a kill and done\n" +
			"products are skipped (--retry-errors redoes failed ones); a rerun with other settings\n" +
			"stops and says what changed, --force recomputes.",
		Flags: append(settingFlags(&pipeline.RewriteParams{}),
			&cli.StringFlag{Name: "in", Usage: "product manifest (JSONL with id and keywords)", Required: true},
			&cli.StringFlag{Name: "out", Usage: "output JSONL (appended to; resumable)", Required: true},
			&cli.StringFlag{Name: "shard", Usage: "only the products of shard i/n (hash of the id), e.g. 0/4"},
			&cli.BoolFlag{Name: "force", Usage: "recompute the records of --out made with other settings or models"},
		),
		Action: func(c *cli.Context) error {
			s := &pipeline.Rewrite{In: c.String("in"), Out: c.String("out")}
			return shardedStep(c, s, &s.Params, &s.Shard, "products")
		},
	}
}
