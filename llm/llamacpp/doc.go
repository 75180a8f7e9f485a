// Package llamacpp is synth's thin cgo binding to llama.cpp. It is the only package under
// llm/ with cgo.
//
// The C sources come from the pinned Go module github.com/ollama/ollama (v0.17.4, which
// carries llama.cpp commit ec98e2002 and its ggml as cgo packages): the blank import of
// github.com/ollama/ollama/llama/llama.cpp/src compiles and links llama.cpp + ggml, and
// the headers are included through the third_party/llama.cpp and third_party/ggml links
// that `make` creates. llama.cpp stays unpatched; what we need differently is a wrapper
// here (shim.c). No C type crosses this package's API.
//
// What it offers, each a small layer over the C API of that commit:
//
//   - Model (LoadModel: GGUF through mmap, GPU layers passed through): vocabulary,
//     Tokenize / TokenPiece / Detokenize with special tokens, end-of-generation tokens,
//     the chat template from the GGUF metadata and ApplyChatTemplate.
//   - Context (NewContext: n_ctx, n_batch, n_seq_max sequences, optionally one unified
//     KV cache): Decode of a Batch, Logits, and the KV memory per sequence (SeqCopy to
//     share a decoded prefix, SeqRemove, ClearMemory).
//   - Batch: tokens with positions, sequence ids and output flags, in C memory written
//     from Go without a cgo call per token.
//   - Sampler: a llama.cpp sampler chain (temperature, top-k, top-p, min-p, repeat
//     penalty, logit bias, seed) sampling from a Decode's outputs.
//   - Quantize: llama_model_quantize for a llama.cpp file type, with an importance
//     matrix handed over through quantize.cpp (the API takes it as a C++ map).
//   - The build and devices: SystemInfo, CPUFeatures (the SIMD level ggml-cpu was
//     compiled for), Devices, and Modules: the ggml GPU backend modules loaded at start-up
//     from $SYNTH_GGML_BACKENDS or, unset, lib/synth beside the executable.
//
// Safety: llama.cpp aborts the process on some bad input (token or sequence ids out of
// range, a batch larger than n_batch, reading logits that were not requested). Every
// such value is checked here first and becomes an error wrapping one of the sentinel
// errors (ErrToken, ErrSeq, ErrBatch, ErrNoLogits, ...). Errors llama.cpp reports itself
// carry the reason it logged. Its log goes to log/slog (SetLogger); log.go holds the
// only callback from C.
//
// Models, contexts, batches and samplers own C memory: Close them. A Context is used by
// one goroutine at a time; a Model may be shared.
//
// Before llama.cpp sees a file, LoadModel reads it with synth's own GGUF parser and checks
// the metadata llama.cpp trusts (check.go), so a malformed model is an error, not an
// abort. From synth, llamacpp imports synth/native/ggml, the one owner of ggml's backend
// registry (it loads the GPU modules once for llama.cpp and native alike), and weights,
// the standard-library leaf that parses GGUF.
package llamacpp
