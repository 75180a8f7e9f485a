// Package weights reads and writes checkpoint formats: safetensors (single and sharded),
// torch .pt state dicts (a restricted unpickler: data, never code), PEFT LoRA adapters and
// GGUF with quantization.
//
// weights has no model knowledge and imports nothing of synth: it is a leaf.
package weights
