package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"synth/dataset"
)

func filterCommand() *cli.Command {
	return &cli.Command{
		Name:      "filter",
		Usage:     "write a copy of a dataset folder without its lowest-scored records",
		ArgsUsage: "IN_DIR",
		Description: "Reads the published dataset IN_DIR (from synth pipeline) and writes --out with the same\n" +
			"layout: the rows of each synthetic configuration whose Long-CLIP score passes (rows without\n" +
			"a score, e.g. failed ones, are dropped; source is copied whole unless named in --datasets),\n" +
			"their images, Parquet files, a card saying how it was filtered, and the viewer. It prints\n" +
			"what it dropped per configuration.\n\n" +
			"   synth filter --min-score 0.25 --out out-filtered/ out/\n" +
			"   synth filter --drop-bottom 10% --out out-top90/ out/",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Required: true, Usage: "the new dataset `FOLDER` (must not exist or be empty)"},
			&cli.StringFlag{Name: "min-score", Usage: "keep rows scoring at least `X`"},
			&cli.StringFlag{Name: "drop-bottom", Usage: "drop the lowest `P%` of each configuration's scored rows"},
			&cli.StringSliceFlag{Name: "datasets", Usage: "configurations to filter (repeatable; default: all but source)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageErrorf("filter takes one argument, the dataset folder, after the flags (see synth help filter)")
			}
			var o dataset.FilterOptions
			for _, f := range []struct {
				name string
				dst  **float64
			}{{"min-score", &o.MinScore}, {"drop-bottom", &o.DropBottom}} {
				if !c.IsSet(f.name) {
					continue
				}
				v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(c.String(f.name)), "%"), 64)
				if err != nil {
					return usageErrorf("--%s %q: not a number", f.name, c.String(f.name))
				}
				*f.dst = &v
			}
			o.Configs = c.StringSlice("datasets")
			if err := o.Validate(); err != nil {
				return usageErrorf("%v", err)
			}
			env(c, false)
			res, err := dataset.Filter(c.Args().First(), c.String("out"), o, version)
			if err != nil {
				return err
			}
			for _, r := range res {
				fmt.Fprintln(c.App.Writer, r)
			}
			fmt.Fprintf(c.App.Writer, "dataset: %s\n", c.String("out"))
			return nil
		},
	}
}
