package lora

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"syscall"
	"testing"
	"time"

	"synth/native"
	"synth/vision/blip2"
	"synth/vision/nn"
	"synth/weights"
)

// BenchmarkTrainStep is one optimizer step of LoRA training at the real
// Salesforce/blip2-opt-2.7b language-model shapes with random weights: the issue's
// recipe (LoRA r 16, alpha 32, dropout 0.05 on q_proj, k_proj; the base model's dropout
// 0.1 in train mode; batch 4 of 32 cached query embeddings + 60 text tokens; AdamW).
// The image prefixes are cached in training, so the vision encoder and Q-Former are cut
// to one layer each (unused). It reports text tokens per second and the process's peak
// RSS; the anchor is bench/torch/finetune.py at the same shapes, in the same run:
//
//	go test -run '^$' -bench TrainStep -benchtime 3x -timeout 60m ./vision/lora/
//	python3 bench/torch/finetune.py --threads 2 --steps 3
var (
	benchLayers  = flag.Int("lora.text-layers", 32, "OPT layers (32: opt-2.7b)")
	benchDType   = flag.String("lora.dtype", "f16", "the frozen weights' dtype: f32, f16, bf16 or q8_0")
	benchBatch   = flag.Int("lora.batch", 4, "examples per step")
	benchTokens  = flag.Int("lora.tokens", 60, "text tokens per example")
	benchDevice  = flag.String("lora.device", "cpu", "device (cpu, ggml:CPU, cuda:0)")
	benchThreads = flag.Int("lora.threads", 0, "worker threads (0: GOMAXPROCS)")
	benchProfile = flag.Bool("lora.profile", false, "print where a step's time goes (native.Profile: ops by kind against the GEMM rate)")
)

func BenchmarkTrainStep(b *testing.B) {
	defer debug.SetGCPercent(debug.SetGCPercent(25)) // as synth finetune runs
	dev, err := native.OpenDevice(*benchDevice)
	if err != nil {
		b.Fatal(err)
	}
	wdt, err := weights.ParseDType(*benchDType)
	if err != nil {
		b.Fatal(err)
	}
	ndt, err := nn.ParseDType(*benchDType)
	if err != nil {
		b.Fatal(err)
	}
	js, _ := json.Marshal(map[string]any{"model_type": "blip-2", "num_query_tokens": 32,
		"vision_config": map[string]any{"num_hidden_layers": 1}, "qformer_config": map[string]any{"num_hidden_layers": 1},
		"text_config": map[string]any{"model_type": "opt", "hidden_size": 2560, "ffn_dim": 10240, "num_hidden_layers": *benchLayers,
			"num_attention_heads": 32, "word_embed_proj_dim": 2560, "eos_token_id": 50118}})
	start := time.Now()
	m, _, err := blip2.Random(js, 1, nn.RandomOptions{Linear: wdt, Shared: true}, blip2.Options{DType: ndt, Device: dev})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("random model built in %s", time.Since(start).Round(time.Millisecond))
	ad, err := NewAdapter(m.Linears, LoRAConfig{R: 16, Alpha: 32, Dropout: 0.05, Targets: []string{"q_proj", "k_proj"}}, 1)
	if err != nil {
		b.Fatal(err)
	}
	md := NewModel(m, ad, Dropouts{OPT: m.Cfg.Text.Dropout, QFormer: m.Cfg.QFormer.HiddenDropout})
	md.Train = true
	if err := ad.Attach(dev); err != nil {
		b.Fatal(err)
	}
	c, err := native.NewCtxOn(dev, *benchThreads)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	opt := Optim{LR: 5e-4, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, Schedule: "constant", GradClip: 1}
	q, e, nb, nt := m.Cfg.NumQueryTokens, m.Cfg.Text.Hidden, *benchBatch, *benchTokens
	r := rand.New(rand.NewPCG(1, 1))
	prefix := make([]float32, nb*q*e)
	for i := range prefix {
		prefix[i] = float32(r.NormFloat64())
	}
	bt := Batch{}
	for i := 0; i < nb; i++ {
		ids := make([]int32, nt)
		for j := range ids {
			ids[j] = int32(3 + r.IntN(m.Cfg.Text.Vocab-3))
		}
		bt.IDs, bt.NoLoss = append(bt.IDs, ids), append(bt.NoLoss, 1)
	}
	step := func(s int) {
		mk := c.Mark()
		defer c.Release(mk)
		n := q + nt
		x := c.Alloc(nb*n, e)
		var all []int32
		for _, ids := range bt.IDs {
			all = append(all, ids...)
		}
		emb := m.LM.EmbedTokens(c, all)
		pre := c.Upload(prefix, nb*q, e)
		for i := 0; i < nb; i++ {
			c.Copy(x.Rows(i*n, i*n+q), pre.Rows(i*q, (i+1)*q))
			c.Copy(x.Rows(i*n+q, (i+1)*n), emb.Rows(i*nt, (i+1)*nt))
		}
		ad.ZeroGrads()
		md.Loss(c, x, bt, q, &Seeds{Base: uint64(s)}, true, false)
		opt.Clip(ad.Params)
		opt.Update(ad.Params, s+1, opt.LR)
		if err := ad.Attach(dev); err != nil {
			b.Fatal(err)
		}
	}
	step(0) // warm-up: packing, arenas
	var prof *native.Profile
	if *benchProfile {
		prof = c.StartProfile()
		prof.Phase("train step")
	}
	b.ResetTimer()
	t0 := time.Now()
	for i := 0; i < b.N; i++ {
		step(i + 1)
	}
	sec := time.Since(t0).Seconds()
	if prof != nil {
		b.StopTimer()
		prof.Stop()
		prof.WriteReport(os.Stdout, native.MeasureRates(c))
	}
	b.ReportMetric(float64(b.N*nb*nt)/sec, "tokens/s")
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		b.ReportMetric(float64(ru.Maxrss)/(1<<20), "peak-rss-GB")
	}
	b.Logf("%s", fmt.Sprintf("layers %d dtype %s batch %d x (%d + %d): %.2f s/step", *benchLayers, *benchDType, nb, q, nt, sec/float64(b.N)))
}
