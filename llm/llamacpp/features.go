package llamacpp

/*
#include "ggml-backend.h"

// The CPU backend's feature list (ggml's "ggml_backend_get_features" proc), or NULL.
static struct ggml_backend_feature *synth_cpu_features(void) {
	ggml_backend_reg_t reg = ggml_backend_reg_by_name("CPU");
	if (reg == NULL) return NULL;
	ggml_backend_get_features_t f =
		(ggml_backend_get_features_t) ggml_backend_reg_get_proc_address(reg, "ggml_backend_get_features");
	return f == NULL ? NULL : f(reg);
}
*/
import "C"

import "unsafe"

// CPUFeatures lists the features ggml's CPU backend was compiled with and uses (SSE3,
// AVX2, FMA, AVX512, ..., and options such as LLAMAFILE), in ggml's order. They are fixed
// at build time by the -march flags: a portable build lists AVX2 and no AVX512 even on a
// CPU that has AVX-512.
func CPUFeatures() []string {
	BackendInit()
	defer BackendFree()
	f := C.synth_cpu_features()
	if f == nil {
		return nil
	}
	var out []string
	for ; f.name != nil; f = (*C.struct_ggml_backend_feature)(unsafe.Add(unsafe.Pointer(f), unsafe.Sizeof(*f))) {
		if v := C.GoString(f.value); v != "" && v != "0" {
			out = append(out, C.GoString(f.name))
		}
	}
	return out
}
