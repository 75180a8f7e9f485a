package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"synth/eval/quant"
	"synth/pipeline/quantbench"
)

func benchQuantCommand() *cli.Command {
	return &cli.Command{
		Name:  "quant",
		Usage: "what each quantization level costs and changes, for every model, on your own sample",
		Description: "Compares each model given with its reference (the model as given, float weights in f32) at every\n" +
			"--levels level, on the first --n products of --sample: file size, load time, speed on --device, peak\n" +
			"memory; Long-CLIP: embedding cosine to the reference, the change in every Table 1 number, rank\n" +
			"agreement of per-record scores; BLIP-2 and the Llama: teacher-forced next-token KL and top-1\n" +
			"agreement, exact matches and chrF of greedy outputs; the Llama: the change in keyword coverage.\n" +
			"Vision levels are converted from the reference (as synth convert does) and removed after; Llama\n" +
			"levels are the GGUF files given with --rewrite-level. A level a model cannot take is listed with\n" +
			"the reason. --out gets report.md, report.json and pareto-ROLE.png (size and speed against fidelity).\n\n" +
			"   synth bench quant --caption-model blip2/ --rewrite-model llama-f16.gguf --rewrite-level q4_k=llama-q4_k_m.gguf \\\n" +
			"     --eval-model LongCLIP-L.pt --levels f16,q8_0,q4_0 --sample sample.jsonl --out quant/",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "caption-model", Usage: "BLIP-2 folder or GGUF"},
			&cli.StringFlag{Name: "caption-tokenizer", Usage: "`DIR` with vocab.json and merges.txt (default: beside the model)"},
			&cli.StringFlag{Name: "rewrite-model", Usage: "the Llama GGUF that is the reference"},
			&cli.StringSliceFlag{Name: "rewrite-level", Usage: "the Llama at a level: `LEVEL=FILE.gguf` (repeatable)"},
			&cli.StringFlag{Name: "eval-model", Usage: "Long-CLIP folder or weights file"},
			&cli.StringFlag{Name: "eval-vocab", Usage: "Long-CLIP's merges `FILE` (default: " + clipVocabName + " beside the model)"},
			&cli.StringFlag{Name: "levels", Value: strings.Join(quantbench.DefaultLevels, ","), Usage: "comma list of levels"},
			&cli.StringFlag{Name: "sample", Required: true, Usage: "product `MANIFEST` (JSONL)"},
			&cli.IntFlag{Name: "n", Value: quantbench.DefaultN, Usage: "products to use"},
			&cli.StringFlag{Name: "out", Required: true, Usage: "report `DIR`"},
			&cli.IntFlag{Name: "batch", Value: 0, Usage: "images per forward pass (0: 8 on a CPU, 64 on a GPU)"},
			&cli.IntFlag{Name: "caption-tokens", Value: quantbench.DefaultCaptionTokens, Usage: "longest greedy caption"},
			&cli.IntFlag{Name: "rewrite-tokens", Value: quantbench.DefaultRewriteTokens, Usage: "longest greedy rewrite"},
			&cli.Uint64Flag{Name: "seed", Usage: "seed of Long-CLIP's Table 1 sample"},
			deviceFlag(),
		},
		Action: runBenchQuant,
	}
}

func runBenchQuant(c *cli.Context) error {
	if c.Args().Present() {
		return usageErrorf("bench quant takes no arguments, got %q", c.Args().First())
	}
	files, err := quantbench.ParseLevelFiles(c.StringSlice("rewrite-level"))
	if err != nil {
		return usageErrorf("--rewrite-level: %v", err)
	}
	levels, err := quantbench.ParseLevels(c.String("levels"), files)
	if err != nil {
		return usageErrorf("--levels: %v", err)
	}
	dev, err := openDevice(c)
	if err != nil {
		return err
	}
	batch, err := deviceBatch(c, dev, 8, 64)
	if err != nil {
		return err
	}
	cfg := quantbench.Config{Sample: c.String("sample"), N: c.Int("n"), Levels: levels, Out: c.String("out"), Device: dev,
		Threads: threads(c), Batch: batch, CaptionTokens: c.Int("caption-tokens"), RewriteTokens: c.Int("rewrite-tokens"), Seed: c.Uint64("seed"),
		Progress: func(s string) { fmt.Fprintf(c.App.ErrWriter, "bench quant: %s\n", s) }}
	if m := c.String("caption-model"); m != "" {
		cfg.Caption = &quantbench.Caption{Model: m, Tokenizer: c.String("caption-tokenizer")}
	}
	if m := c.String("rewrite-model"); m != "" {
		cfg.Rewrite = &quantbench.Rewrite{Model: m, Files: files}
	} else if len(files) > 0 {
		return usageErrorf("--rewrite-level needs --rewrite-model (the reference)")
	}
	if m := c.String("eval-model"); m != "" {
		cfg.Eval = &quantbench.Eval{Model: m, Vocab: c.String("eval-vocab")}
	}
	if err := cfg.Validate(); err != nil {
		return usageErrorf("%v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := quantbench.Run(ctx, cfg)
	if err != nil {
		return fmt.Errorf("bench quant: %w", err)
	}
	if err := rep.WriteFiles(cfg.Out); err != nil {
		return err
	}
	fmt.Fprint(c.App.Writer, rep.Markdown())
	fmt.Fprintf(c.App.ErrWriter, "bench quant: report in %s\n", filepath.Join(cfg.Out, quant.ReportMarkdown))
	return nil
}
