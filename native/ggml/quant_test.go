package ggml

import (
	"bytes"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"synth/weights"
)

func randValues(r *rand.Rand, n int, scale float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64()) * scale
	}
	return v
}

// TestCodecMatchesPureGo: the ggml codec writes exactly the bytes of the pure-Go
// quantizers (themselves tested against ggml), and decodes exactly like Dequantize,
// for every type both have, at 1 and 3 threads; the K-quants decode like the pure-Go
// decoders too.
func TestCodecMatchesPureGo(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const rows, cols = 37, 512
	src := randValues(r, rows*cols, 1)
	src[5], src[700] = 0, float32(math.Copysign(0, -1))
	for _, threads := range []int{1, 3} {
		c := Codec{Threads: threads}
		for _, d := range []weights.DType{weights.F32, weights.F16, weights.BF16, weights.Q8_0, weights.Q4_0, weights.Q4_1,
			weights.Q5_0, weights.Q5_1, weights.Q4_K, weights.Q5_K, weights.Q6_K} {
			got, err := c.Quantize(d, src, rows, cols)
			if err != nil {
				t.Fatalf("%s: %v", d, err)
			}
			if want, err := weights.Quantize(d, src); err == nil {
				if !bytes.Equal(got, want) {
					t.Fatalf("%s threads %d: ggml's bytes differ from the pure-Go quantizer's", d, threads)
				}
			} else if d != weights.Q4_K && d != weights.Q5_K && d != weights.Q6_K {
				t.Fatalf("%s: %v", d, err)
			}
			back, err := c.ToF32(d, got, len(src))
			if err != nil {
				t.Fatalf("%s: %v", d, err)
			}
			want, err := weights.Dequantize(d, got, len(src))
			if err != nil {
				t.Fatal(err)
			}
			for i := range want {
				if math.Float32bits(back[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%s threads %d: value %d decodes to %v, pure Go %v", d, threads, i, back[i], want[i])
				}
			}
		}
	}
}

// TestVectorPathIsGGML: the types Codec quantizes with synth's vector quantizers come
// out as ggml_quantize_chunk writes them.
func TestVectorPathIsGGML(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const rows, cols = 19, 320
	src := randValues(r, rows*cols, 3)
	src[7] = float32(math.Inf(-1))
	c := Codec{Threads: 3}
	for d := range vectorQuant {
		got, err := c.Quantize(d, src, rows, cols)
		if err != nil {
			t.Fatal(err)
		}
		gt, _ := ggmlType(d)
		want := make([]byte, len(got))
		if err := c.quantizeGGML(gt, d, src, rows, cols, len(got)/rows, want); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: the vector quantizer's bytes differ from ggml_quantize_chunk's", d)
		}
	}
}

func TestCodecRejects(t *testing.T) {
	c := Codec{}
	if _, err := c.Quantize(weights.Q4_K, make([]float32, 2*128), 2, 128); err == nil {
		t.Error("Q4_K rows of 128 values accepted")
	}
	if _, err := c.Quantize(weights.Q8_0, make([]float32, 64), 3, 32); err == nil {
		t.Error("3 rows of 32 from 64 values accepted")
	}
	if _, err := c.Quantize(weights.I32, make([]float32, 32), 1, 32); err == nil {
		t.Error("an integer type accepted")
	}
	if _, err := c.ToF32(weights.F16, make([]byte, 3), 2); err == nil {
		t.Error("2 halfs from 3 bytes accepted")
	}
}

var (
	convertDir    = flag.String("convert.dir", "", "BenchmarkConvert: folder for the random checkpoint and the GGUF (default: a temp folder)")
	convertLayers = flag.Int("convert.layers", 2, "BenchmarkConvert: OPT-2.7B decoder layers of the random checkpoint (the real model: 32, plus -convert.vision 39 -convert.qformer 12)")
	convertVision = flag.Int("convert.vision", 1, "BenchmarkConvert: EVA ViT-g layers")
	convertQF     = flag.Int("convert.qformer", 1, "BenchmarkConvert: Q-Former layers")
)

