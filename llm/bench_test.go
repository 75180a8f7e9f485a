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

	"synth/dataset"
	"synth/internal/benchflag"
	"synth/internal/llamagguf"
	"synth/llm/llamacpp"
	"synth/weights"
)

// Benchmarks run on random-weight GGUFs with the real shapes of Llama-3.2-1B and
// Llama-3.1-8B, written on first use into the folder $SYNTH_BENCH_MODELS names (0.7 to
// 8.5 GB each, 15 GB for all four; never committed: delete the folder afterwards).
// Without it they skip. BenchmarkTranslate also runs on a small model (benchSmall, 20M
// parameters) written into a temporary folder, so it runs anywhere in seconds. $SYNTH_BENCH_THREADS sets llama.cpp's threads (default: all
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

// benchSmall is a small Llama-shaped model for benchmarks that must run anywhere: the
// loop's overhead is measured against llama_decode, so a small decode is the hard case.
var benchSmall = llamagguf.Config{
	Name: "small-llama", Vocab: 8192, Specials: 256, Merges: 2000, Embd: 512, Layers: 4, FF: 1536,
	Heads: 8, KVHeads: 4, CtxTrain: 4096, RopeBase: 500000, DType: weights.Q8_0, Seed: 1,
}

func benchModel(b *testing.B, name string, cfg llamagguf.Config, dt weights.DType) *llamacpp.Model {
	b.Helper()
	dir := os.Getenv("SYNTH_BENCH_MODELS")
	if dir == "" && name == "small" {
		dir = b.TempDir()
	}
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

// benchTokens is the tokens each generation makes: $SYNTH_BENCH_TOKENS, or 32.
func benchTokens(b *testing.B) int {
	s := os.Getenv("SYNTH_BENCH_TOKENS")
	if s == "" {
		return 32
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 2 {
		b.Fatalf("SYNTH_BENCH_TOKENS=%q: want an integer >= 2", s)
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

// benchExamples are the six built-in English few-shot pairs: the paper's setting of a
// handful of style examples.
var benchExamples = DefaultExamples("en")

// BenchmarkGenerate measures generation tokens/s of the Generator at parallel 1, 4
// and 8, and, in the same iterations on the same context, a bare llama_decode loop of
// the same batch shape (each product's 16-token prompt in one batch, then one token
// per slot per step, no sampling): bare_tok/s, and overhead_% = our time / bare time - 1.
// On a busy machine that A/B ratio is noisy, so the same overhead is also measured
// inside our loop, on the same steps: loop_overhead_% = (Run's time - its time in
// llama_decode) / its time in llama_decode, of which sample_% is the sampler chains.
func BenchmarkGenerate(b *testing.B) {
	const suffixLen = 16
	genTokens := benchTokens(b)
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

// benchKorean are Korean listings in the paper's style: a long description with sizes
// and blends, a title with a brand and size, keywords.
var benchKorean = []dataset.Product{
	{ID: "k0", Lang: "ko", Title: "나이키 에어 기모 조거 팬츠 XL", Keywords: []string{"기모", "조거 팬츠", "면 80%"},
		Text: "부드러운 기모 안감으로 따뜻하게 입을 수 있는 조거 팬츠입니다. 허리 밴딩과 스트링으로 편안하게 조절할 수 있으며, 밑단 시보리가 발목을 깔끔하게 잡아 줍니다. 면 80%, 폴리에스터 20%, 총장 98cm."},
	{ID: "k1", Lang: "ko", Title: "울 블렌드 더블 코트 55", Keywords: []string{"울 블렌드", "더블 브레스티드", "롱 코트"},
		Text: "울 70%, 나일론 30% 혼방 원단으로 가볍고 보온성이 좋은 롱 코트입니다. 더블 브레스티드 여밈과 넓은 라펠이 클래식한 분위기를 더해 주며, 총장 115cm로 무릎 아래까지 덮어 줍니다."},
	{ID: "k2", Lang: "ko", Title: "GORE-TEX 방수 트레킹화 270", Keywords: []string{"방수", "트레킹화", "GORE-TEX"},
		Text: "GORE-TEX 멤브레인으로 비와 눈을 막아 주는 방수 트레킹화입니다. 발볼이 넉넉한 라스트와 쿠션 미드솔로 오래 걸어도 편안하며, 무게는 한 짝 기준 420g입니다."},
	{ID: "k3", Lang: "ko", Title: "린넨 셔츠 원피스 M", Keywords: []string{"린넨", "셔츠 원피스", "허리 벨트"},
		Text: "린넨 100% 소재로 통기성이 좋아 여름에 시원하게 입을 수 있는 셔츠 원피스입니다. 허리 벨트로 실루엣을 조절할 수 있고, 양옆 포켓이 있어 실용적입니다. 총장 112cm, 가슴 단면 54cm."},
}

// BenchmarkTranslate measures `synth translate`'s engine: llm.RunJob with the
// Translator (three fields of each of 8 Korean products: the shared prefix with the
// instruction, a glossary and the examples; faithfulness checks; records written to a
// JSONL output) against a bare llama_decode loop of the same batch shape, as
// BenchmarkGenerate does for the Generator alone. Every part's prompt is cut or
// repeated to 48 tokens and generates exactly genTokens, so that continuous batching
// runs the same steps as the bare loop's rounds of `parallel` generations.
// loop_overhead_% = (RunJob's time - its llama_decode time) / its llama_decode time is
// the goal's number (<= 5%). The shared prefix (prefix_tokens) is decoded once, when the
// Generator is made: prefill_per_part is what RunJob prefilled per generation (the
// part's own 48 tokens, nothing of the prefix), avoided_% the share of all prompt tokens
// that sharing the prefix saved.
//
//	SYNTH_BENCH_THREADS=1 go test -run '^$' -bench 'Translate/model=small' -benchtime 3x ./llm/
//	SYNTH_BENCH_MODELS=/tmp/synth-bench-models go test -run '^$' -bench 'Translate/model=8b' -benchtime 1x ./llm/
func BenchmarkTranslate(b *testing.B) {
	const suffixLen, products = 48, 8
	genTokens := benchTokens(b)
	models := append([]struct {
		name string
		cfg  llamagguf.Config
	}{{"small", benchSmall}}, benchModels...)
	glossary := NewGlossary([]GlossaryEntry{{"기모", "brushed fleece"}, {"슬림핏", "slim fit"}, {"울 블렌드", "wool blend"}, {"린넨", "linen"}, {"트레킹화", "hiking shoes"}})
	for _, bm := range models {
		dt := weights.Q4_0
		if bm.name == "small" {
			dt = weights.Q8_0
		}
		b.Run(fmt.Sprintf("model=%s/type=%s", bm.name, dt), func(b *testing.B) {
			m := benchModel(b, bm.name, bm.cfg, dt)
			ban := map[llamacpp.Token]float32{}
			for _, t := range m.EOGTokens() {
				ban[t] = float32(-1e30) // fixed-length generations, as the bare loop
			}
			tr, err := NewTranslator(m, TranslateConfig{From: "ko", To: "en", Glossary: glossary, DateLines: true})
			if err != nil {
				b.Fatal(err)
			}
			var tasks []*Task
			for i := 0; i < products; i++ {
				p := benchKorean[i%len(benchKorean)]
				p.ID = fmt.Sprint("p", i)
				t := tr.Task(p)
				if t.Err != nil || len(t.Parts) != 3 {
					b.Fatalf("%s: %d parts, %v", p.ID, len(t.Parts), t.Err)
				}
				for k := range t.Parts {
					s := t.Parts[k].Suffix
					for len(s) < suffixLen {
						s = append(s, s...)
					}
					t.Parts[k].Suffix = s[:suffixLen]
				}
				tasks = append(tasks, t)
			}
			parts := 3 * products
			for _, parallel := range []int{4, 8} {
				b.Run(fmt.Sprintf("parallel=%d", parallel), func(b *testing.B) {
					g, err := NewGenerator(m, tr.Prefix(), Options{
						Parallel: parallel, MaxTokens: genTokens, CtxPerSeq: len(tr.Prefix()) + suffixLen + genTokens,
						Threads:  benchThreads(b),
						Sampling: llamacpp.SamplerParams{Temperature: 0.2, TopK: 40, TopP: 0.9, LogitBias: ban},
					})
					if err != nil {
						b.Fatal(err)
					}
					defer g.Close()
					suffix := tasks[0].Parts[0].Suffix
					var bare, ours, decode time.Duration
					var prefilled int
					for b.Loop() {
						start := time.Now()
						for r := 0; r < parts; r += parallel {
							bareLoop(b, g, suffix, min(parallel, parts-r), genTokens)
						}
						bare += time.Since(start)

						out, err := dataset.OpenOutput(filepath.Join(b.TempDir(), "out.jsonl"), dataset.OutputOptions{})
						if err != nil {
							b.Fatal(err)
						}
						ch := make(chan *Task, len(tasks))
						for _, t := range tasks {
							ch <- t
						}
						close(ch)
						before := g.Stats()
						start = time.Now()
						st, err := RunJob(context.Background(), g, out, ch, len(tasks), JobOptions{Recorder: tr})
						ours += time.Since(start)
						if err != nil || st.Done != products || st.Finish[FinishLength] != parts-3*st.Failed {
							b.Fatalf("job: %v, stats %+v", err, st)
						}
						decode += st.Gen.DecodeTime - before.DecodeTime
						prefilled += st.Gen.PromptTokens - before.PromptTokens
						out.Close()
					}
					tokens := float64(b.N * parts * genTokens)
					b.ReportMetric(tokens/ours.Seconds(), "tok/s")
					b.ReportMetric(tokens/bare.Seconds(), "bare_tok/s")
					b.ReportMetric(100*(ours.Seconds()/bare.Seconds()-1), "overhead_%")
					b.ReportMetric(100*(ours.Seconds()-decode.Seconds())/decode.Seconds(), "loop_overhead_%")
					prefix := len(tr.Prefix())
					perPart := float64(prefilled) / float64(b.N*parts)
					b.ReportMetric(float64(prefix), "prefix_tokens")
					b.ReportMetric(perPart, "prefill_per_part")
					b.ReportMetric(100*float64(prefix)/(float64(prefix)+perPart), "avoided_%")
				})
			}
		})
	}
}
