// Package vision holds the image-text models written in Go on top of native: ViT (EVA and
// CLIP flavours), the Q-Former, the OPT decoder, BLIP-2, Long-CLIP, LoRA, image
// preprocessing and the BPE tokenizers (CLIP BPE, GPT-2 byte BPE).
//
// vision may import native and weights. It must not import llm, eval, dataset or cmd.
package vision
