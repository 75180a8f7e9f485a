// Package llm turns keyword lists into sentence descriptions with an instruction-tuned
// LLM: Llama-3.1 chat prompts, few-shot style prompts and batched parallel generation.
// It runs the model through the thin llama.cpp binding in llm/llamacpp.
//
// llm may import llm/llamacpp, weights and dataset. It must not import vision, eval or cmd.
package llm
