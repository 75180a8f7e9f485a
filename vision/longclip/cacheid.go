package longclip

import (
	"fmt"
	"strings"
)

// PreprocessingIDs name everything besides the checkpoint's bytes that decides an image
// or a text embedding of this Embedder, for embedding caches keyed on (weights hash,
// preprocessing, input): the in-memory dtype, upstream's fp16 rounding, the image
// transform at the model's resolution, and the tokenizer's vocabulary and context
// length, both taken from the model and tokenizer actually loaded.
func (e *Embedder) PreprocessingIDs() (image, text string) {
	weights := "dtype=" + strings.ToLower(e.m.opt.DType.String())
	if e.m.opt.UpstreamFP16 {
		weights += " upstream-fp16"
	}
	vocab := "none"
	if e.tok != nil {
		vocab = e.tok.Fingerprint()[:16]
	}
	image = fmt.Sprintf("%s@%d %s", PreprocessID, e.m.Config.Vision.Resolution, weights)
	text = fmt.Sprintf("cliptok vocab=%s context=%d truncate %s", vocab, e.m.Config.Text.Context, weights)
	return image, text
}
