package blip2

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"synth/internal/benchflag"
	"synth/native"
	"synth/vision/generate"
	"synth/vision/nn"
	"synth/vision/opt"
	"synth/weights"
)

// Benchmarks at the real Salesforce/blip2-opt-2.7b (or -6.7b) shapes with random weights
// built in memory. The flags cut the depth for quick runs on slow kernels (names carry
// the layer counts, so results at different depths are never mixed up):
//
//	go test -run '^$' -bench . ./vision/blip2/ -benchtime 1x \
//	    -blip2.vision-layers 2 -blip2.text-layers 2
//
// The anchor is bench/torch/blip2.py at the same shapes and depth, in the same run.
var (
	benchModel      = flag.String("blip2.model", "2.7b", "benchmark shapes: 2.7b or 6.7b")
	benchVision     = flag.Int("blip2.vision-layers", 0, "vision layers (0: the real 39)")
	benchQFormer    = flag.Int("blip2.qformer-layers", 0, "Q-Former layers (0: the real 12)")
	benchText       = flag.Int("blip2.text-layers", 0, "OPT layers (0: the real 32)")
	benchDTypes     = flag.String("blip2.dtypes", "f32,f16,q8_0", "weight dtypes to benchmark")
	benchBatches    = flag.String("blip2.batches", "1,8", "batch sizes of the encode and decode benchmarks")
	benchCaptionB   = flag.String("blip2.caption-batches", "8", "batch sizes of the caption benchmark")
	benchTokens     = flag.Int("blip2.tokens", 60, "new tokens per caption in the end-to-end benchmarks")
	benchThreadsF   = flag.Int("blip2.threads", 0, "worker threads (0: GOMAXPROCS)")
	benchKVCache    = flag.String("blip2.kv-cache", "f16", "KV cache element type of the decode and caption benchmarks: f16 or f32")
	benchGGUF       = flag.String("blip2.gguf", "", "CaptionGGUF: the random Q8_0 GGUF to caption from (absent: written there, and the benchmark stops; empty: a temp file)")
	benchDeviceName = flag.String("blip2.device", "cpu", "device the benchmarks run on (cpu, ggml:CPU, cuda:0)")
)

func benchDevice(b *testing.B) *native.Device {
	d, err := native.OpenDevice(*benchDeviceName)
	if err != nil {
		b.Fatal(err)
	}
	return d
}

