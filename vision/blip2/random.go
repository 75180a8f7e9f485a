package blip2

import (
	"fmt"

	"synth/vision/nn"
	"synth/weights"
)

// Random loads a BLIP-2 model of config.json js with made-up weights (nn.RandomWeights,
// seeded), for tests, benchmarks at the real sizes and the demo. The tensor names and
// shapes come from Load itself, through a weights.Synthetic source, which is returned:
// its Tensors are the checkpoint the model read (the demo writes them as an HF folder).
func Random(js []byte, seed uint64, ro nn.RandomOptions, o Options) (*Model, *weights.Source, error) {
	src := weights.Synthetic(fmt.Sprintf("random-blip2-%d", seed), js, nn.RandomWeights(seed, ro))
	m, err := Load(src, o)
	if err != nil {
		return nil, nil, err
	}
	return m, src, nil
}
