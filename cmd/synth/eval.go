package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"synth/eval"
	"synth/pipeline"
)

func evalCommand() *cli.Command {
	return &cli.Command{
		Name:  "eval",
		Usage: "the paper's Table 1: Long-CLIP image-text similarity, same product vs different products",
		Description: "Samples n products with at least k images from each dataset (seeded), embeds k images\n" +
			"and the product text with Long-CLIP (L2-normalised), and reports for every dataset the\n" +
			"mean and population variance of same-product and different-product cosines (the\n" +
			"paper's columns), with std, bootstrap 95% CIs, AUC P(same > diff), recall@1/5/10 in\n" +
			"both directions, image-image similarity, and the KS and Wasserstein-1 distances of\n" +
			"each dataset's distributions to the first (reference) dataset's (docs/evaluation.md).\n\n" +
			"Embeddings are cached by model, preprocessing and content, so a second eval or an\n" +
			"interrupted one recomputes nothing already done. The report is printed and written\n" +
			"to --out (report.md, report.json, similarity.png).\n\n" +
			"   synth eval --model LongCLIP-L.pt --data source=real.jsonl --data captioned=cap.jsonl --out eval/",
		Flags: append(settingFlags(&pipeline.EvalParams{}),
			&cli.StringSliceFlag{Name: "data", Required: true, Usage: "a dataset `NAME=MANIFEST` (repeatable); the first is the reference (real) set"},
			&cli.StringFlag{Name: "out", Required: true, Usage: "report folder: report.md, report.json, similarity.png"},
			&cli.BoolFlag{Name: "force", Usage: "recompute a report in --out made with other settings or models"},
		),
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			s := &pipeline.Eval{Out: c.String("out")}
			if err := readSettings(c, &s.Params); err != nil {
				return err
			}
			names := map[string]bool{}
			for _, d := range c.StringSlice("data") {
				name, path, ok := strings.Cut(d, "=")
				name = strings.TrimSpace(name)
				if !ok || name == "" || path == "" {
					return usageErrorf("--data %q: want NAME=MANIFEST", d)
				}
				if names[name] {
					return usageErrorf("--data: dataset name %q given twice", name)
				}
				names[name] = true
				s.Datasets = append(s.Datasets, eval.Dataset{Name: name, Manifest: path})
			}
			e := env(c, c.Bool("force"))
			if err := s.Check(e); err != nil {
				return stepError(err)
			}
			if _, err := s.Run(c.Context, e); err != nil {
				return stepError(err)
			}
			if err := e.Hashes.Save(); err != nil {
				return err
			}
			fmt.Fprint(c.App.Writer, s.Report.Markdown())
			fmt.Fprintf(c.App.Writer, "\nreport: %s\n", filepath.Join(s.Out, eval.ReportMarkdown))
			return nil
		},
	}
}
