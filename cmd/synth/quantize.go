package main

import (
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"synth/internal/human"
	"synth/llm"
)

func quantizeCommand() *cli.Command {
	return &cli.Command{
		Name:  "quantize",
		Usage: "quantize a Llama GGUF (F16, BF16 or F32) with llama.cpp's quantizer, optionally with an importance matrix",
		Description: "Runs llama.cpp's llama_model_quantize on --in and writes --out: the per-tensor type mix\n" +
			"llama.cpp's quantize tool makes for --type (Q4_K_M, Q5_K_M, Q6_K, Q8_0, Q4_0, IQ4_XS, ...,\n" +
			"spelled as llama-quantize spells them), for labs that hold only an F16 GGUF of the rewrite\n" +
			"model. --imatrix FILE (llama-imatrix output, GGUF or the older .dat) guides the rounding;\n" +
			"the IQ1/IQ2 types and Q2_K_S need one. The vision models are quantized by synth convert.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "in", Usage: "input .gguf (F16, BF16 or F32 weights)", Required: true},
			&cli.StringFlag{Name: "out", Usage: "output .gguf", Required: true},
			&cli.StringFlag{Name: "type", Usage: "llama.cpp file type: Q4_K_M, Q5_K_M, Q6_K, Q8_0, Q4_0, ...", Required: true},
			&cli.StringFlag{Name: "imatrix", Usage: "importance matrix `FILE` from llama-imatrix"},
		},
		Action: runQuantize,
	}
}

func runQuantize(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageErrorf("quantize takes no arguments, got %q (use --in/--out)", c.Args().First())
	}
	if err := llm.CheckQuantType(c.String("type")); err != nil {
		return usageErrorf("--type: %v", err)
	}
	if _, err := os.Stat(c.String("in")); err != nil {
		return fmt.Errorf("quantize: %w", err)
	}
	start := time.Now()
	if err := llm.Quantize(c.String("in"), c.String("out"), c.String("type"), c.String("imatrix"), threads(c)); err != nil {
		return err
	}
	size := "?"
	if st, err := os.Stat(c.String("out")); err == nil {
		size = human.Bytes(st.Size())
	}
	fmt.Fprintf(c.App.Writer, "wrote %s (%s, %s) in %s\n", c.String("out"), c.String("type"), size, time.Since(start).Round(time.Millisecond))
	return nil
}
