// Package nn holds the layers the vision models share, on top of native: Linear (with an
// optional live LoRA), LayerNorm, and a Loader that builds them from checkpoint tensors by
// name (weights.Scope), applying the weight dtype the user asked for and merging or
// attaching LoRA adapters. Once a layer holds its own copy of a tensor (a packed
// native.Matrix, a converted slice), the Loader releases the tensor's pages of a mapped
// checkpoint (weights.Source.Release), so a model costs its weights once.
//
// nn imports native and weights only.
package nn
