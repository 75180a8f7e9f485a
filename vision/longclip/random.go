package longclip

import (
	"fmt"

	"synth/vision/nn"
	"synth/weights"
)

// Random loads a Long-CLIP model of cfg with made-up weights (nn.RandomWeights, seeded)
// for tests and for benchmarks at the real sizes without a checkpoint file. The
// tensors and their names come from Load itself, through a weights.Synthetic source;
// Checkpoint lists them afterwards:
//
//	m, _ := longclip.Random(longclip.LongCLIPL, 1, nn.RandomOptions{Shared: true}, longclip.Options{})
func Random(cfg Config, seed uint64, ro nn.RandomOptions, opt Options) (*Model, error) {
	src := weights.Synthetic(fmt.Sprintf("random-longclip-%d", seed), nil, nn.RandomWeights(seed, ro))
	return Load(src, cfg, opt)
}

// Checkpoint is the state dict the model was loaded from, upstream's names and
// shapes, as a torch .pt would hold it (for a Random model: to write one).
func (m *Model) Checkpoint() []weights.Tensor { return m.src.Tensors() }
