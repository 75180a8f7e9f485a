package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"synth/dataset"
)

func mergeCommand() *cli.Command {
	return &cli.Command{
		Name:      "merge",
		Usage:     "check that every shard of a sharded run is complete and combine them in manifest order",
		ArgsUsage: "SHARD.jsonl...",
		Description: "A job split with --shard i/n (caption, rewrite, embed) writes one output per shard.\n" +
			"merge reads them all, checks that together they hold exactly one record for every\n" +
			"item of the manifest (no item missing, none twice, none foreign), and writes one\n" +
			"output in manifest order, so the result does not depend on how the job was split.\n" +
			"A missing item is reported with the shard that owns it (with --shards N).\n\n" +
			"   synth merge --manifest products.jsonl --per image --shards 4 --out captioned.jsonl \\\n" +
			"       captioned.0.jsonl captioned.1.jsonl captioned.2.jsonl captioned.3.jsonl",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "manifest", Required: true, Usage: "the manifest the shards were made from"},
			&cli.StringFlag{Name: "per", Value: "product", Usage: "records are per `product` (key id) or per image (key id + image)"},
			&cli.StringFlag{Name: "out", Required: true, Usage: "merged JSONL output (must not exist yet)"},
			&cli.IntFlag{Name: "shards", Usage: "the n of --shard i/n, to name the shard owning a missing item"},
			&cli.BoolFlag{Name: "allow-errors", Value: true, Usage: "records with an \"error\" field count as done (false: they count as missing)"},
		},
		Action: mergeAction,
	}
}

func mergeAction(c *cli.Context) error {
	files := c.Args().Slice()
	if len(files) == 0 {
		return usageErrorf("merge: give the shard outputs as arguments")
	}
	per := c.String("per")
	if per != "product" && per != "image" {
		return usageErrorf("--per %q: want product or image", per)
	}
	if c.Int("shards") < 0 {
		return usageErrorf("--shards must be >= 0")
	}
	out := c.String("out")
	if _, err := os.Stat(out); err == nil {
		return usageErrorf("--out %s exists; merge writes a new file", out)
	}
	n, err := dataset.MergeShards(c.String("manifest"), per == "image", files, out, dataset.MergeOptions{Shards: c.Int("shards"), AllowErrors: c.Bool("allow-errors")})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "merge: %d records from %d files -> %s\n", n, len(files), out)
	return nil
}
