package blip2

import (
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

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
	benchModel    = flag.String("blip2.model", "2.7b", "benchmark shapes: 2.7b or 6.7b")
	benchVision   = flag.Int("blip2.vision-layers", 0, "vision layers (0: the real 39)")
	benchQFormer  = flag.Int("blip2.qformer-layers", 0, "Q-Former layers (0: the real 12)")
	benchText     = flag.Int("blip2.text-layers", 0, "OPT layers (0: the real 32)")
	benchDTypes   = flag.String("blip2.dtypes", "f32,f16,q8_0", "weight dtypes to benchmark")
	benchBatches  = flag.String("blip2.batches", "1,8", "batch sizes of the encode and decode benchmarks")
	benchTokens   = flag.Int("blip2.tokens", 60, "new tokens per caption in the end-to-end benchmarks")
	benchThreadsF = flag.Int("blip2.threads", 0, "worker threads (0: GOMAXPROCS)")
	benchKVCache  = flag.String("blip2.kv-cache", "f16", "KV cache element type of the decode and caption benchmarks: f16 or f32")
	benchGGUF     = flag.String("blip2.gguf", "", "CaptionGGUF: the random Q8_0 GGUF to caption from (absent: written there, and the benchmark stops; empty: a temp file)")
)

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
	return fmt.Sprintf("model=%s/vlayers=%d/qlayers=%d/tlayers=%d", *benchModel, c.Vision.Layers, c.QFormer.Layers, c.Text.Layers)
}

// tensorKind says how a benchmark tensor is filled.
type tensorKind uint8

const (
	kindOther  tensorKind = iota // F32, small random values
	kindLinear                   // a 2-D Linear weight or the token embeddings: the benchmark dtype
	kindNorm                     // a LayerNorm weight: ones
)

// shapes lists every checkpoint tensor of cfg with its shape and kind.
func shapes(cfg Config) (names []string, dims [][]int, kinds []tensorKind) {
	add := func(name string, k tensorKind, d ...int) {
		names, dims, kinds = append(names, name), append(dims, d), append(kinds, k)
	}
	linear := func(name string, out, in int) {
		add(name+".weight", kindLinear, out, in)
		add(name+".bias", kindOther, out)
	}
	norm := func(name string, n int) {
		add(name+".weight", kindNorm, n)
		add(name+".bias", kindOther, n)
	}
	v, q, t := cfg.Vision, cfg.QFormer, cfg.Text
	d := v.Hidden
	add("vision_model.embeddings.class_embedding", kindOther, 1, 1, d)
	add("vision_model.embeddings.patch_embedding.weight", kindOther, d, 3, v.PatchSize, v.PatchSize)
	add("vision_model.embeddings.patch_embedding.bias", kindOther, d)
	add("vision_model.embeddings.position_embedding", kindOther, 1, v.Tokens(), d)
	for i := range v.Layers {
		p := fmt.Sprintf("vision_model.encoder.layers.%d.", i)
		norm(p+"layer_norm1", d)
		linear(p+"self_attn.qkv", 3*d, d)
		linear(p+"self_attn.projection", d, d)
		norm(p+"layer_norm2", d)
		linear(p+"mlp.fc1", v.Intermediate, d)
		linear(p+"mlp.fc2", d, v.Intermediate)
	}
	norm("vision_model.post_layernorm", d)
	add("query_tokens", kindOther, 1, cfg.NumQueryTokens, q.Hidden)
	norm("qformer.layernorm", q.Hidden)
	for i := range q.Layers {
		p := fmt.Sprintf("qformer.encoder.layer.%d.", i)
		attn := func(a string, kvIn int) {
			linear(p+a+".attention.query", q.Hidden, q.Hidden)
			linear(p+a+".attention.key", q.Hidden, kvIn)
			linear(p+a+".attention.value", q.Hidden, kvIn)
			linear(p+a+".output.dense", q.Hidden, q.Hidden)
			norm(p+a+".output.LayerNorm", q.Hidden)
		}
		attn("attention", q.Hidden)
		if i%q.CrossAttnFrequency == 0 {
			attn("crossattention", d)
		}
		linear(p+"intermediate_query.dense", q.Intermediate, q.Hidden)
		linear(p+"output_query.dense", q.Hidden, q.Intermediate)
		norm(p+"output_query.LayerNorm", q.Hidden)
	}
	linear("language_projection", t.Hidden, q.Hidden)
	add("language_model.model.decoder.embed_tokens.weight", kindLinear, t.Vocab, t.Hidden)
	add("language_model.model.decoder.embed_positions.weight", kindOther, t.MaxPositions+2, t.Hidden)
	for i := range t.Layers {
		p := fmt.Sprintf("language_model.model.decoder.layers.%d.", i)
		norm(p+"self_attn_layer_norm", t.Hidden)
		for _, n := range []string{"q_proj", "k_proj", "v_proj", "out_proj"} {
			linear(p+"self_attn."+n, t.Hidden, t.Hidden)
		}
		norm(p+"final_layer_norm", t.Hidden)
		linear(p+"fc1", t.FFN, t.Hidden)
		linear(p+"fc2", t.Hidden, t.FFN)
	}
	norm("language_model.model.decoder.final_layer_norm", t.Hidden)
	return names, dims, kinds
}

