// Package blip2 is BLIP-2 with an OPT language model as transformers'
// Blip2ForConditionalGeneration (v4.40) runs it for captioning: the EVA ViT vision tower,
// the Q-Former, the language projection and the OPT decoder (package opt), loaded from a
// Hugging Face folder or a GGUF from synth convert, with an optional PEFT LoRA adapter
// (merged at load, or live), and generate() with upstream's conventions over batches of
// images (package generate).
//
//	m, err := blip2.Load(src, blip2.Options{DType: native.Q8_0, Adapter: a})
//	g, err := m.NewGenerator(c, 8, 20, params)       // batch of up to 8, prompts up to 20
//	res, err := g.Generate(pixels, prompts, params)  // pixels [B, 3, S, S]
//
// Dimension legend: B images, S image side, p patch, T = (S/p)^2 + 1 vision tokens,
// D vision width, Q query tokens, H Q-Former width, E text width (OPT hidden).
//
// The generate() conventions (docs/generation.md): the Q projected queries come
// first, then the prompt's token embeddings (no BOS added; an empty prompt is BOS alone);
// the attention mask is ones for the queries; the logits processors see the new tokens
// only; the ids upstream returns are BOS followed by the new tokens.
//
// blip2 imports native, weights and the vision packages nn, opt and generate; it must
// not import llm, eval, dataset or cmd.
package blip2
