// Package nn holds the layers the vision models share, on top of native: Linear (with an
// optional live LoRA), LayerNorm, and a Loader that builds them from checkpoint tensors by
// name (weights.Scope), applying the weight dtype the user asked for and merging or
// attaching LoRA adapters.
//
// nn imports native and weights only.
package nn