func benchCtx(b *testing.B) *native.Ctx {
	c, err := native.NewCtxOn(benchDevice(b), *benchThreadsF)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// benchConfig is the real configuration (fixtures/blip2/*/real-configs.json) with the
// depth flags applied.
func benchConfig(b *testing.B) (Config, []byte) {
	text := map[string]any{"model_type": "opt", "hidden_size": 2560, "ffn_dim": 10240, "num_hidden_layers": 32,
		"num_attention_heads": 32, "word_embed_proj_dim": 2560, "eos_token_id": 50118}
	switch *benchModel {
	case "2.7b":
	case "6.7b":
		text["hidden_size"], text["ffn_dim"], text["word_embed_proj_dim"] = 4096, 16384, 4096
	default:
		b.Fatalf("-blip2.model %q: want 2.7b or 6.7b", *benchModel)
	}
	vision := map[string]any{"model_type": "blip_2_vision_model"}
	qformer := map[string]any{"model_type": "blip_2_qformer"}
	if *benchVision > 0 {
		vision["num_hidden_layers"] = *benchVision
	}
	if *benchQFormer > 0 {
		qformer["num_hidden_layers"] = *benchQFormer
	}
	if *benchText > 0 {
		text["num_hidden_layers"] = *benchText
	}
	js, _ := json.Marshal(map[string]any{"model_type": "blip-2", "num_query_tokens": 32,
		"vision_config": vision, "qformer_config": qformer, "text_config": text})
	cfg, err := Parse(js)
	if err != nil {
		b.Fatal(err)
	}
	return cfg, js
}

func (c Config) depthName() string {
	return fmt.Sprintf("dev=%s/model=%s/vlayers=%d/qlayers=%d/tlayers=%d", *benchDeviceName, *benchModel, c.Vision.Layers, c.QFormer.Layers, c.Text.Layers)
}

var benchCache struct {
	key string
	m   *Model
}

// benchModelFor loads (once per configuration and dtype) the random model.
func benchModelFor(b *testing.B, dtName string) (*Model, Config) {
	cfg, js := benchConfig(b)
	key := cfg.depthName() + "/" + dtName + "/" + *benchDeviceName
	if benchCache.key == key {
		return benchCache.m, cfg
	}
	benchCache.m = nil
	runtime.GC()
	dt, err := weights.ParseDType(dtName)
	if err != nil {
		b.Fatal(err)
	}
	ndt, _ := nativeDTypeOf(dtName)
	start := time.Now()
	m, _, err := Random(js, 1, nn.RandomOptions{Linear: dt, Shared: true}, Options{DType: ndt, Device: benchDevice(b)})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%s: random model built and loaded in %s", key, time.Since(start).Round(time.Millisecond))
	benchCache.key, benchCache.m = key, m
	return m, cfg
}

// benchKV is the -blip2.kv-cache type.
func benchKV(b *testing.B) native.DType {
	switch *benchKVCache {
	case "f16":
		return native.F16
	case "f32":
		return native.F32
	}
	b.Fatalf("-blip2.kv-cache %q: want f16 or f32", *benchKVCache)
	return 0
}

func nativeDTypeOf(s string) (native.DType, error) {
	switch s {
	case "f32":
		return native.F32, nil
	case "f16":
		return native.F16, nil
	case "q8_0":
		return native.Q8_0, nil
	}
	return 0, fmt.Errorf("dtype %q", s)
}

func benchList(b *testing.B, s string) []int {
	out, err := benchflag.Ints(s)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

func benchPixels(n, s int) native.Tensor {
	px := make([]float32, n*3*s*s)
	for i := range px {
		px[i] = float32(i%251)/125 - 1
	}
	return native.FromF32(px, n, 3, s, s)
}

// BenchmarkEncode is the vision tower + Q-Former + projection: images/s.
func BenchmarkEncode(b *testing.B) {
	for _, dt := range strings.Split(*benchDTypes, ",") {
		for _, n := range benchList(b, *benchBatches) {
			cfg, _ := benchConfig(b)
			b.Run(fmt.Sprintf("%s/dtype=%s/batch=%d", cfg.depthName(), dt, n), func(b *testing.B) {
				m, _ := benchModelFor(b, dt)
				c := benchCtx(b)
				defer c.Close()
				px := c.Import(benchPixels(n, cfg.Vision.ImageSize))
				mk := c.Mark()
				start := time.Now()
				for b.Loop() {
					m.Encode(c, px)
					c.Sync()
					c.Release(mk)
				}
				b.ReportMetric(float64(n*b.N)/time.Since(start).Seconds(), "images/s")
			})
		}
	}
}

// BenchmarkDecode is one OPT decoding step for a batch of sequences at the cache lengths
// of a caption (queries + BOS + up to 60 tokens): tokens/s.
func BenchmarkDecode(b *testing.B) {
	for _, dt := range strings.Split(*benchDTypes, ",") {
		for _, n := range benchList(b, *benchBatches) {
			cfg, _ := benchConfig(b)
			b.Run(fmt.Sprintf("%s/dtype=%s/kv=%s/batch=%d", cfg.depthName(), dt, *benchKVCache, n), func(b *testing.B) {
				m, _ := benchModelFor(b, dt)
				m.LM.KVCache = benchKV(b)
				c := benchCtx(b)
				defer c.Close()
				const steps = 60
				prompt := cfg.NumQueryTokens + 1
				s, err := m.LM.NewSession(c, n, prompt+steps)
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				slots, lens, ids := make([]int, n), make([]int, n), make([]int32, n)
				for i := range slots {
					slots[i], lens[i], ids[i] = i, prompt, int32(100+i)
				}
				prefill := func() {
					x := c.Upload(make([]float32, n*prompt*cfg.Text.Hidden), n*prompt, cfg.Text.Hidden)
					s.Prefill(x, slots, lens, nil)
					c.Release(native.Mark{})
				}
				prefill()
				done := 0
				var elapsed time.Duration
				for b.Loop() {
					if done == steps {
						prefill()
						done = 0
					}
					t0 := time.Now()
					s.Step(slots, ids)
					c.Sync()
					elapsed += time.Since(t0)
					c.Release(native.Mark{})
					done++
				}
				b.ReportMetric(float64(n*b.N)/elapsed.Seconds(), "tokens/s")
			})
		}
	}
}

// BenchmarkCaption is captioning end to end for batches of -blip2.caption-batches
// images, -blip2.tokens new tokens each (no EOS, like the anchor): captions per hour.
func BenchmarkCaption(b *testing.B) {
	for _, dt := range strings.Split(*benchDTypes, ",") {
		for _, n := range benchList(b, *benchCaptionB) {
			cfg, _ := benchConfig(b)
			b.Run(fmt.Sprintf("%s/dtype=%s/kv=%s/batch=%d/tokens=%d", cfg.depthName(), dt, *benchKVCache, n, *benchTokens), func(b *testing.B) {
				m, _ := benchModelFor(b, dt)
				m.LM.KVCache = benchKV(b)
				runCaptionBench(b, m, cfg, n)
			})
		}
	}
}

func runCaptionBench(b *testing.B, m *Model, cfg Config, n int) {
	c := benchCtx(b)
	defer c.Close()
	p := generate.Params{MaxNewTokens: *benchTokens, NumBeams: 1}
	g, err := m.NewGenerator(c, n, 1, p)
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	px := benchPixels(n, cfg.Vision.ImageSize)
	prompts := make([]Prompt, n)
	// one untimed batch first, as PyTorch's anchor warms up: the first batch of a process
	// also grows the arena to its peak, which a long captioning run pays once
	if _, err := g.Generate(px, prompts, p); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	for b.Loop() {
		res, err := g.Generate(px, prompts, p)
		if err != nil {
			b.Fatal(err)
		}
		if len(res[0].Tokens) != *benchTokens {
			b.Fatalf("generated %d tokens, want %d", len(res[0].Tokens), *benchTokens)
		}
	}
	b.ReportMetric(3600*float64(n*b.N)/time.Since(start).Seconds(), "captions/h")
	if hwm, ok := peakRSS(); ok {
		b.ReportMetric(float64(hwm)/(1<<20), "peak-rss-MB")
	}
	if free, total := c.Device().Memory(); total > 0 && c.Device().GPU() {
		b.ReportMetric(float64(total-free)/(1<<20), "device-used-MB") // weights, caches and arena, now
	}
}

// BenchmarkCaptionGGUF is BenchmarkCaption with the weights in a Q8_0 GGUF file, mmap'd
// (every Linear and the token embeddings quantized), reporting the process's peak RSS
// (VmHWM): run it alone (-bench CaptionGGUF) so no other benchmark's memory counts. To
// keep the writing out of the peak, write the file once in a first run and caption in
// a second:
//
//	go test -c -o blip2.test ./vision/blip2/
//	./blip2.test -test.run '^$' -test.bench CaptionGGUF -blip2.gguf /tmp/b.gguf  # writes, stops
//	/usr/bin/time -v ./blip2.test -test.run '^$' -test.bench CaptionGGUF -test.benchtime 1x -blip2.gguf /tmp/b.gguf
func BenchmarkCaptionGGUF(b *testing.B) {
	cfg, js := benchConfig(b)
	b.Run(fmt.Sprintf("%s/dtype=q8_0/kv=%s/batch=8/tokens=%d", cfg.depthName(), *benchKVCache, *benchTokens), func(b *testing.B) {
		path := *benchGGUF
		if path == "" {
			path = filepath.Join(b.TempDir(), "blip2-random-q8_0.gguf")
		} else if _, err := os.Stat(path); err == nil {
			runCaptionGGUF(b, cfg, path)
			return
		}
		// the checkpoint a random Q8_0 model reads (its weights, built to learn the
		// names, are dropped before the file is loaded)
		_, src, err := Random(js, 1, nn.RandomOptions{Linear: weights.Q8_0, Shared: true}, Options{DType: native.Q8_0})
		if err != nil {
			b.Fatal(err)
		}
		w := weights.NewGGUFWriter()
		w.Add("general.architecture", "blip-2")
		w.Add(weights.ConfigKey, string(js))
		for _, t := range src.Tensors() {
			w.AddTensorFunc(t.Name, t.DType, t.Shape, func() ([]byte, error) { return t.Data, nil })
		}
		if err := w.WriteFile(path); err != nil {
			b.Fatal(err)
		}
		if *benchGGUF != "" {
			b.Skipf("wrote %s: run again to caption from it", path)
		}
		runtime.GC()
		runCaptionGGUF(b, cfg, path)
	})
}

// runCaptionGGUF loads the GGUF at path (mmap'd) and runs the caption benchmark on it.
func runCaptionGGUF(b *testing.B, cfg Config, path string) {
	src, err := weights.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	m, err := Load(src, Options{DType: native.Q8_0, KVCache: benchKV(b), Device: benchDevice(b)})
	if err != nil {
		b.Fatal(err)
	}
	if got := m.Cfg.depthName(); got != cfg.depthName() {
		b.Fatalf("%s holds %s, the flags ask for %s", path, got, cfg.depthName())
	}
	runCaptionBench(b, m, cfg, 8)
}

// peakRSS is the process's resident set high-water mark (VmHWM), in bytes.
func peakRSS() (int64, bool) {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err == nil
		}
	}
	return 0, false
}

