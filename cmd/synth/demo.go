package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/urfave/cli/v2"

	"synth/internal/demo"
)

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "build tiny random-weight models and a small product set, then run the whole pipeline on them",
		Description: "Writes into --out: garment-like product images with source descriptions in Korean\n" +
			"(and English), a glossary, unlabeled products and keyword-list products (data/), tiny\n" +
			"random-weight models in the real formats (an HF BLIP-2 folder with a PEFT LoRA adapter,\n" +
			"a Long-CLIP .pt, a Llama GGUF) (models/) and synth.yaml; then runs its pipeline, which\n" +
			"translates the Korean descriptions, trains a LoRA adapter on them (a few steps),\n" +
			"captions with it, rewrites, evaluates and publishes the\n" +
			"dataset into out/. Running it again recomputes nothing. Outputs made by another version of\n" +
			"synth stop the run, as in synth pipeline; --force recomputes them.\n\n" +
			"Random weights make meaningless text: the demo shows the pipeline, not quality.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Value: "demo", Usage: "demo folder"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed of the drawn products and random weights"},
			&cli.BoolFlag{Name: "force", Usage: "recompute outputs made by another synth version instead of stopping"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			start := time.Now()
			l, built, err := demo.Build(c.String("out"), c.Uint64("seed"))
			if err != nil {
				return err
			}
			if built {
				slog.Info("demo: built data and tiny models", "dir", l.Dir, "took", time.Since(start).Round(time.Millisecond))
			} else {
				slog.Info("demo: data and models already there", "dir", l.Dir)
			}
			fmt.Fprint(c.App.ErrWriter, demoNotice)
			if err := runPipeline(c, l.Config, false, c.Bool("force")); err != nil {
				return err
			}
			fmt.Fprint(c.App.ErrWriter, demoNotice)
			return nil
		},
	}
}

const demoNotice = `
demo: the models here have RANDOM weights, so every translation, caption and rewritten
      text is meaningless and the similarities are noise; the run shows the pipeline, not
      quality (translated.jsonl flags every translation as unfaithful, rightly).
      Real runs need the real models (nothing is ever downloaded; copy them in yourself):
        caption  Salesforce/blip2-opt-2.7b (HF folder) + your PEFT LoRA adapter
        translate, rewrite  a Llama-3.1-8B-Instruct GGUF (e.g. Q4_K_M or Q8_0)
        eval     LongCLIP-L.pt (BeichenZhang/LongCLIP-L) + bpe_simple_vocab_16e6.txt.gz
      Copy demo/synth.yaml, point its paths at them and run: synth pipeline --config FILE

`
