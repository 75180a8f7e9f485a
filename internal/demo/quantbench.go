package demo

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"synth/internal/llamagguf"
	"synth/weights"
)

// QuantBench is what WriteQuantBench puts in its folder.
type QuantBench struct {
	Sample   string // manifest of products with images, a text and keywords
	BLIP2    string // HF folder (QuantBLIP2)
	LongCLIP string // .pt, the merges file beside it
	Llama    string // F32 GGUF, the reference
	// LlamaLevels are the same Llama at other levels, by level name ("q4_0"): the F32
	// weights quantized, as llama-quantize would write them (synth does not quantize
	// Llama GGUFs itself).
	LlamaLevels map[string]string
}

// QuantBLIP2 is DemoBLIP2 at widths of whole 32-value blocks, so that its matrices can
// be stored at the 32-block levels (q8_0, q4_0, ...) that the demo's 48-wide ones cannot.
var QuantBLIP2 = BLIP2Dims{
	VisionHidden: 64, VisionLayers: 2, VisionHeads: 4, VisionMLP: 128,
	QHidden: 64, QLayers: 2, QHeads: 4, QMLP: 128, QCrossFreq: 2, Queries: 8,
	TextHidden: 64, TextLayers: 2, TextHeads: 4, TextFFN: 128, MaxPos: 160,
	Merges: 400,
}

// WriteQuantBench writes the inputs of a quantization benchmark of all three demo
// models into dir: a sample of n products and the tiny models, the Llama also at each
// of llamaLevels.
func WriteQuantBench(dir string, n int, llamaLevels []weights.DType, seed uint64) (QuantBench, error) {
	q := QuantBench{
		BLIP2:       filepath.Join(dir, "models", "blip2-opt-demo"),
		Llama:       filepath.Join(dir, "models", "llama-3.1-demo-f32.gguf"),
		LlamaLevels: map[string]string{},
	}
	var err error
	if q.Sample, err = WriteSample(filepath.Join(dir, "data"), n, 2, seed); err != nil {
		return q, err
	}
	if err := WriteBLIP2(q.BLIP2, filepath.Join(dir, "models", "blip2-lora"), QuantBLIP2, seed); err != nil {
		return q, err
	}
	pt, vocab := longCLIPFiles(filepath.Join(dir, "models", "longclip"))
	if err := os.MkdirAll(filepath.Dir(pt), 0o755); err != nil {
		return q, fmt.Errorf("demo: %w", err)
	}
	if err := WriteLongCLIP(pt, vocab, DemoLongCLIP, seed); err != nil {
		return q, err
	}
	q.LongCLIP = pt
	llama := llamagguf.Tiny
	llama.Name, llama.Seed, llama.Quantize = "llama-3.1-demo", seed, true
	if err := llamagguf.Write(q.Llama, llama); err != nil {
		return q, fmt.Errorf("demo: %w", err)
	}
	for _, dt := range llamaLevels {
		name := strings.ToLower(dt.String())
		path := filepath.Join(dir, "models", "llama-3.1-demo-"+name+".gguf")
		llama.DType = dt
		if err := llamagguf.Write(path, llama); err != nil {
			return q, fmt.Errorf("demo: %w", err)
		}
		q.LlamaLevels[name] = path
	}
	return q, nil
}
