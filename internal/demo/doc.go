// Package demo builds the bundled default job of `synth demo` / `make demo`: a small
// product set drawn on the fly (garment-like images with colours and patterns, source
// descriptions, keyword lists, few-shot style examples) and tiny random-weight models in
// the real formats (an HF-style BLIP-2 folder, a Long-CLIP .pt, a Llama GGUF).
//
// Random weights make meaningless text; the demo shows the pipeline end to end, not
// quality. Everything is generated from a seed, so two runs build the same files.
package demo