// randomBytes fills a tensor of n values in dt with small pseudo-random weights
// (|w| < 0.05: no overflow in any activation), cheaply: the values do not matter for speed.
func randomBytes(dt weights.DType, n int, seed uint64) []byte {
	x := seed*0x9e3779b97f4a7c15 + 1
	next := func() uint64 { x ^= x << 13; x ^= x >> 7; x ^= x << 17; return x }
	switch dt {
	case weights.Q8_0:
		out := make([]byte, n/32*34)
		scale := weights.F32ToF16(0.05 / 127)
		for b := 0; b < n/32; b++ {
			blk := out[b*34 : (b+1)*34]
			binary.LittleEndian.PutUint16(blk, scale)
			for j := 2; j < 34; j += 8 {
				binary.LittleEndian.PutUint64(blk[j:], next())
			}
		}
		return out
	case weights.F16:
		out := make([]byte, 2*n)
		for i := 0; i < n; i++ {
			binary.LittleEndian.PutUint16(out[2*i:], weights.F32ToF16(float32(int32(next()>>40))/float32(1<<24)*0.1))
		}
		return out
	}
	out := make([]byte, 4*n)
	for i := 0; i < n; i++ {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(float32(int32(next()>>40))/float32(1<<24)*0.1))
	}
	return out
}

// benchDType is the dtype a benchmark tensor is stored in.
func benchDType(dt weights.DType, dims []int, k tensorKind) weights.DType {
	if k != kindLinear || (dt.IsQuantized() && dims[len(dims)-1]%dt.BlockSize() != 0) {
		return weights.F32
	}
	return dt
}

func benchTensor(name string, dt weights.DType, dims []int, k tensorKind, seed uint64) weights.Tensor {
	n := 1
	for _, d := range dims {
		n *= d
	}
	dt = benchDType(dt, dims, k)
	if k == kindNorm {
		v := make([]byte, 4*n)
		for i := 0; i < n; i++ {
			binary.LittleEndian.PutUint32(v[4*i:], math.Float32bits(1))
		}
		return weights.Tensor{Name: name, DType: weights.F32, Shape: dims, Data: v}
	}
	return weights.Tensor{Name: name, DType: dt, Shape: dims, Data: randomBytes(dt, n, seed)}
}

// benchSource builds the random checkpoint in memory, Linear weights stored in dt.
// Tensors of the same dtype, kind and size share their bytes (the values do not matter
// for speed): the source is then one layer's worth per part of the model, not a copy of
// the whole, so loading costs about the model's own memory (an F32 model at full depth,
// 15.5 GB, fits beside its source on a 24 GB machine).
func benchSource(b *testing.B, cfg Config, js []byte, dt weights.DType) *weights.Source {
	names, dims, kinds := shapes(cfg)
	ts := make([]weights.Tensor, len(names))
	shared := map[string][]byte{}
	for i := range names {
		ts[i] = benchTensor(names[i], dt, dims[i], kinds[i], uint64(i+1))
		key := fmt.Sprint(ts[i].DType, kinds[i], len(ts[i].Data))
		if d, ok := shared[key]; ok {
			ts[i].Data = d
		} else {
			shared[key] = ts[i].Data
		}
	}
	src, err := weights.FromTensors("random-"+*benchModel, ts, js, nil)
	if err != nil {
		b.Fatal(err)
	}
	return src
}

var benchCache struct {
	key string
	m   *Model
}

// benchModelFor loads (once per configuration and dtype) the random model.
func benchModelFor(b *testing.B, dtName string) (*Model, Config) {
	cfg, js := benchConfig(b)
	key := cfg.depthName() + "/" + dtName
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
	m, err := Load(benchSource(b, cfg, js, dt), Options{DType: ndt})
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
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			b.Fatalf("bad list %q", s)
		}
		out = append(out, n)
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
				c := native.NewCtx(*benchThreadsF)
				defer c.Close()
				px := benchPixels(n, cfg.Vision.ImageSize)
				var s nn.Scratch
				start := time.Now()
				for b.Loop() {
					m.Encode(c, px, &s, nil)
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
				c := native.NewCtx(*benchThreadsF)
				defer c.Close()
				const steps = 60
				prompt := cfg.NumQueryTokens + 1
				s, err := m.LM.NewSession(c, n, prompt+steps)
				if err != nil {
					b.Fatal(err)
				}
				slots, lens, ids := make([]int, n), make([]int, n), make([]int32, n)
				for i := range slots {
					slots[i], lens[i], ids[i] = i, prompt, int32(100+i)
				}
				prefill := func() {
					x := native.FromF32(make([]float32, n*prompt*cfg.Text.Hidden), n*prompt, cfg.Text.Hidden)
					s.Prefill(x, slots, lens, nil)
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
					elapsed += time.Since(t0)
					done++
				}
				b.ReportMetric(float64(n*b.N)/elapsed.Seconds(), "tokens/s")
			})
		}
	}
}

