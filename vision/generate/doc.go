// Package generate is autoregressive decoding with Hugging Face transformers' generate()
// conventions (v4.40): greedy search, beam search with BeamSearchScorer's bookkeeping,
// and sampling, plus the logits processors that go with them (repetition_penalty,
// no_repeat_ngram_size, min_new_tokens, temperature, top_k, top_p), for any decoder
// that keeps a batch of sequences in cache slots (Model).
//
//	res, err := generate.Run(model, params, rows) // rows prefilled by the caller
//
// The caller runs the prompt (prefill) itself, since that part is model-specific (BLIP-2
// feeds query embeddings, not token ids), and hands over each row's next-token logits.
// From then on every step feeds one token per live sequence to Model.Step, all rows and
// beams together; a row that finishes leaves the batch, so later steps are smaller.
//
// Differences from upstream, on purpose: sampling draws from our own seeded PCG
// generator (torch's multinomial stream cannot be reproduced), so sampled text is
// reproducible per seed but not equal to transformers' for the same seed.
//
// generate is pure Go over float32 logits; it imports nothing of synth.
package generate
