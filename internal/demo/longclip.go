package demo

import (
	"fmt"
	"path/filepath"

	"synth/vision/longclip"
	"synth/vision/nn"
	"synth/weights"
)

// LongCLIPDims are the demo Long-CLIP's sizes: upstream's architecture (ViT with
// ln_pre/ln_post, 248-token text tower with positional_embedding_res) at tiny widths.
// Widths are multiples of 64 so upstream's heads = width // 64 holds, as for the
// released checkpoints: the .pt needs no config beside it.
type LongCLIPDims struct {
	Embed, VisionWidth, VisionLayers, Patch, TextWidth, TextLayers int
	Merges                                                         int
}

// DemoLongCLIP keeps the demo's evaluation fast on 2 cores.
var DemoLongCLIP = LongCLIPDims{Embed: 64, VisionWidth: 128, VisionLayers: 2, Patch: 32, TextWidth: 128, TextLayers: 2, Merges: 800}

const (
	clipResolution = 224
	clipContext    = 248
)

// WriteLongCLIP writes a Long-CLIP state dict with random weights as a torch .pt at
// ptPath, and the CLIP merges file it pairs with at vocabPath (the layout of
// bpe_simple_vocab_16e6.txt.gz, with fewer merges).
func WriteLongCLIP(ptPath, vocabPath string, d LongCLIPDims, seed uint64) error {
	merges := trainCLIP(corpus(seed), d.Merges)
	if err := writeCLIPMerges(vocabPath, merges); err != nil {
		return err
	}
	heads := func(w int) int { return w / 64 } // upstream's rule: the .pt needs no config
	cfg := longclip.Config{EmbedDim: d.Embed, Eps: longclip.LayerNormEps,
		Vision: longclip.VisionConfig{Width: d.VisionWidth, Layers: d.VisionLayers, Heads: heads(d.VisionWidth), PatchSize: d.Patch, Resolution: clipResolution},
		Text:   longclip.TextConfig{Width: d.TextWidth, Layers: d.TextLayers, Heads: heads(d.TextWidth), Context: clipContext, Vocab: 512 + len(merges) + 2}}
	// the state dict longclip.Load reads, in the order it reads it
	m, err := longclip.Random(cfg, seed, nn.RandomOptions{}, longclip.Options{})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	return weights.WriteTorch(ptPath, m.Checkpoint())
}

// longCLIPFiles are the names the demo's Long-CLIP folder uses.
func longCLIPFiles(dir string) (pt, vocab string) {
	return filepath.Join(dir, "LongCLIP-demo.pt"), filepath.Join(dir, "bpe_simple_vocab_16e6.txt.gz")
}
