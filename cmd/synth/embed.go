package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"synth/dataset"
	"synth/pipeline"
)

func embedCommand() *cli.Command {
	return &cli.Command{
		Name:      "embed",
		Usage:     "embed images or texts with Long-CLIP",
		ArgsUsage: " ",
		Description: "Runs Long-CLIP's image or text tower over one input source and writes one embedding per item.\n" +
			"\n" +
			"Inputs (exactly one): --image FILE (repeatable); --images MANIFEST (a JSONL product manifest,\n" +
			"every image of every product); --text STR (repeatable); --texts FILE (a .jsonl manifest: each\n" +
			"product's \"text\"; any other file: one text a line).\n" +
			"\n" +
			"--model is a folder (config.json, one checkpoint file, bpe_simple_vocab_16e6.txt.gz), or a\n" +
			"LongCLIP-L.pt / .safetensors / .gguf file (a config.json beside it is read; GGUF from\n" +
			"synth convert carries its own). Images go through upstream's transform (PIL bicubic resize,\n" +
			"center crop, CLIP normalisation); texts through the CLIP tokenizer with 248-token truncation.\n" +
			"\n" +
			"--out FILE.jsonl writes one record per item, {\"id\", \"image\" or \"text\", \"embedding\", \"model\"}\n" +
			"or {..., \"error\"} for an item that failed (a broken image never stops the run; --fail-fast\n" +
			"does). A rerun with the same --out skips the items already written and retries the failed\n" +
			"ones. --out FILE.npy (float32 [N, E]) or FILE.safetensors (\"embeddings\" [N, E], \"valid\" [N])\n" +
			"are written at the end, failed rows NaN, with FILE.items.jsonl naming each row's item.\n" +
			"Embeddings are L2-normalised unless --normalize=false.",
		Flags: append(settingFlags(&pipeline.LongCLIPParams{}),
			&cli.StringSliceFlag{Name: "image", Usage: "an image file (repeatable)"},
			&cli.StringFlag{Name: "images", Usage: "a JSONL product manifest whose images to embed"},
			&cli.StringSliceFlag{Name: "text", Usage: "a text (repeatable)"},
			&cli.StringFlag{Name: "texts", Usage: "a .jsonl manifest (product texts) or a file with one text a line"},
			&cli.StringFlag{Name: "out", Usage: "output `FILE`: .jsonl, .npy or .safetensors", Required: true},
			&cli.BoolFlag{Name: "normalize", Value: true, Usage: "L2-normalise the embeddings"},
			&cli.StringFlag{Name: "shard", Usage: "embed only shard `i/n` of the items (by product id, or by path / line)"},
			&cli.BoolFlag{Name: "fail-fast", Usage: "stop at the first item that fails (exit 1) instead of recording it"},
		),
		Action: runEmbed,
	}
}

func runEmbed(c *cli.Context) error {
	if c.Args().Present() {
		return usageErrorf("embed takes no arguments (use --image, --images, --text or --texts), got %q", c.Args().First())
	}
	s := &pipeline.Embed{Out: c.String("out"), Normalize: c.Bool("normalize"), FailFast: c.Bool("fail-fast"),
		Input: pipeline.EmbedInput{Images: c.StringSlice("image"), Manifest: c.String("images"), Texts: c.StringSlice("text"), TextsFile: c.String("texts")}}
	if err := readSettings(c, &s.Params); err != nil {
		return err
	}
	shard, err := dataset.ParseShard(c.String("shard"))
	if err != nil {
		return usageErrorf("--shard: %v", err)
	}
	s.Shard = shard
	e := env(c, false)
	if err := s.Check(e); err != nil {
		return stepError(err)
	}
	st, err := s.Run(c.Context, e)
	if err != nil {
		return stepError(err)
	}
	kind := "images"
	if len(s.Input.Texts) > 0 || s.Input.TextsFile != "" {
		kind = "texts"
	}
	fmt.Fprintf(c.App.Writer, "embedded %d of %d %s into %s (%d failed)\n", st.Done-st.DoneFailed, st.Items-st.Records+st.Done, kind, st.Output, st.DoneFailed)
	return nil
}