// BenchmarkConvert is synth convert's work on a random BLIP-2 OPT-2.7B checkpoint at the
// real shapes (F16 safetensors, the HF layout; depth set by the flags), to Q8_0 and
// Q4_K: impl=go is the pure-Go codec (the path before ggml's), impl=ggml the ggml codec.
// MB/s counts the checkpoint's f16 bytes. The whole 2.7B model needs about 8 GB for the
// checkpoint plus 4 GB for a Q8_0 GGUF on disk and a few GB of RAM:
//
//	go test -run '^$' -bench Convert -benchtime 1x ./native/ggml -convert.dir /tmp/conv \
//	    -convert.layers 32 -convert.vision 39 -convert.qformer 12
func BenchmarkConvert(b *testing.B) {
	dir := *convertDir
	if dir == "" {
		dir = b.TempDir()
	}
	in := filepath.Join(dir, fmt.Sprintf("blip2-random-v%d-q%d-t%d.safetensors", *convertVision, *convertQF, *convertLayers))
	if _, err := os.Stat(in); err != nil {
		start := time.Now()
		if err := writeRandomBLIP2(in, *convertVision, *convertQF, *convertLayers); err != nil {
			b.Fatal(err)
		}
		b.Logf("wrote %s in %s", in, time.Since(start).Round(time.Millisecond))
	}
	src, err := weights.Open(in)
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	var inBytes int64
	for _, t := range src.Tensors() {
		inBytes += int64(len(t.Data))
	}
	out := filepath.Join(dir, "converted.gguf")
	defer os.Remove(out)
	for _, d := range []weights.DType{weights.Q8_0, weights.Q4_K} {
		for _, impl := range []string{"go", "ggml"} {
			opts := weights.ConvertOptions{Type: d, Architecture: "blip-2", Config: []byte("{}"), Threads: 0}
			if impl == "ggml" {
				opts.Codec = Codec{}
			} else if d == weights.Q4_K {
				continue // the pure-Go path has no K-quant encoder
			}
			b.Run(fmt.Sprintf("impl=%s/type=%s", impl, d), func(b *testing.B) {
				opts.Threads = 0
				if impl == "go" {
					opts.Threads = Codec{}.threads()
				}
				b.SetBytes(inBytes)
				for b.Loop() {
					if _, err := weights.ConvertToGGUF(src, out, opts); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// writeRandomBLIP2 writes the Linear weights of a BLIP-2 OPT-2.7B checkpoint (F16, the HF
// names and shapes) with vision, qformer and text layers: the tensors that dominate a
// conversion.
func writeRandomBLIP2(path string, vision, qformer, text int) error {
	r := rand.New(rand.NewPCG(3, 4))
	var ts []weights.Tensor
	add := func(name string, out, in int) {
		v := randValues(r, out*in, 0.02)
		data := make([]byte, 2*len(v))
		for i, x := range v {
			h := weights.F32ToF16(x)
			data[2*i], data[2*i+1] = byte(h), byte(h>>8)
		}
		ts = append(ts, weights.Tensor{Name: name, DType: weights.F16, Shape: []int{out, in}, Data: data})
	}
	for i := range vision {
		p := fmt.Sprintf("vision_model.encoder.layers.%d.", i)
		add(p+"self_attn.qkv.weight", 3*1408, 1408)
		add(p+"self_attn.projection.weight", 1408, 1408)
		add(p+"mlp.fc1.weight", 6144, 1408)
		add(p+"mlp.fc2.weight", 1408, 6144)
	}
	for i := range qformer {
		p := fmt.Sprintf("qformer.encoder.layer.%d.", i)
		for _, s := range []string{"query", "key", "value"} {
			add(p+"attention.attention."+s+".weight", 768, 768)
		}
		add(p+"attention.output.dense.weight", 768, 768)
		add(p+"intermediate_query.dense.weight", 3072, 768)
		add(p+"output_query.dense.weight", 768, 3072)
		if i%2 == 0 {
			add(p+"crossattention.attention.query.weight", 768, 768)
			add(p+"crossattention.attention.key.weight", 768, 1408)
			add(p+"crossattention.attention.value.weight", 768, 1408)
			add(p+"crossattention.output.dense.weight", 768, 768)
		}
	}
	for i := range text {
		p := fmt.Sprintf("language_model.model.decoder.layers.%d.", i)
		for _, s := range []string{"q_proj", "k_proj", "v_proj", "out_proj"} {
			add(p+"self_attn."+s+".weight", 2560, 2560)
		}
		add(p+"fc1.weight", 10240, 2560)
		add(p+"fc2.weight", 2560, 10240)
	}
	add("language_model.model.decoder.embed_tokens.weight", 50272, 2560)
	return weights.WriteSafetensors(path, ts, nil)
}

// TestConvertSameFile: synth convert's GGUF is the same file through the ggml codec as
// through the pure-Go one, for F16 and F32 checkpoints to every type both write.
func TestConvertSameFile(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	dir := t.TempDir()
	v := randValues(r, 96*512, 0.5)
	f16, err := weights.Quantize(weights.F16, v)
	if err != nil {
		t.Fatal(err)
	}
	f32, err := weights.Quantize(weights.F32, v)
	if err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(dir, "model.safetensors")
	if err := weights.WriteSafetensors(in, []weights.Tensor{
		{Name: "a.weight", DType: weights.F16, Shape: []int{96, 512}, Data: f16},
		{Name: "b.weight", DType: weights.F32, Shape: []int{96, 512}, Data: f32},
		{Name: "b.bias", DType: weights.F32, Shape: []int{512}, Data: f32[:4*512]},
	}, nil); err != nil {
		t.Fatal(err)
	}
	src, err := weights.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for _, d := range []weights.DType{weights.F16, weights.BF16, weights.Q8_0, weights.Q4_0, weights.Q5_1} {
		var files [2][]byte
		for i, codec := range []weights.Codec{nil, Codec{Threads: 3}} {
			out := filepath.Join(dir, fmt.Sprintf("out%d.gguf", i))
			if _, err := weights.ConvertToGGUF(src, out, weights.ConvertOptions{Type: d, Architecture: "test", Codec: codec}); err != nil {
				t.Fatal(err)
			}
			if files[i], err = os.ReadFile(out); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(files[0], files[1]) {
			t.Errorf("%s: the ggml codec's GGUF differs from the pure-Go one's", d)
		}
	}
}
