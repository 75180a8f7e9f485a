package longclip

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"synth/internal/benchflag"
	"synth/native"
	"synth/vision/nn"
)

// Benchmarks at the released Long-CLIP-L shapes with random weights (no file needed).
// The PyTorch anchor measured in the same run is bench/torch/longclip.py:
//
//	go test -run '^$' -bench 'Encode|GEMM' -benchtime 1x ./vision/longclip/
//	/usr/bin/python3 bench/torch/longclip.py --threads 2 --batch 1 8 [--layers 2]
//
// layers=2 keeps every shape real but runs two blocks per tower instead of 24 (vision)
// and 12 (text): per-block cost is the same in every block, so ratios to the anchor run
// with --layers 2 carry over. Texts are 60 tokens plus SOT and EOT, as the anchor's.
// Metrics: items/s, and GFLOP/s of the multiply-adds actually executed (2 per MAC:
// projections, MLPs, patch embedding, and attention counted as 4*Tq*Tk*W per sequence and
// block, masked or not), to compare with BenchmarkGEMM at the MLP shape.

const benchThreads = 2 // the anchor's --threads

// -longclip.device runs the encoder benchmarks on another device (ggml:CPU, cuda:0);
// the names carry it, so results of different devices are never mixed up.
var (
	benchDeviceName = flag.String("longclip.device", "cpu", "device of the encoder benchmarks")
	benchBatchList  = flag.String("longclip.batches", "1,8", "batch sizes of the encoder benchmarks")
	benchLayerList  = flag.String("longclip.layers", "", "tower depths to run (default: 2 and the real depth)")
)

