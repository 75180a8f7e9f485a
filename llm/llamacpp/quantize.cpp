// quantize.cpp: see quantize.h.
#include "quantize.h"

#include <string>
#include <unordered_map>
#include <vector>

#include "llama.h"

int synth_llama_quantize(const char *in, const char *out, int ftype, int nthread, int allow_requantize,
                   const char *const *names, const float *const *vals, const int64_t *lens, int64_t n) {
	try {
		std::unordered_map<std::string, std::vector<float>> imatrix; // the type llama-quant.cpp reads
		for (int64_t i = 0; i < n; i++) imatrix[names[i]] = std::vector<float>(vals[i], vals[i] + lens[i]);
		llama_model_quantize_params p = llama_model_quantize_default_params();
		p.nthread = nthread;
		p.ftype = (enum llama_ftype)ftype;
		p.allow_requantize = allow_requantize != 0;
		p.imatrix = n > 0 ? &imatrix : nullptr;
		return llama_model_quantize(in, out, &p) == 0 ? 0 : 1;
	} catch (...) {
		return 2;
	}
}
