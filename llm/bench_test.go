package llm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"synth/internal/benchflag"
	"synth/internal/llamagguf"
	"synth/llm/llamacpp"
	"synth/weights"
)

// Benchmarks run on random-weight GGUFs with the real shapes of Llama-3.2-1B and
// Llama-3.1-8B, written on first use into the folder $SYNTH_BENCH_MODELS names (0.7 to
// 8.5 GB each, 15 GB for all four; never committed: delete the folder afterwards).
// Without it they skip. $SYNTH_BENCH_THREADS sets llama.cpp's threads (default: all
// CPUs), $SYNTH_BENCH_TOKENS the tokens each product generates in BenchmarkGenerate
// (default 32; fewer keeps an 8B run short on a small machine), $SYNTH_BENCH_PARALLEL the
// slot counts (default 1,4,8) and $SYNTH_BENCH_GPU_LAYERS the layers offloaded to a GPU
// backend module (default 0; -1 all).
//
//	SYNTH_BENCH_MODELS=/tmp/synth-bench-models go test -run '^$' -bench 'Generate/model=1b' -benchtime 1x ./llm/

var benchModels = []struct {
	name string
	cfg  llamagguf.Config
}{
	{"1b", llamagguf.Llama32_1B},
	{"8b", llamagguf.Llama31_8B},
}

var benchTypes = []weights.DType{weights.Q4_0, weights.Q8_0}

