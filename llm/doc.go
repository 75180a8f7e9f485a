// Package llm turns keyword lists into sentence descriptions with an instruction-tuned
// LLM (the paper's step 2: Llama-3.1-8B-Instruct with few-shot style examples). It runs
// the model through the thin llama.cpp binding in llm/llamacpp.
//
//   - prompt.go: few-shot style files (ReadExamples), the rewrite instruction, and the
//     Prompter that formats system turn + examples as user/assistant turns + the
//     product's turn with the model's chat template, split into a shared prefix (decoded
//     once) and a per-product suffix.
//   - generate.go: the Generator, continuous batching over P slots in one unified KV
//     cache; the prefix is shared with every slot, each step is one llama_decode.
//   - coverage.go: the faithfulness measure (fraction of keywords found in the text).
//   - quantize.go: quantizing the user's F16 GGUF to a llama.cpp file type (synth
//     quantize), with an importance matrix read from llama-imatrix's files.
//
// llm may import llm/llamacpp, weights and dataset. It must not import vision, eval,
// native or cmd.
package llm
