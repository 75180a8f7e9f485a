package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"synth/pipeline"
)

func pipelineCommand() *cli.Command {
	return &cli.Command{
		Name:  "pipeline",
		Usage: "run the paper's method end to end from one config file: [translate -> finetune ->] caption -> rewrite -> eval -> dataset",
		Description: "Reads a YAML config (see synth.example.yaml: every key is documented there), checks every\n" +
			"model, adapter, manifest and setting of every step, then runs (translate: and finetune:\n" +
			"first when configured: the Korean source set translated -> OUTPUT/translated.jsonl, and a\n" +
			"LoRA adapter trained on it -> OUTPUT/adapter/, which caption then uses)\n" +
			"   1. caption  the unlabeled product images          -> OUTPUT/captioned.jsonl\n" +
			"   2. rewrite  the keyword-list products             -> OUTPUT/rewritten.jsonl\n" +
			"   3. eval     source vs captioned vs rewritten      -> OUTPUT/eval/, a score per record\n" +
			"and publishes OUTPUT as a Hugging Face imagefolder dataset (one folder per configuration\n" +
			"with its images and metadata.jsonl, parquet/, a card README.md, the viewer index.html;\n" +
			"docs/dataset.md). Each step resumes where a killed run stopped and recomputes nothing\n" +
			"already made the same way; output made with other settings or models stops the run with\n" +
			"what changed, or is recomputed with --force (docs/provenance.md). The keys of the caption,\n" +
			"rewrite and eval sections are the flags of those commands.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Required: true, Usage: "pipeline config `FILE` (YAML)"},
			&cli.BoolFlag{Name: "dry-run", Usage: "check everything and print the plan; run nothing"},
			&cli.BoolFlag{Name: "force", Usage: "recompute outputs made with other settings or models instead of stopping"},
			&cli.StringFlag{Name: "models-lock", Usage: "verify the models against this `FILE` (synth models lock) before any work; overrides the config's models-lock:"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			return runPipeline(c, c.String("config"), c.Bool("dry-run"), c.Bool("force"))
		},
	}
}

func runPipeline(c *cli.Context, config string, dryRun, force bool) error {
	cfg, err := pipeline.ReadConfig(config)
	if err != nil {
		return configError(err)
	}
	if c.IsSet("models-lock") { // from the command line: relative to the working directory
		if cfg.ModelsLock, err = filepath.Abs(c.String("models-lock")); err != nil {
			return fmt.Errorf("pipeline: %w", err)
		}
	}
	plan := pipeline.NewPlan(cfg)
	e := env(c, force)
	if cfg.Threads > 0 {
		e.Threads = cfg.Threads
	}
	w := c.App.Writer
	if dryRun {
		if err := plan.Check(e); err != nil {
			return configError(err)
		}
		fmt.Fprintf(w, "plan for %s (every model, adapter, manifest and setting checked):\n", config)
		for _, l := range plan.Describe() {
			fmt.Fprintf(w, "  %s\n", l)
		}
		return e.Hashes.Save()
	}
	start := time.Now()
	res, err := plan.Run(c.Context, e)
	if err != nil {
		return configError(err)
	}
	e.Log.Info("pipeline: done", "took", time.Since(start).Round(time.Second), "rows", res.Rows)
	fmt.Fprintf(w, "dataset: %s\ncard:    %s\nviewer:  %s\n", res.Out, res.Card, res.View)
	if res.Report != "" {
		fmt.Fprintf(w, "report:  %s\n", res.Report)
	}
	return nil
}

// configError makes a problem in synth.yaml a usage error.
func configError(err error) error {
	var ce *pipeline.ConfigError
	if errors.As(err, &ce) {
		return usageError{err}
	}
	return stepError(err)
}