func benchModel(b *testing.B, name string, cfg llamagguf.Config, dt weights.DType) *llamacpp.Model {
	b.Helper()
	dir := os.Getenv("SYNTH_BENCH_MODELS")
	if dir == "" {
		b.Skip("set SYNTH_BENCH_MODELS to a folder with room for the generated models (up to 15 GB)")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	cfg.DType = dt
	path := filepath.Join(dir, fmt.Sprintf("%s-%s.gguf", cfg.Name, dt))
	if _, err := os.Stat(path); err != nil {
		start := time.Now()
		if err := llamagguf.Write(path, cfg); err != nil {
			b.Fatal(err)
		}
		b.Logf("wrote %s in %s", path, time.Since(start).Round(time.Second))
	}
	m, err := llamacpp.LoadModel(path, llamacpp.ModelParams{GPULayers: benchEnvInt(b, "SYNTH_BENCH_GPU_LAYERS", 0)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(m.Close)
	return m
}

// benchEnvInt is the integer in the environment variable name, or def when unset.
func benchEnvInt(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		b.Fatalf("%s=%q: want an integer", name, s)
	}
	return n
}

// benchParallel is $SYNTH_BENCH_PARALLEL, a comma list of slot counts (default 1,4,8;
// a GPU run takes 1,16,64).
func benchParallel(b *testing.B) []int {
	out, err := benchflag.Ints(os.Getenv("SYNTH_BENCH_PARALLEL"), 1, 4, 8)
	if err != nil {
		b.Fatalf("SYNTH_BENCH_PARALLEL: %v", err)
	}
	return out
}

func benchThreads(b *testing.B) int {
	if s := os.Getenv("SYNTH_BENCH_THREADS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("SYNTH_BENCH_THREADS=%q", s)
		}
		return n
	}
	return runtime.NumCPU()
}

// benchExamples are six few-shot pairs in the rewrite prompt's style: the paper's
// setting of a handful of style examples.
var benchExamples = []Example{
	{Keywords: []string{"blue jeans", "cotton", "slim fit"}, Text: "These slim-fit blue jeans are cut from soft, breathable cotton denim, with a clean modern line from hip to ankle that pairs as easily with sneakers as with boots."},
	{Keywords: []string{"wool", "coat", "double breasted", "long length"}, Text: "This long double-breasted coat is tailored in warm wool, with a structured shoulder and a generous length that keeps out the cold on winter days in the city."},
	{Keywords: []string{"red", "linen", "midi dress", "puff sleeves", "v-neck"}, Text: "A red linen midi dress with soft puff sleeves and a flattering v-neck, light and airy for warm summer afternoons and easy to dress up for an evening out."},
	{Keywords: []string{"black", "leather", "ankle boots", "block heel", "side zip"}, Text: "These black leather ankle boots stand on a steady block heel and close with a side zip, a versatile pair that carries an outfit from the office to the weekend."},
	{Keywords: []string{"white", "cotton", "t-shirt", "crew neck", "relaxed fit"}, Text: "A white cotton t-shirt with a classic crew neck and a relaxed fit, soft against the skin and made to be worn on its own or layered under a jacket."},
	{Keywords: []string{"green", "silk", "scarf", "floral print"}, Text: "This green silk scarf is printed with a delicate floral pattern and has a smooth, fluid drape that adds a touch of colour to a coat or a plain blouse."},
}

// BenchmarkGenerate measures generation tokens/s of the Generator at parallel 1, 4
// and 8, and, in the same iterations on the same context, a bare llama_decode loop of
// the same batch shape (each product's 16-token prompt in one batch, then one token
// per slot per step, no sampling): bare_tok/s, and overhead_% = our time / bare time - 1.
// On a busy machine that A/B ratio is noisy, so the same overhead is also measured
// inside our loop, on the same steps: loop_overhead_% = (Run's time - its time in
// llama_decode) / its time in llama_decode, of which sample_% is the sampler chains.
func BenchmarkGenerate(b *testing.B) {
	const suffixLen = 16
	genTokens := 32
	if s := os.Getenv("SYNTH_BENCH_TOKENS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 2 {
			b.Fatalf("SYNTH_BENCH_TOKENS=%q: want an integer >= 2", s)
		}
		genTokens = n
	}
	for _, bm := range benchModels {
		for _, dt := range benchTypes {
			b.Run(fmt.Sprintf("model=%s/type=%s", bm.name, dt), func(b *testing.B) {
				m := benchModel(b, bm.name, bm.cfg, dt)
				p, err := NewPrompter(m, PromptConfig{Examples: benchExamples[:1]})
				if err != nil {
					b.Fatal(err)
				}
				suffix, err := p.Suffix(Item{Keywords: []string{"navy", "wool", "cardigan", "gold buttons"}})
				if err != nil {
					b.Fatal(err)
				}
				for len(suffix) < suffixLen {
					suffix = append(suffix, suffix...)
				}
				suffix = suffix[:suffixLen]
				ban := map[llamacpp.Token]float32{}
				for _, t := range m.EOGTokens() {
					ban[t] = float32(-1e30) // fixed-length generations, as the bare loop
				}
				for _, parallel := range benchParallel(b) {
					b.Run(fmt.Sprintf("parallel=%d", parallel), func(b *testing.B) {
						g, err := NewGenerator(m, p.Prefix(), Options{
							Parallel: parallel, MaxTokens: genTokens, CtxPerSeq: len(p.Prefix()) + suffixLen + genTokens,
							Threads:  benchThreads(b),
							Sampling: llamacpp.SamplerParams{Temperature: 0.6, TopK: 40, TopP: 0.9, LogitBias: ban},
						})
						if err != nil {
							b.Fatal(err)
						}
						defer g.Close()
						var bare, ours time.Duration
						before := g.Stats()
						for b.Loop() {
							start := time.Now()
							bareLoop(b, g, suffix, parallel, genTokens)
							bare += time.Since(start)

							start = time.Now()
							reqs := make([]Request, parallel)
							for i := range reqs {
								reqs[i] = Request{ID: strconv.Itoa(i), Suffix: suffix, Seed: uint32(i)}
							}
							i := 0
							err := g.Run(context.Background(), func() (Request, bool) {
								if i == len(reqs) {
									return Request{}, false
								}
								i++
								return reqs[i-1], true
							}, func(r Result) error {
								if r.Err != nil || len(r.Tokens) != genTokens {
									return fmt.Errorf("%s: %d tokens, %v", r.Req.ID, len(r.Tokens), r.Err)
								}
								return nil
							})
							if err != nil {
								b.Fatal(err)
							}
							ours += time.Since(start)
						}
						st := g.Stats()
						decode := (st.DecodeTime - before.DecodeTime).Seconds()
						tokens := float64(b.N * parallel * genTokens)
						b.ReportMetric(tokens/ours.Seconds(), "tok/s")
						b.ReportMetric(tokens/bare.Seconds(), "bare_tok/s")
						b.ReportMetric(100*(ours.Seconds()/bare.Seconds()-1), "overhead_%")
						b.ReportMetric(100*(ours.Seconds()-decode)/decode, "loop_overhead_%")
						b.ReportMetric(100*(st.SampleTime-before.SampleTime).Seconds()/decode, "sample_%")
					})
				}
			})
		}
	}
}

