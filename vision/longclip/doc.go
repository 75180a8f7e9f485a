// Package longclip is Long-CLIP (Zhang et al. 2024, github.com/beichenzbc/Long-CLIP): a
// CLIP ViT image tower and a text tower with a 248-token context, on top of native.
//
//	m, err := longclip.Open("models/LongCLIP-L", longclip.Options{})  // folder, .pt, .safetensors, .gguf
//	defer m.Close()
//	c := native.NewCtx(threads)
//	img := m.EncodeImage(c, pixels) // pixels [B, 3, S, S] from preprocess.CLIP -> [B, E]
//	txt := m.EncodeText(c, ids)     // ids from cliptok, one row per text   -> [B, E]
//
// For files and texts in bulk, with per-item errors, use an Embedder (NewEmbedder).
//
// The forward pass is upstream's model_longclip.CLIP at commit 3966af9 (see
// docs/longclip.md for the specification): pre-LN residual blocks with
// torch MultiheadAttention and QuickGELU MLPs; ln_pre and ln_post on the class token in
// the vision tower; positional_embedding for text positions 0..19 and
// positional_embedding_res from 20 on, a causal mask, ln_final and pooling at argmax(ids).
//
// Two exact shortcuts keep it cheaper than upstream without changing a result beyond
// float32 reassociation: the text tower runs only the positions up to the last pooled
// position of the batch (the causal mask keeps later positions out of the pooled rows),
// and the last block of each tower computes its attention output and MLP for the pooled
// rows only.
//
// # Dimension legend
//
//	B  batch (images or texts)
//	S  image side (image_resolution, 224 for the released models); P patch side
//	G  patches per image, (S/P)^2
//	T  tokens per sequence: G+1 in the vision tower (class token first); in the text
//	   tower L, the positions computed (<= context 248)
//	W  width of a tower (Wv vision, Wt text); H heads; D = W/H head width
//	E  embed_dim, the shared embedding width
//	V  vocabulary (49408)
//
// longclip imports native, weights, vision/nn, vision/cliptok and vision/preprocess; it
// must not import llm, eval, dataset or cmd (image files are decoded by a function the
// caller passes, see EmbedderOptions.Decode).
package longclip