func benchInts(b *testing.B, s string, def ...int) []int {
	out, err := benchflag.Ints(s, def...)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

func benchDevice(b *testing.B) *native.Device {
	d, err := native.OpenDevice(*benchDeviceName)
	if err != nil {
		b.Fatal(err)
	}
	return d
}

func benchCtx(b *testing.B) *native.Ctx {
	c, err := native.NewCtxOn(benchDevice(b), benchThreads)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

var benchModels struct {
	sync.Mutex
	m map[string]*Model
}

func benchModel(b *testing.B, layers int, dt native.DType) *Model {
	b.Helper()
	benchModels.Lock()
	defer benchModels.Unlock()
	key := fmt.Sprintf("%d/%s/%s", layers, dt, *benchDeviceName)
	if m := benchModels.m[key]; m != nil {
		return m
	}
	cfg := LongCLIPL
	cfg.Vision.Layers, cfg.Text.Layers = min(layers, cfg.Vision.Layers), min(layers, cfg.Text.Layers)
	m, err := Random(cfg, 1, nn.RandomOptions{Shared: true}, Options{DType: dt, Device: benchDevice(b)})
	if err != nil {
		b.Fatal(err)
	}
	if benchModels.m == nil {
		benchModels.m = map[string]*Model{}
	}
	benchModels.m[key] = m
	return m
}

// blockFlops is one block's executed FLOPs for b sequences of t rows when the last rows
// is q rows per sequence (t for an ordinary block, 1 for a pooled last block).
func blockFlops(b, t, q, w int) float64 {
	qkv := 2.0 * float64(b*t) * float64(3*w*w)
	rest := 2.0 * float64(b*q) * float64(w*w+8*w*w) // out_proj, c_fc, c_proj
	attn := 4.0 * float64(b*q*t*w)
	return qkv + rest + attn
}

func towerFlops(b, t, w, layers, e int) float64 {
	f := float64(layers-1) * blockFlops(b, t, t, w)
	f += blockFlops(b, t, 1, w)
	return f + 2*float64(b*w*e)
}

func imageFlops(cfg Config, b int) float64 {
	v := cfg.Vision
	patch := 2.0 * float64(b*(v.Tokens()-1)*3*v.PatchSize*v.PatchSize*v.Width)
	return patch + towerFlops(b, v.Tokens(), v.Width, v.Layers, cfg.EmbedDim)
}

func dtName(dt native.DType) string { return strings.ToLower(dt.String()) }

const benchTextTokens = 60 // the anchor's --text-len

func BenchmarkEncodeImage(b *testing.B) {
	for _, layers := range benchInts(b, *benchLayerList, 2, 24) {
		for _, dt := range []native.DType{native.F32, native.Q8_0} {
			for _, batch := range benchInts(b, *benchBatchList) {
				b.Run(fmt.Sprintf("dev=%s/model=L/layers=%d/dtype=%s/batch=%d", *benchDeviceName, layers, dtName(dt), batch), func(b *testing.B) {
					m := benchModel(b, layers, dt)
					c := benchCtx(b)
					defer c.Close()
					s := m.Config.Vision.Resolution
					r := rand.New(rand.NewPCG(1, 2))
					px := make([]float32, batch*3*s*s)
					for i := range px {
						px[i] = float32(r.NormFloat64())
					}
					x := c.Upload(px, batch, 3, s, s)
					mk := c.Mark()
					for b.Loop() {
						m.EncodeImage(c, x)
						c.Sync()
						c.Release(mk)
					}
					sec := b.Elapsed().Seconds() / float64(b.N)
					b.ReportMetric(float64(batch)/sec, "images/s")
					b.ReportMetric(imageFlops(m.Config, batch)/sec/1e9, "GFLOP/s")
				})
			}
		}
	}
}

func BenchmarkEncodeText(b *testing.B) {
	for _, layers := range benchInts(b, *benchLayerList, 2, 12) {
		for _, dt := range []native.DType{native.F32, native.Q8_0} {
			for _, batch := range benchInts(b, *benchBatchList) {
				b.Run(fmt.Sprintf("dev=%s/model=L/layers=%d/dtype=%s/batch=%d/tokens=%d", *benchDeviceName, layers, dtName(dt), batch, benchTextTokens+2), func(b *testing.B) {
					m := benchModel(b, layers, dt)
					c := benchCtx(b)
					defer c.Close()
					r := rand.New(rand.NewPCG(3, 4))
					ids := make([][]int32, batch)
					for i := range ids {
						ids[i] = randomIDs(r, benchTextTokens+2, m.Config.Text.Vocab)
					}
					for b.Loop() {
						m.EncodeText(c, ids)
						c.Sync()
						c.Release(native.Mark{})
					}
					sec := b.Elapsed().Seconds() / float64(b.N)
					t := m.Config.Text
					b.ReportMetric(float64(batch)/sec, "texts/s")
					b.ReportMetric(towerFlops(batch, benchTextTokens+2, t.Width, t.Layers, m.Config.EmbedDim)/sec/1e9, "GFLOP/s")
				})
			}
		}
	}
}

// BenchmarkGEMM is the GEMM rate the encoders are measured against: the ViT-L MLP's c_fc
// (x [B*257, 1024] @ W^T, W [4096, 1024]) with its QuickGELU epilogue.
func BenchmarkGEMM(b *testing.B) {
	const n, k = 4096, 1024
	r := rand.New(rand.NewPCG(5, 6))
	w := make([]float32, n*k)
	for i := range w {
		w[i] = float32(r.NormFloat64()) / 32
	}
	for _, dt := range []native.DType{native.F32, native.Q8_0} {
		var mat *native.Matrix
		var err error
		if dt == native.F32 {
			mat, err = native.NewMatrixF32(w, n, k)
		} else {
			mat, err = native.QuantizeMatrix(w, n, k, dt)
		}
		if err != nil {
			b.Fatal(err)
		}
		for _, rows := range []int{257, 8 * 257} {
			b.Run(fmt.Sprintf("dtype=%s/m=%d/n=%d/k=%d", dtName(dt), rows, n, k), func(b *testing.B) {
				c := native.NewCtx(benchThreads)
				defer c.Close()
				x := native.NewTensor(rows, k)
				xs := x.F32()
				for i := range xs {
					xs[i] = float32(r.NormFloat64())
				}
				for b.Loop() {
					c.Linear(x, mat, native.Tensor{}, native.QuickGELU, native.Tensor{})
					c.Release(native.Mark{})
				}
				b.ReportMetric(2*float64(rows*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
