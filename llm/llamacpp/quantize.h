// quantize.h: llama_model_quantize with an importance matrix passed from C (the API takes
// it as a C++ map behind a void pointer).
#ifndef SYNTH_LLAMACPP_QUANTIZE_H
#define SYNTH_LLAMACPP_QUANTIZE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// synth_llama_quantize quantizes the GGUF model at in to out as ftype (a llama_ftype) with
// nthread threads (<= 0: all cores). The importance matrix, when n > 0, is n entries:
// tensor names[i] with lens[i] values vals[i] (per input column, as llama-imatrix
// writes them). Returns 0, or 1 when llama.cpp failed (it logs why), or 2 when the C++
// side threw before calling it.
int synth_llama_quantize(const char *in, const char *out, int ftype, int nthread, int allow_requantize,
                   const char *const *names, const float *const *vals, const int64_t *lens, int64_t n);

#ifdef __cplusplus
}
#endif

#endif
