// Package opt is Meta's OPT decoder as transformers' OPTForCausalLM (v4.40) runs it, the
// language model of BLIP-2: token embeddings (optionally project_in), learned positions
// with offset 2, pre-LN decoder layers (causal self-attention with q, k, v, out
// projections, ReLU FFN), the final LayerNorm (optionally project_out) and an LM head tied
// to the embeddings, over a KV cache holding a batch of sequences of different lengths.
//
//	m, err := opt.Load(loader.Sub("language_model"), cfg) // or loader for OPTForCausalLM
//	s := m.NewSession(c, slots, maxLen)
//	logits := s.Prefill(embeds, slots, lens, masks)       // last position of each slot
//	logits = s.Step(slots, ids)                            // one token per slot
//
// Dimension legend: V vocabulary, P word_embed_proj_dim (embedding width), H hidden,
// F ffn_dim, L layers, N rows (positions of all sequences of a step, stacked).
//
// Positions come from the attention mask, as upstream computes them: the j-th unmasked
// position of a sequence has position id j+1 (cumsum(mask)*mask - 1, plus OPT's offset
// 2), masked (padding) positions have id 1; masked positions are never attended to.
//
// opt imports native, weights and vision/nn; it must not import llm, eval, dataset or
// cmd.
package opt
