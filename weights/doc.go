// Package weights reads and writes checkpoint formats: safetensors (single and sharded),
// torch .pt state dicts (a restricted unpickler: data, never code), PEFT LoRA adapters and
// GGUF with quantization. It has no model knowledge.
//
// Reading: Open(path) detects the format (a Hugging Face folder, .safetensors, a
// safetensors or .bin index, a torch.save zip, .gguf) and returns a Source: the tensor
// list (name, dtype, shape in PyTorch order) with zero-copy access to each tensor's raw
// little-endian bytes in the memory-mapped file, metadata (GGUF key-values,
// safetensors __metadata__) and the model's config.json text. Tensor.F32 converts
// F16/BF16 and dequantizes the ggml types. Model loaders fetch tensors through a Scope,
// which checks names, dtypes and shapes and reports tensors left unused. Source.Release
// hands a mapped tensor's pages back to the OS once a loader holds its own copy, so the
// file does not stay resident beside the model.
//
// Writing: GGUFWriter (GGUF v3, any metadata, tensors of any ggml type) and
// WriteSafetensors. Quantize/Dequantize are pure-Go codecs that give the same bytes and
// values as the linked ggml (tested against it) for F32, F16, BF16, Q8_0, Q4_0, Q4_1,
// Q5_0 and Q5_1; Q2_K..Q6_K are decoded. ConvertToGGUF takes a Codec for speed and for
// the K-quants (synth convert passes native/ggml's, over ggml_quantize_chunk).
//
// GGUF dims: ggml's ne[0] is the contiguous dimension, so GGUF lists dims in the reverse
// of PyTorch's order; this package reverses them on read and write, and Tensor.Shape is
// always PyTorch's ([out, in] for a Linear weight, whose ggml ne is [in, out]).
//
// Untrusted input: every parser validates its header before use, reports malformed input
// as an error (never a panic), does work proportional to the input, and allocates at most
// a small multiple of the file size.
//
// weights imports only the standard library and nothing of synth: it is a leaf.
package weights
