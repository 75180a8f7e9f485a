package main

import (
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"synth/internal/human"
	"synth/native"
	"synth/weights"
)

func convertCommand() *cli.Command {
	return &cli.Command{
		Name:  "convert",
		Usage: "store a vision model (Long-CLIP, BLIP-2) as GGUF, optionally quantized and with a LoRA merged",
		Description: "Reads --in (a model folder, .safetensors, .pt/.bin or .gguf) and writes --out as GGUF with\n" +
			"the same tensor names and shapes and the model's config.json in the metadata\n" +
			"(synth.config_json), so models load from the GGUF file like from the original.\n" +
			"\n" +
			"--type sets what 2-D Linear weights become (both dims must be multiples of the block\n" +
			"size, 32 for q8_0/q4_0/q4_1/q5_0/q5_1, 256 for q4_k/q5_k/q6_k, whose weights with dims\n" +
			"of 32-multiples only take q4_0 (q4_k) or q8_0 (q5_k, q6_k) instead); norms, biases,\n" +
			"embeddings, position tables, class tokens, projections and everything else stay F32,\n" +
			"integer tensors as they are.\n" +
			"--keep PATTERN keeps matching tensors F32, --quantize PATTERN forces them to --type\n" +
			"(PATTERN is a glob over the full tensor name, * also matches dots; --keep wins).\n" +
			"--lora DIR --merge folds a PEFT LoRA adapter into the weights in float32\n" +
			"(W += scale * B @ A) before quantizing. --dry-run prints the per-tensor plan only.\n" +
			"Quantizing runs ggml's own quantizers (ggml_quantize_chunk), the bytes llama.cpp writes.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "in", Usage: "model folder or weights file", Required: true},
			&cli.StringFlag{Name: "out", Usage: "output .gguf file"},
			&cli.StringFlag{Name: "type", Usage: "f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k or q6_k", Required: true},
			&cli.StringFlag{Name: "lora", Usage: "PEFT adapter folder (adapter_config.json + adapter_model.*) to merge"},
			&cli.BoolFlag{Name: "merge", Usage: "merge --lora into the weights (required with --lora: GGUF stores merged weights)"},
			&cli.StringSliceFlag{Name: "keep", Usage: "keep tensors matching `PATTERN` in F32 (repeatable)"},
			&cli.StringSliceFlag{Name: "quantize", Usage: "store tensors matching `PATTERN` as --type (repeatable)"},
			&cli.StringFlag{Name: "config", Usage: "config.json to store (default: the folder's, or one beside --in)"},
			&cli.StringFlag{Name: "arch", Usage: "general.architecture (default: config.json model_type, or detected)"},
			&cli.BoolFlag{Name: "dry-run", Usage: "print what each tensor would become, write nothing"},
			&cli.BoolFlag{Name: "force", Usage: "replace --out when it exists"},
		},
		Action: runConvert,
	}
}

func runConvert(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageErrorf("convert takes no arguments, got %q (use --in/--out)", c.Args().First())
	}
	dt, err := weights.ParseDType(c.String("type"))
	if err != nil || !weights.Writable(dt) {
		return usageErrorf("--type %q: want f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k or q6_k", c.String("type"))
	}
	out := c.String("out")
	if out == "" && !c.Bool("dry-run") {
		return usageErrorf("--out FILE.gguf is required (or use --dry-run)")
	}
	if _, err := os.Stat(out); err == nil && out != "" && !c.Bool("dry-run") && !c.Bool("force") {
		return usageErrorf("--out %s exists; convert writes a new file (--force replaces it)", out)
	}
	if c.String("lora") != "" && !c.Bool("merge") {
		return usageErrorf("--lora needs --merge: GGUF stores merged weights (a live adapter stays a PEFT folder)")
	}
	if c.Bool("merge") && c.String("lora") == "" {
		return usageErrorf("--merge needs --lora DIR")
	}
	for _, p := range append(c.StringSlice("keep"), c.StringSlice("quantize")...) {
		if _, err := path.Match(p, ""); err != nil {
			return usageErrorf("bad pattern %q: %v", p, err)
		}
	}
	in := c.String("in")
	src, err := weights.Open(in)
	if err != nil {
		return err
	}
	defer src.Close()
	config, err := weights.ConfigFor(in, src, c.String("config"))
	if err != nil {
		return fmt.Errorf("convert: %w", err)
	}
	opts := weights.ConvertOptions{
		Type:         dt,
		Keep:         c.StringSlice("keep"),
		Quantize:     c.StringSlice("quantize"),
		Architecture: c.String("arch"),
		Name:         strings.TrimSuffix(filepath.Base(filepath.Clean(in)), filepath.Ext(in)),
		Config:       config,
		Threads:      threads(c),
		Codec:        native.Codec{Threads: threads(c)},
	}
	if opts.Architecture == "" {
		opts.Architecture = weights.DetectArchitecture(src, config)
	}
	if dir := c.String("lora"); dir != "" {
		a, err := weights.LoadAdapter(dir)
		if err != nil {
			return err
		}
		defer a.Close()
		opts.Adapter = a
	}
	w := c.App.Writer
	if c.Bool("dry-run") {
		plan, err := weights.Plan(src, opts)
		if err != nil {
			return err
		}
		width := 0
		for _, it := range plan {
			width = max(width, len(it.Name))
		}
		for _, it := range plan {
			merged := ""
			if it.Merged {
				merged = " +lora"
			}
			fmt.Fprintf(w, "%-*s  %-18s %-4s -> %-4s%s  (%s)\n", width, it.Name, fmt.Sprint(it.Shape), it.From, it.To, merged, it.Reason)
		}
		printPlanSummary(w, plan, src, -1)
		return nil
	}

	start := time.Now()
	task := env(c, false).Progress.Start("convert", "tensors", 0)
	opts.Progress = func(done, total int, name string, n int64) {
		task.SetTotal(total)
		task.Add(1)
		task.Note(name)
	}
	plan, err := weights.ConvertToGGUF(src, out, opts)
	task.End()
	if err != nil {
		return err
	}
	var size int64 = -1
	if st, err := os.Stat(out); err == nil {
		size = st.Size()
	}
	fmt.Fprintf(w, "wrote %s (architecture %s) in %s\n", out, opts.Architecture, time.Since(start).Round(time.Millisecond))
	printPlanSummary(w, plan, src, size)
	long := 0
	for _, it := range plan {
		if len(it.Name) >= 64 {
			long++
		}
	}
	if long > 0 {
		fmt.Fprintf(w, "note: %d tensor names are 64 bytes or longer; synth reads them, ggml's gguf reader would not\n", long)
	}
	return nil
}

func printPlanSummary(w io.Writer, plan []weights.PlanItem, src *weights.Source, outSize int64) {
	fmt.Fprintf(w, "tensors: %s; input tensor data %s", weights.SummarizePlan(plan), human.Bytes(src.DataBytes()))
	if outSize >= 0 {
		fmt.Fprintf(w, ", output file %s", human.Bytes(outSize))
	}
	fmt.Fprintln(w)
}
