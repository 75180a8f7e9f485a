package nn

import (
	"fmt"

	"synth/native"
)

// Activation maps a Hugging Face activation name (config hidden_act /
// activation_function) to the native epilogue that computes it.
func Activation(name string) (native.Epilogue, error) {
	switch name {
	case "gelu":
		return native.GELU, nil
	case "gelu_new", "gelu_pytorch_tanh", "gelu_fast":
		return native.GELUTanh, nil
	case "quick_gelu":
		return native.QuickGELU, nil
	case "relu":
		return native.ReLU, nil
	}
	return 0, fmt.Errorf("nn: activation %q is not supported (gelu, gelu_new, gelu_pytorch_tanh, quick_gelu, relu)", name)
}
