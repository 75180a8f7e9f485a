// Package llm runs the paper's two LLM steps with an instruction-tuned model through
// the thin llama.cpp binding in llm/llamacpp: translating Korean product listings to
// English (step 0, done offline) and turning keyword lists into sentence descriptions
// (step 2: Llama-3.1-8B-Instruct with few-shot style examples), in English or Korean.
//
//   - prompt.go: few-shot style files (ReadExamples) and the Prompter that formats a
//     system turn + few-shot pairs as user/assistant turns + an item's turn with the
//     model's chat template, split into a shared prefix (decoded once) and a per-item
//     suffix. lang.go: the rewrite instruction and built-in examples per language.
//   - generate.go: the Generator, continuous batching over P slots in one unified KV
//     cache; the prefix is shared with every slot, each step is one llama_decode.
//   - job.go: RunJob, the batch engine both commands share: tasks of one or more
//     generations (parts) through one Generator, a retry below a score, per-item
//     errors, one resumable output record per task. A Recorder says what a command
//     scores and writes.
//   - rewrite.go: the Rewriter (Recorder of `synth rewrite`), ExamplesFrom.
//   - translate.go: the Translator (Recorder of `synth translate`): one part per field,
//     the translated manifest line; faithful.go: the check that a translation kept the
//     source's numbers, units and Latin-script words.
//   - coverage.go, hangul.go: keyword coverage, English and Korean (particles, stems,
//     spacing), across languages through a Glossary (glossary.go).
//   - quantize.go: quantizing the user's F16 GGUF to a llama.cpp file type (synth
//     quantize), with an importance matrix read from llama-imatrix's files.
//
// llm may import llm/llamacpp, weights and dataset. It must not import vision, eval,
// native or cmd.
package llm
