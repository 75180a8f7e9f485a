package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"synth/pipeline"
	"synth/pipeline/finetune"
)

func finetuneCommand() *cli.Command {
	return &cli.Command{
		Name:      "finetune",
		Usage:     "train a BLIP-2 LoRA adapter on a product manifest's image-text pairs (PEFT format)",
		UsageText: "synth finetune --model BLIP2_DIR|FILE.gguf --data MANIFEST --out ADAPTER_DIR [options]",
		Description: "The paper's first step: BLIP-2 fine-tuned with LoRA on the source products, so that its\n" +
			"captions then read like them. Each product of --data gives one example per image, its\n" +
			"caption from --text-field: BOS + caption + EOS (--no-eos drops the EOS), right-padded.\n" +
			"The loss is Blip2ForConditionalGeneration's: mean cross-entropy over the caption's next\n" +
			"tokens (the query tokens, a --prompt and padding are never targets). Only the LoRA\n" +
			"matrices train (F32, with AdamW's state); the model stays frozen in --dtype.\n" +
			"\n" +
			"The frozen vision encoder and Q-Former give each image the same 32 query embeddings at\n" +
			"every epoch, so they are computed once and cached, keyed by the model and the image's\n" +
			"content (--cache; default OUT.prefix-cache beside OUT); training then runs the language\n" +
			"model only. With LoRA on the Q-Former (--target-modules query,value, ...) they are\n" +
			"recomputed every step.\n" +
			"\n" +
			"OUT is a PEFT adapter folder (adapter_config.json, adapter_model.safetensors) that HF peft\n" +
			"and `synth caption --lora OUT` load. It also holds train_log.jsonl (step, loss, val_loss,\n" +
			"lr, grad_norm, tokens/s), loss.png, summary.json, and checkpoint.safetensors (adapter,\n" +
			"optimizer state and position, every --save-every steps). A killed run continues with\n" +
			"--resume to exactly the adapter an uninterrupted run gives; without --resume a folder\n" +
			"that holds a run is refused. Ctrl-C writes a checkpoint before it stops.\n" +
			"\n" +
			"Defaults follow the BLIP-2 PEFT captioning recipe (r 16, alpha 32, dropout 0.05 on\n" +
			"q_proj,k_proj, lr 5e-4) under transformers Trainer's defaults (3 epochs, AdamW, linear\n" +
			"decay, gradient norm clipped to 1); docs/finetune.md maps every flag to HF's names.",
		Flags: append(settingFlags(&pipeline.FinetuneParams{}),
			&cli.StringFlag{Name: "data", Usage: "product manifest (JSONL): images plus text", Required: true},
			&cli.StringFlag{Name: "out", Usage: "the adapter folder to write", Required: true},
			&cli.BoolFlag{Name: "resume", Usage: "continue the run in --out from its checkpoint (or keep it when finished)"},
		),
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			s := &pipeline.Finetune{Data: c.String("data"), Out: c.String("out"), Resume: c.Bool("resume")}
			if err := readSettings(c, &s.Params); err != nil {
				return err
			}
			e := env(c, false)
			if err := s.Check(e); err != nil {
				return stepError(err)
			}
			if _, err := s.Run(c.Context, e); err != nil {
				if errors.Is(err, finetune.ErrStopped) {
					return fmt.Errorf("%w (%s)", err, s.Out)
				}
				return stepError(err)
			}
			printSummary(c, s.Out, s.Summary)
			return e.Hashes.Save()
		},
	}
}

func printSummary(c *cli.Context, out string, s *finetune.Summary) {
	w := c.App.Writer
	if s.Reused {
		fmt.Fprintf(w, "finetune: %s already holds this run, finished (%d steps); nothing to do\n", out, s.Steps)
	}
	fmt.Fprintf(w, "adapter:  %s (%s)\n", out, s.Params)
	fmt.Fprintf(w, "examples: %d training, %d validation, from %d products (%d captions cut at --max-length)\n", s.Examples, s.ValExamples, s.Products, s.Truncated)
	fmt.Fprintf(w, "trained:  %d steps (%.2f epochs), %d text tokens", s.Steps, s.Epochs, s.Tokens)
	if !s.Reused {
		fmt.Fprintf(w, " in %.1f s (%.1f tokens/s)", s.Seconds, s.TokensPerSec)
	}
	fmt.Fprintf(w, "\nloss:     %.4f -> %.4f", s.FirstLoss, s.FinalLoss)
	if s.FinalValLoss != nil {
		fmt.Fprintf(w, " (validation %.4f)", *s.FinalValLoss)
	}
	fmt.Fprintln(w)
}