// bareLoop is the anchor: the Generator's decode calls for `parallel` products, made
// directly on its context with a constant token instead of sampled ones.
func bareLoop(b *testing.B, g *Generator, suffix []llamacpp.Token, parallel, genTokens int) {
	bt := g.batch
	bt.Clear()
	for s := 0; s < parallel; s++ {
		for i, t := range suffix {
			bt.Add(t, g.prefix+i, s, i == len(suffix)-1)
		}
	}
	if err := g.ctx.Decode(bt); err != nil {
		b.Fatal(err)
	}
	for step := 1; step < genTokens; step++ {
		bt.Clear()
		for s := 0; s < parallel; s++ {
			bt.Add(suffix[step%len(suffix)], g.prefix+len(suffix)+step-1, s, true)
		}
		if err := g.ctx.Decode(bt); err != nil {
			b.Fatal(err)
		}
	}
	for s := 0; s < parallel; s++ {
		if err := g.ctx.SeqRemove(s, g.prefix, -1); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSharedPrefix measures what decoding the system turn and six examples once
// saves: prefix_tokens of prefill per product, the time that prefill takes
// (prefix_ms), and avoided_% of all prompt tokens over 8 products (a product's own
// turn is suffix_tokens). Token counts are those of the random model's small
// vocabulary, which splits uncommon words into more pieces than Llama 3's 128K-token
// one: real prefixes are shorter.
func BenchmarkSharedPrefix(b *testing.B) {
	const products = 8
	for _, bm := range benchModels {
		b.Run(fmt.Sprintf("model=%s/type=%s/examples=6", bm.name, weights.Q4_0), func(b *testing.B) {
			m := benchModel(b, bm.name, bm.cfg, weights.Q4_0)
			p, err := NewPrompter(m, PromptConfig{Examples: benchExamples, DateLines: true})
			if err != nil {
				b.Fatal(err)
			}
			suffix, err := p.Suffix(Item{Keywords: []string{"navy", "wool", "cardigan", "gold buttons"}, Category: "knitwear"})
			if err != nil {
				b.Fatal(err)
			}
			prefix := p.Prefix()
			var prefill time.Duration
			for b.Loop() {
				start := time.Now()
				g, err := NewGenerator(m, prefix, Options{Parallel: 1, MaxTokens: 1, CtxPerSeq: len(prefix) + len(suffix) + 1, Threads: benchThreads(b)})
				if err != nil {
					b.Fatal(err)
				}
				prefill += time.Since(start)
				g.Close()
			}
			shared := len(prefix) + products*len(suffix)
			unshared := products * (len(prefix) + len(suffix))
			b.ReportMetric(float64(len(prefix)), "prefix_tokens")
			b.ReportMetric(float64(len(suffix)), "suffix_tokens")
			b.ReportMetric(float64(prefill.Milliseconds())/float64(b.N), "prefix_ms")
			b.ReportMetric(100*float64(unshared-shared)/float64(unshared), "avoided_%")
		})
	}
}
