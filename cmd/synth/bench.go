package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"synth/native"
	"synth/native/ggml"
)

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "measure synth's compute at the real model shapes",
		Subcommands: []*cli.Command{
			{
				Name:  "kernels",
				Usage: "GFLOP/s and GB/s of every kernel at the real model shapes, per kernel variant",
				Description: "Runs each op at the shapes of ViT-L/14, EVA ViT-g, the Q-Former and OPT-2.7B decoding,\n" +
					"for each kernel variant (avx512, avx2; ref with --variants ref), next to anchors measured\n" +
					"in the same run: the FMA peak of each variant, the STREAM copy bandwidth, ggml's CPU\n" +
					"mul_mat on the same quantized weights, and OpenBLAS cblas_sgemm when synth was built\n" +
					"with -tags openblas. Compare machines by the ratio columns: ours/OpenBLAS for GEMMs,\n" +
					"ggml's time / ours for batched quantized decoding, GB/s over copy bandwidth for\n" +
					"single-sequence decoding (memory-bound), attention GFLOP/s over the variant's GEMM\n" +
					"rate. Each number is the best of repeated calls within --min-time. Takes a few\n" +
					"minutes. SYNTH_KERNELS=avx2 measures the AVX2 kernels alone on an AVX-512 machine.",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
					&cli.StringSliceFlag{Name: "variants", Usage: "kernel variants to run (default: SYNTH_KERNELS's, else every one this CPU runs but ref)"},
					&cli.IntFlag{Name: "batch", Value: 1, Usage: "images per encoder pass (M = 257 x batch)"},
					&cli.DurationFlag{Name: "min-time", Value: 300_000_000, Usage: "time spent per measurement"},
				},
				Action: benchKernels,
			},
			benchQuantCommand(),
		},
	}
}

func benchKernels(c *cli.Context) error {
	if c.Args().Present() {
		return usageErrorf("bench kernels takes no arguments, got %q", c.Args().First())
	}
	if c.Int("batch") < 1 {
		return usageErrorf("--batch must be >= 1, got %d", c.Int("batch"))
	}
	opts := native.BenchOptions{Threads: threads(c), Batch: c.Int("batch"), MinTime: c.Duration("min-time"), MatMul: ggml.Anchor{}}
	if vs := c.StringSlice("variants"); len(vs) > 0 {
		have := native.Variants()
		for _, v := range vs {
			if !slices.Contains(have, v) {
				return usageErrorf("--variants: %q is not one of %s (this CPU and build)", v, strings.Join(have, ", "))
			}
		}
		opts.Variants = vs
	}
	if !c.Bool("json") {
		task := env(c, false).Progress.Start("bench kernels", "measurements", 0)
		opts.Progress = func(msg string) {
			task.Note(msg)
			task.Add(1)
		}
		defer task.End()
	}
	rep, err := native.BenchKernels(opts)
	if err != nil {
		return fmt.Errorf("bench kernels: %w", err)
	}
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printBench(c.App.Writer, rep)
	return nil
}

func printBench(w io.Writer, rep *native.BenchReport) {
	fmt.Fprintf(w, "kernels: variants %s, %d threads, cpu features %s\n", strings.Join(rep.Variants, " "), rep.Threads, strings.Join(rep.CPU.Features, " "))
	fmt.Fprintf(w, "anchor:  %s\n", rep.Anchor)
	fmt.Fprintln(w, "ratio: vs openblas = its time / ours (same op); vs copy = GB/s / STREAM copy GB/s; vs gemm = GFLOP/s / this variant's f32 GEMM (vit-l qkv)")
	fmt.Fprintln(w, "peak: GFLOP/s / the FMA peak measured for the variant (openblas: the best variant's)")
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "op\tmodel\tshape\tdtype\tvariant\tms\tGFLOP/s\tGB/s\tvs\tratio\tpeak\t")
	num := func(v float64, prec int) string {
		if v == 0 {
			return "-"
		}
		return fmt.Sprintf("%.*f", prec, v)
	}
	for _, r := range rep.Results {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.3f\t%s\t%s\t%s\t%s\t%s\t\n", r.Op, r.Model, r.Shape, r.DType, r.Variant, r.Seconds*1e3,
			num(r.GFLOPS, 1), num(r.GBps, 1), r.Anchor, num(r.Ratio, 2), num(r.PeakFraction, 2))
	}
	tw.Flush()
}
