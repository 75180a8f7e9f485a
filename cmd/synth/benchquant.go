package main

import (
	"fmt"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"synth/eval/quant"
	"synth/pipeline/quantbench"
)

func benchQuantCommand() *cli.Command {
	return &cli.Command{
		Name:  "quant",
		Usage: "what each quantization level costs and changes, for every model, on your own sample",
		Description: "Compares each model given with its reference (float weights in f32) at every level, on the first\n" +
			"--n products of --sample: size, load time, speed, peak memory, and how far the outputs move\n" +
			"(package pipeline/quantbench says how). Vision levels are converted from the reference; the\n" +
			"Llama's are the GGUFs given. --out gets report.md, report.json and pareto-ROLE.png.\n\n" +
			"   synth bench quant --caption-model blip2/ --eval-model LongCLIP-L.pt --rewrite-model llama-f16.gguf \\\n" +
			"     --rewrite-levels q8_0=llama-q8_0.gguf,q4_k=llama-q4_k_m.gguf --sample sample.jsonl --out quant/",
		Flags: append(settingFlags(&quantbench.Params{}), &cli.StringFlag{Name: "out", Required: true, Usage: "report `DIR`"}),
		Action: func(c *cli.Context) error {
			var p quantbench.Params
			if err := noArgs(c); err != nil {
				return err
			}
			if err := readSettings(c, &p); err != nil {
				return err
			}
			e := env(c, false)
			cfg, err := p.Config(c.String("out"), e.Threads, e.Progress)
			if err != nil {
				return stepError(err)
			}
			rep, err := quantbench.Run(c.Context, cfg)
			if err != nil {
				return err
			}
			fmt.Fprint(c.App.Writer, rep.Markdown())
			fmt.Fprintf(c.App.Writer, "\nreport: %s\n", filepath.Join(cfg.Out, quant.ReportMarkdown))
			return nil
		},
	}
}
