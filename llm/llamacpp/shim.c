#include "shim.h"
#include "_cgo_export.h"

static void synth_log_trampoline(enum ggml_log_level level, const char * text, void * user_data) {
    synthLlamaLog((int) level, (char *) text, (uintptr_t) user_data);
}

void synth_llama_set_log(uintptr_t handle) {
    llama_log_set(synth_log_trampoline, (void *) handle);
}

int32_t synth_sample(struct llama_sampler * smpl, struct llama_context * ctx, int32_t idx,
                     llama_token_data * cand, int32_t n_vocab) {
    const float * logits = llama_get_logits_ith(ctx, idx);
    if (logits == NULL) {
        return -1;
    }
    return synth_sample_logits(smpl, logits, cand, n_vocab);
}

int32_t synth_sample_logits(struct llama_sampler * smpl, const float * logits,
                            llama_token_data * cand, int32_t n_vocab) {
    for (int32_t i = 0; i < n_vocab; i++) {
        cand[i].id = i;
        cand[i].logit = logits[i];
        cand[i].p = 0.0f;
    }
    // Samplers may point data elsewhere (the field says so), so read the choice from cur.
    llama_token_data_array cur = { cand, (size_t) n_vocab, -1, false };
    llama_sampler_apply(smpl, &cur);
    if (cur.selected < 0 || (size_t) cur.selected >= cur.size) {
        return -2;
    }
    const llama_token tok = cur.data[cur.selected].id;
    llama_sampler_accept(smpl, tok);
    return tok;
}
