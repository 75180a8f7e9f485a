package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"synth/dataset"
)

func viewCommand() *cli.Command {
	return &cli.Command{
		Name:      "view",
		Usage:     "write a static viewer (index.html) of a dataset folder: images, texts, scores",
		ArgsUsage: "OUT_DIR",
		Description: "Writes OUT_DIR/index.html: one self-contained page (no network, no server) holding every\n" +
			"record of the dataset's configurations, 100 a page, beside their images. Sort and filter\n" +
			"by score, coverage, failures, text and dataset; 'compare texts' shows a product's source\n" +
			"text next to its synthetic ones. The filters live in the URL (#dataset=captioned&min=0.2).\n" +
			"--serve ADDR serves the folder on a loopback address (e.g. 127.0.0.1:8080) until Ctrl-C.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "title", Value: "synth dataset", Usage: "the page's title"},
			&cli.StringFlag{Name: "serve", Usage: "also serve the folder over HTTP on `ADDR` (loopback only)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageErrorf("view takes one argument, the dataset folder, after the flags (see synth help view)")
			}
			dir := c.Args().First()
			path, n, err := dataset.WriteView(dir, c.String("title"))
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "viewer: %s (%d records)\n", path, n)
			if addr := c.String("serve"); addr != "" {
				env(c, false) // the logger for --quiet and --log-format
				return dataset.ServeView(c.Context, dir, addr, func(a string) {
					fmt.Fprintf(c.App.Writer, "serving http://%s/%s until Ctrl-C\n", a, dataset.ViewFile)
				})
			}
			return nil
		},
	}
}
