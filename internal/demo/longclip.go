package demo

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"

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
	vocab := 512 + len(merges) + 2
	rt := &randTensors{r: rand.New(rand.NewPCG(seed, 0xc11))}
	vw, tw, grid := d.VisionWidth, d.TextWidth, clipResolution/d.Patch
	rt.normal("positional_embedding", 0.01, clipContext, tw)
	rt.normal("positional_embedding_res", 0.01, clipContext, tw)
	rt.normal("text_projection", 1/math.Sqrt(float64(tw)), tw, d.Embed)
	rt.add("logit_scale", []int{}, func(int) float64 { return math.Log(1 / 0.07) })
	rt.normal("visual.class_embedding", 1/math.Sqrt(float64(vw)), vw)
	rt.normal("visual.positional_embedding", 1/math.Sqrt(float64(vw)), grid*grid+1, vw)
	rt.normal("visual.proj", 1/math.Sqrt(float64(vw)), vw, d.Embed)
	rt.normal("visual.conv1.weight", 1/math.Sqrt(float64(3*d.Patch*d.Patch)), vw, 3, d.Patch, d.Patch)
	rt.layerNorm("visual.ln_pre", vw)
	blocks := func(prefix string, w, layers int) {
		for i := 0; i < layers; i++ {
			p := fmt.Sprintf("%s%d.", prefix, i)
			rt.normal(p+"attn.in_proj_weight", 1/math.Sqrt(float64(w)), 3*w, w)
			rt.normal(p+"attn.in_proj_bias", 0.02, 3*w)
			rt.linear(p+"attn.out_proj", w, w, true)
			rt.layerNorm(p+"ln_1", w)
			rt.linear(p+"mlp.c_fc", 4*w, w, true)
			rt.linear(p+"mlp.c_proj", w, 4*w, true)
			rt.layerNorm(p+"ln_2", w)
		}
	}
	blocks("visual.transformer.resblocks.", vw, d.VisionLayers)
	rt.layerNorm("visual.ln_post", vw)
	blocks("transformer.resblocks.", tw, d.TextLayers)
	rt.normal("token_embedding.weight", 0.02, vocab, tw)
	rt.layerNorm("ln_final", tw)
	// upstream's state dict order: as the model registers its parameters (kept as built)
	if err := weights.WriteTorch(ptPath, rt.out); err != nil {
		return err
	}
	return nil
}

// longCLIPFiles are the names the demo's Long-CLIP folder uses.
func longCLIPFiles(dir string) (pt, vocab string) {
	return filepath.Join(dir, "LongCLIP-demo.pt"), filepath.Join(dir, "bpe_simple_vocab_16e6.txt.gz")
}
