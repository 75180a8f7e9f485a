// Small C wrappers over llama.cpp for the Go binding: what the C API does in a way we
// cannot use from Go as it is (a log callback with a Go handle, sampling into a reused
// buffer with status codes instead of asserts).
#ifndef SYNTH_LLAMACPP_SHIM_H
#define SYNTH_LLAMACPP_SHIM_H

#include <stdint.h>
#include "llama.h"

// Routes llama.cpp's and ggml's logs to the Go callback, passing handle back to it.
void synth_llama_set_log(uintptr_t handle);

// synth_sample does what llama_sampler_sample does (candidates from the logits of batch
// index idx, apply the chain, accept the chosen token) but into the caller's buffer
// cand[n_vocab] instead of a fresh allocation per call, and returns a negative status
// where llama_sampler_sample would dereference NULL or abort:
//   -1 no logits for idx (it was not an output of the last decode)
//   -2 the chain selected no token
int32_t synth_sample(struct llama_sampler * smpl, struct llama_context * ctx, int32_t idx,
                     llama_token_data * cand, int32_t n_vocab);

// synth_sample_logits is synth_sample on logits[n_vocab] already fetched: it touches no
// context, so several samplers may run it at once (-2: no token selected).
int32_t synth_sample_logits(struct llama_sampler * smpl, const float * logits,
                            llama_token_data * cand, int32_t n_vocab);

#endif