// BenchmarkCaption is captioning end to end for a batch of 8 images, -blip2.tokens new
// tokens each (no EOS, like the anchor): captions per hour.
func BenchmarkCaption(b *testing.B) {
	for _, dt := range strings.Split(*benchDTypes, ",") {
		cfg, _ := benchConfig(b)
		b.Run(fmt.Sprintf("%s/dtype=%s/kv=%s/batch=8/tokens=%d", cfg.depthName(), dt, *benchKVCache, *benchTokens), func(b *testing.B) {
			m, _ := benchModelFor(b, dt)
			m.LM.KVCache = benchKV(b)
			runCaptionBench(b, m, cfg, 8)
		})
	}
}

func runCaptionBench(b *testing.B, m *Model, cfg Config, n int) {
	c := native.NewCtx(*benchThreadsF)
	defer c.Close()
	p := generate.Params{MaxNewTokens: *benchTokens, NumBeams: 1}
	g, err := m.NewGenerator(c, n, 1, p)
	if err != nil {
		b.Fatal(err)
	}
	px := benchPixels(n, cfg.Vision.ImageSize)
	prompts := make([]Prompt, n)
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
		w := weights.NewGGUFWriter()
		w.Add("general.architecture", "blip-2")
		w.Add(weights.ConfigKey, string(js))
		names, dims, kinds := shapes(cfg)
		for i := range names {
			name, d, k, seed := names[i], dims[i], kinds[i], uint64(i+1)
			w.AddTensorFunc(name, benchDType(weights.Q8_0, d, k), d, func() ([]byte, error) {
				return benchTensor(name, weights.Q8_0, d, k, seed).Data, nil
			})
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
	m, err := Load(src, Options{DType: native.Q8_0, KVCache: benchKV(b)})
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
// phases (vision encoder, Q-Former, prefill, decode, sampling: generate.Run's host work
// between decoding steps) with each op's time, GFLOP/s and GB/s against the GEMM rate
// and copy bandwidth measured in the same run (native.Profile), printed after the run:
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
			c := native.NewCtx(*benchThreadsF)
			defer c.Close()
			const n = 8
			nq := cfg.NumQueryTokens
			p := generate.Params{MaxNewTokens: *benchTokens, NumBeams: 1}
			s, err := m.LM.NewSession(c, n, nq+1+*benchTokens)
			if err != nil {
				b.Fatal(err)
			}
			px := benchPixels(n, cfg.Vision.ImageSize)
			var sc nn.Scratch
			// the steps of Generator.Generate for prompts of BOS alone, one phase each
			caption := func(prof *native.Profile) {
				phase := func(name string) {
					if prof != nil {
						prof.Phase(name)
					}
				}
				phase("vision encoder")
				img := m.Vision.Forward(c, px, &sc, nil)
				phase("q-former")
				q := m.QFormer.Forward(c, img, n, &sc, nil)
				prefix := sc.Tensor("blip2.prefix", n*nq, cfg.Text.Hidden)
				m.Proj.ForwardInto(c, prefix, q, native.None, native.Tensor{})
				c.Reset()
				phase("prefill")
				ids, slots, lens := make([]int32, n), make([]int, n), make([]int, n)
				for i := range n {
					ids[i], slots[i], lens[i] = cfg.Text.BOS, i, nq+1
				}
				tok := m.LM.EmbedTokens(c, ids)
				x := c.Alloc(n*(nq+1), cfg.Text.Hidden)
				for i := range n {
					x.Rows(i*(nq+1), i*(nq+1)+nq).CopyFrom(prefix.Rows(i*nq, (i+1)*nq))
					x.Rows(i*(nq+1)+nq, (i+1)*(nq+1)).CopyFrom(tok.Rows(i, i+1))
				}
				lg := s.Prefill(x, slots, lens, nil)
				rows := make([]generate.Row, n)
				v := cfg.Text.Vocab
				for i := range rows {
					rows[i] = generate.Row{Slots: []int{i}, Logits: slices.Clone(lg[i*v : (i+1)*v])}
				}
				phase("sampling")
				if _, err := generate.Run(profiledSession{s, prof}, p, rows); err != nil {
					b.Fatal(err)
				}
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

// profiledSession is the decoder with each Step counted as the "decode" phase; the time
// between steps (generate.Run choosing tokens) is "sampling".
type profiledSession struct {
	*opt.Session
	prof *native.Profile
}

func (s profiledSession) Step(slots []int, ids []int32) []float32 {
	if s.prof != nil {
		s.prof.Phase("decode")
		defer s.prof.Phase("sampling")
	}
	return s.Session.Step(slots, ids)
}