// BenchmarkCaptionProfile is BenchmarkCaption for one batch of 8 images split into its
// phases (vision encoder, Q-Former, prefill, decode, sampling: generate.Run's work
// between decoding steps) with each op's time, GFLOP/s and GB/s against the GEMM rate
// and copy bandwidth measured in the same run (native.Profile), printed after the run.
// Ops are timed on the cpu device only:
//
//	go test -run '^$' -bench CaptionProfile -benchtime 1x ./vision/blip2/ -blip2.dtypes q8_0
//
// SYNTH_KERNELS=avx2 profiles the AVX2 kernels on an AVX-512 machine.
func BenchmarkCaptionProfile(b *testing.B) {
	for _, dt := range strings.Split(*benchDTypes, ",") {
		cfg, _ := benchConfig(b)
		b.Run(fmt.Sprintf("%s/dtype=%s/kv=%s/batch=8/tokens=%d", cfg.depthName(), dt, *benchKVCache, *benchTokens), func(b *testing.B) {
			m, _ := benchModelFor(b, dt)
			m.LM.KVCache = benchKV(b)
			c := benchCtx(b)
			defer c.Close()
			const n = 8
			nq := cfg.NumQueryTokens
			p := generate.Params{MaxNewTokens: *benchTokens, NumBeams: 1}
			s, err := m.LM.NewSession(c, n, nq+1+*benchTokens)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			px := benchPixels(n, cfg.Vision.ImageSize)
			ids, slots, lens, plens := make([]int32, n), make([]int, n), make([]int, n), make([]int, n)
			for i := range n {
				ids[i], slots[i], lens[i], plens[i] = cfg.Text.BOS, i, nq+1, 1
			}
			// the steps of Generator.Generate for prompts of BOS alone, one phase each
			caption := func(prof *native.Profile) {
				phase := func(name string) {
					if prof != nil {
						prof.Phase(name)
					}
				}
				mk := c.Mark()
				defer c.Release(mk)
				phase("vision encoder")
				img := m.Vision.Forward(c, c.Import(px))
				phase("q-former")
				prefix := c.Alloc(n*nq, cfg.Text.Hidden)
				m.Proj.ForwardInto(c, prefix, m.QFormer.Forward(c, img, n), native.None, native.Tensor{})
				phase("prefill")
				lg := s.Prefill(m.inputsEmbeds(c, prefix, m.LM.EmbedTokens(c, ids), plens), slots, lens, nil)
				rows := make([]generate.Row, n)
				for i := range rows {
					rows[i] = generate.Row{Slots: []int{i}}
				}
				phase("sampling")
				if _, err := generate.Run(profiledSession{s, prof}, p, rows, lg); err != nil {
					b.Fatal(err)
				}
				c.Sync()
			}
			caption(nil) // the arena grows to the pass's peak
			var last *native.Profile
			for b.Loop() {
				last = c.StartProfile()
				caption(last)
				last.Stop()
			}
			b.StopTimer()
			fmt.Printf("%s: one caption batch, by phase and op:\n", b.Name())
			last.WriteReport(os.Stdout, native.MeasureRates(c))
		})
	}
}

// profiledSession is the decoder with each Step counted as the "decode" phase; the rest
// of generate.Run (choosing tokens) is "sampling".
type profiledSession struct {
	*opt.Session
	prof *native.Profile
}

func (s profiledSession) Step(slots []int, ids []int32) native.Tensor {
	if s.prof != nil {
		s.prof.Phase("decode")
		defer s.prof.Phase("sampling")
	}
	return s.Session.Step(slots, ids)
}
