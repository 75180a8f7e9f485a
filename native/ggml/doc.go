// Package ggml is synth's bridge to the linked ggml (the one llama.cpp uses, compiled
// from the pinned ollama module): for now its quantizers and converters, so that synth
// convert writes the same bytes as ggml_quantize_chunk at ggml's speed (Codec, a
// weights.Codec), and the anchor benchmarks that run ggml's own CPU matrix multiply on
// the same weights as our kernels. ggml's compute backend for native's ops is to live
// here as well.
//
// It is one of the few cgo packages (DESIGN.md); its Go API takes and returns Go values
// only. It imports weights (the dtypes) and nothing else of synth.
package ggml
