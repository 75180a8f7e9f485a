package main

import (
	"encoding/json"

	"github.com/urfave/cli/v2"

	"synth/weights"
)

func inspectCommand() *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "show a checkpoint's format, metadata, tensors and parameter count",
		ArgsUsage: "PATH",
		Description: "PATH is a model folder (config.json + safetensors, sharded or not, or .bin/.pt),\n" +
			"a .safetensors, .pt/.bin (torch.save zip) or .gguf file, or a PEFT adapter folder.\n" +
			"Prints the format, the files (shards), the config, the metadata (long arrays such as\n" +
			"vocabularies are summarised), every tensor with dtype, shape (PyTorch order, also for\n" +
			"GGUF) and byte size, and the parameter count. An adapter folder also shows the LoRA\n" +
			"targets and scaling. Nothing is executed: .pt pickles go through an allow-list.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageErrorf("inspect takes one PATH (see synth inspect --help)")
			}
			r, err := weights.Inspect(c.Args().First())
			if err != nil {
				return err
			}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			r.WriteText(c.App.Writer)
			return nil
		},
	}
}
