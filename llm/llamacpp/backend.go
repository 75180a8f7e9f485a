package llamacpp

/*
#cgo CPPFLAGS: -I${SRCDIR}/../../third_party/llama.cpp/include -I${SRCDIR}/../../third_party/ggml/include
#include <stdlib.h>
#include "llama.h"
*/
import "C"

import (
	"strings"
	"sync"

	"synth/native/ggml"

	// Compiles llama.cpp and ggml (CPU backend) into the binary; we use none of its Go code.
	_ "github.com/ollama/ollama/llama/llama.cpp/src"
)

var (
	backendMu   sync.Mutex
	backendRefs int
)

// BackendInit initialises llama.cpp's backends. Calls nest: each BackendInit must be
// paired with a BackendFree, and the backends are released with the last one.
func BackendInit() {
	backendMu.Lock()
	defer backendMu.Unlock()
	if backendRefs == 0 {
		installLogSink()
		ggml.LoadModules()
		C.llama_backend_init()
	}
	backendRefs++
}

// BackendFree releases what BackendInit set up once the last user is done.
func BackendFree() {
	backendMu.Lock()
	defer backendMu.Unlock()
	if backendRefs == 0 {
		return
	}
	backendRefs--
	if backendRefs == 0 {
		C.llama_backend_free()
	}
}

// SystemInfo is llama.cpp's llama_print_system_info line: the ggml CPU features compiled
// in (e.g. "AVX2 = 1"), which shows whether the -march flags reached ggml.
func SystemInfo() string {
	BackendInit()
	defer BackendFree()
	return strings.TrimSpace(C.GoString(C.llama_print_system_info()))
}

// SupportsGPUOffload reports whether the linked llama.cpp has a GPU backend.
func SupportsGPUOffload() bool {
	BackendInit()
	defer BackendFree()
	return bool(C.llama_supports_gpu_offload())
}
