package quantbench

import (
	"context"
	"os"
	"strconv"
	"testing"

	"synth/internal/demo"
	"synth/weights"
)

// BenchmarkDemoModels is the goal: `bench quant` of all three tiny demo models
// on 50 products at the five levels of DefaultLevels (the Llama at the levels its GGUF
// files are written at here), on the cpu with every thread. Run it once:
//
//	go test -run '^$' -bench DemoModels -benchtime 1x ./pipeline/quantbench/
func BenchmarkDemoModels(b *testing.B) {
	dir := b.TempDir()
	in, err := demo.WriteQuantBench(dir, DefaultN, []weights.DType{weights.F16, weights.Q8_0, weights.Q4_0}, 1)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		rep, err := Run(context.Background(), Config{Sample: in.Sample, Levels: DefaultLevels, Out: b.TempDir(), Threads: benchThreads(),
			Caption: &Caption{Model: in.BLIP2}, Eval: &Eval{Model: in.LongCLIP},
			Rewrite: &Rewrite{Model: in.Llama, Files: in.LlamaLevels}})
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range rep.Models {
			b.ReportMetric(m.Seconds, m.Role+"-s")
		}
	}
}

// benchThreads is $SYNTH_BENCH_THREADS (0 or unset: every thread).
func benchThreads() int {
	n, _ := strconv.Atoi(os.Getenv("SYNTH_BENCH_THREADS"))
	return n
}
