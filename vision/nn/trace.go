package nn

import (
	"fmt"

	"synth/native"
)

// Tracer receives a model's intermediate activations by name as a forward pass makes
// them (the parity tests compare them with the fixtures' intermediates, block by block,
// to say which block diverges first). The tensor is valid during the call only, on the
// model's device: copy it out (Ctx.ToHost) to keep it. A nil Tracer is off and costs
// nothing.
type Tracer func(name string, x native.Tensor)

// At reports x as name.
func (t Tracer) At(name string, x native.Tensor) {
	if t != nil {
		t(name, x)
	}
}

// Layer reports x as name with the layer index appended ("vision_hidden_states.3").
func (t Tracer) Layer(name string, i int, x native.Tensor) {
	if t != nil {
		t(fmt.Sprintf("%s.%d", name, i), x)
	}
}
