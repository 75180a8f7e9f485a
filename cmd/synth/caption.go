package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"synth/dataset"
	"synth/pipeline"
)

func captionCommand() *cli.Command {
	return &cli.Command{
		Name:  "caption",
		Usage: "caption images with BLIP-2 (OPT) and an optional LoRA adapter, one JSON line per image",
		Description: "Loads --model (a Hugging Face Blip2ForConditionalGeneration folder, or a GGUF from synth\n" +
			"convert) and, with --lora, a PEFT adapter (merged into the weights at load; --lora-live keeps\n" +
			"it unmerged). --images is a manifest (JSONL, one product a line, its images captioned one\n" +
			"by one) or a folder (every .jpg/.jpeg/.png/.gif/.webp below it).\n" +
			"\n" +
			"Images run in batches of --batch: the vision tower and Q-Former see the whole batch, and\n" +
			"all its captions (and beams) decode together. Generation follows transformers' generate()\n" +
			"(docs/generation.md): greedy by default, --beams N for beam search, --sample for sampling;\n" +
			"it stops at the model's EOS ids (blip2-opt: a newline) or after --max-new-tokens.\n" +
			"Names shared with synth rewrite are accepted for the same settings (--max-tokens,\n" +
			"--repeat-penalty; docs/parameters.md).\n" +
			"\n" +
			"Each image gives one line in --out: {id, image, caption, model, lora, params, tokens, ms,\n" +
			"provenance} or {..., error}. A rerun skips images already in --out (--retry-errors redoes\n" +
			"the failed ones); a killed run loses at most the batch in flight. A rerun with other\n" +
			"settings or models stops and says what changed; --force recomputes (docs/provenance.md).\n" +
			"The tokenizer (vocab.json, merges.txt) is read from the model folder, the GGUF's folder,\n" +
			"or --tokenizer.\n" +
			"\n" +
			"Memory: the weights are held once, packed for the kernels; a GGUF is mmap'd and each\n" +
			"tensor's file pages are released once packed. --dtype q8_0 on an F32 folder quantizes at\n" +
			"load. For the smallest footprint convert once and caption from the GGUF:\n" +
			"  synth convert --in DIR --lora LORA --merge --type q8_0 --out m.gguf\n" +
			"The KV cache holds keys and values in f16 by default (--kv-cache f16: half the memory and\n" +
			"memory traffic of f32; the fixture captions are identical either way).",
		Flags: append(settingFlags(&pipeline.CaptionParams{}),
			&cli.StringFlag{Name: "images", Usage: "manifest (JSONL) or folder of images", Required: true},
			&cli.StringFlag{Name: "out", Usage: "output JSONL file (appended to; done images are skipped)", Required: true},
			&cli.StringFlag{Name: "shard", Value: "0/1", Usage: "caption only shard `i/n` of the images (by a hash of the product id)"},
			&cli.BoolFlag{Name: "force", Usage: "recompute the records of --out made with other settings or models"},
		),
		Action: func(c *cli.Context) error {
			s := &pipeline.Caption{Images: c.String("images"), Out: c.String("out")}
			return shardedStep(c, s, &s.Params, &s.Shard, "images")
		},
	}
}

// shardedStep reads a step's settings and --shard, then checks and runs the step.
func shardedStep(c *cli.Context, s pipeline.Step, params interface{ Validate() error }, shard *dataset.Shard, unit string) error {
	if err := noArgs(c); err != nil {
		return err
	}
	if err := readSettings(c, params); err != nil {
		return err
	}
	sh, err := dataset.ParseShard(c.String("shard"))
	if err != nil {
		return usageErrorf("--shard: %v", err)
	}
	*shard = sh
	return runStep(c, s, unit)
}

// runStep checks a step and runs it, then prints what its output holds.
func runStep(c *cli.Context, s pipeline.Step, unit string) error {
	e := env(c, c.Bool("force"))
	if err := s.Check(e); err != nil {
		return stepError(err)
	}
	st, err := s.Run(c.Context, e)
	if err != nil {
		return stepError(err)
	}
	if err := e.Hashes.Save(); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "%s: %d %s, %d records (%d failed) in %s\n", st.Step, st.Items, unit, st.Records, st.Failed, st.Output)
	return nil
}
