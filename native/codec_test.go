package native

import (
	"bytes"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"synth/native/ggml"
	"synth/weights"
)

// TestCodecIsGGML: the Codec synth convert uses writes exactly ggml_quantize_chunk's
// bytes for every type it writes, the vector-quantized ones included, at 1 and 3 threads,
// with non-finite values in the data.
func TestCodecIsGGML(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const rows, cols = 19, 512
	src := make([]float32, rows*cols)
	for i := range src {
		src[i] = float32(r.NormFloat64()) * 3
	}
	src[7], src[700] = float32(math.Inf(-1)), float32(math.NaN())
	for _, threads := range []int{1, 3} {
		for _, d := range []weights.DType{weights.F16, weights.Q8_0, weights.Q4_0, weights.Q4_K, weights.Q6_K} {
			got, err := Codec{Threads: threads}.Quantize(d, src, rows, cols)
			if err != nil {
				t.Fatal(err)
			}
			want, err := ggml.Codec{Threads: 1}.Quantize(d, src, rows, cols)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s, %d threads: bytes differ from ggml_quantize_chunk's", d, threads)
			}
		}
	}
}

// TestConvertSameFile: synth convert's GGUF is the same file through synth's and ggml's codecs as
// through the pure-Go one, for F16 and F32 checkpoints to every type both write.
func TestConvertSameFile(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	dir := t.TempDir()
	v := randFloats(r, 96*512, 0.5)
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
		var files [3][]byte
		for i, codec := range []weights.Codec{nil, Codec{Threads: 3}, ggml.Codec{Threads: 2}} {
			out := filepath.Join(dir, fmt.Sprintf("out%d.gguf", i))
			if _, err := weights.ConvertToGGUF(src, out, weights.ConvertOptions{Type: d, Architecture: "test", Codec: codec}); err != nil {
				t.Fatal(err)
			}
			if files[i], err = os.ReadFile(out); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(files[0], files[1]) || !bytes.Equal(files[0], files[2]) {
			t.Errorf("%s: the GGUFs through synth's codec and ggml's differ from the pure-Go one's", d)
		}
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
// Q4_K: impl=go is the pure-Go codec (the path before), impl=ggml ggml_quantize_chunk
// alone, impl=synth the Codec synth convert uses (ggml, with the vector quantizers).
// MB/s counts the checkpoint's f16 bytes. The whole 2.7B model needs about 8 GB for the
// checkpoint plus 4 GB for a Q8_0 GGUF on disk and a few GB of RAM:
//
//	go test -run '^$' -bench Convert -benchtime 1x ./native -convert.dir /tmp/conv \
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
		for _, impl := range []string{"go", "ggml", "synth"} {
			opts := weights.ConvertOptions{Type: d, Architecture: "blip-2", Config: []byte("{}"), Threads: 0}
			switch {
			case impl == "ggml":
				opts.Codec = ggml.Codec{}
			case impl == "synth":
				opts.Codec = Codec{}
			case d == weights.Q4_K:
				continue // the pure-Go path has no K-quant encoder
			}
			b.Run(fmt.Sprintf("impl=%s/type=%s", impl, d), func(b *testing.B) {
				opts.Threads = 0
				if impl == "go" {
					opts.Threads = runtime.GOMAXPROCS(0)
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
		v := randFloats(r, out*in, 0.02)
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
