// Package ggml is synth's binding to the linked ggml (the one llama.cpp uses, compiled
// from the pinned ollama module): its devices, buffers and graphs for native's ggml
// executor, the backend modules shared with llama.cpp, its quantizers and converters
// (Codec: ggml_quantize_chunk, the bytes llama.cpp's quantizer writes, for synth convert
// and the K-quants), and its CPU matrix multiply as a benchmark anchor (MulMat).
//
// It is one of the few cgo packages (DESIGN.md); its Go API takes and returns Go values
// only. It imports weights (the dtypes) and nothing else of synth: llm/llamacpp imports
// it, and llm must not reach native or kernels.
package ggml
