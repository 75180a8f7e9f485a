package llamacpp

/*
#include <stdlib.h>
#include "ggml-backend.h"
*/
import "C"

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"unsafe"
)

// BackendsEnv names the ggml backend modules to load at start-up: a list (separated by
// the OS path-list separator) of .so files or folders holding them, e.g. the
// build/lib/synth folder that CMakeLists.txt fills with libggml-cuda.so on a GPU machine.
// The pinned module compiles llama.cpp CPU-only; a GPU backend built from the same ggml
// sources is loaded as a module, the way upstream's GGML_BACKEND_DL builds work.
const BackendsEnv = "SYNTH_GGML_BACKENDS"

// loadBackends loads what BackendsEnv names. Called once, before llama_backend_init.
// A module that fails to load is logged and skipped: the CPU backend still works.
func loadBackends() {
	spec := os.Getenv(BackendsEnv)
	if spec == "" {
		return
	}
	for _, p := range backendFiles(spec) {
		cp := C.CString(p)
		reg := C.ggml_backend_load(cp)
		C.free(unsafe.Pointer(cp))
		if reg == nil {
			slog.Warn("llama.cpp: could not load a ggml backend module", "file", p, "from", BackendsEnv)
			continue
		}
		slog.Info("llama.cpp: loaded ggml backend module", "file", p)
	}
}

// backendFiles expands the env value into module files: files as given, and for folders
// the libggml-<backend>.so modules in them, leaving out ggml's base library and CPU
// backends (the CPU backend is compiled into synth already).
func backendFiles(spec string) []string {
	var out []string
	for _, p := range filepath.SplitList(spec) {
		st, err := os.Stat(p)
		if err != nil {
			slog.Warn("llama.cpp: backend path not found", "path", p, "from", BackendsEnv)
			continue
		}
		if !st.IsDir() {
			out = append(out, p)
			continue
		}
		matches, _ := filepath.Glob(filepath.Join(p, "libggml-*.so"))
		for _, m := range matches {
			base := filepath.Base(m)
			if base == "libggml-base.so" || strings.HasPrefix(base, "libggml-cpu") {
				continue
			}
			out = append(out, m)
		}
	}
	return out
}

// Device is one compute device ggml can run llama.cpp's layers on.
type Device struct {
	Name, Description string
	GPU               bool
}

// Devices lists ggml's devices (the CPU, and GPUs from loaded backend modules).
func Devices() []Device {
	BackendInit()
	defer BackendFree()
	var out []Device
	for i := C.size_t(0); i < C.ggml_backend_dev_count(); i++ {
		d := C.ggml_backend_dev_get(i)
		t := C.ggml_backend_dev_type(d)
		out = append(out, Device{
			Name:        C.GoString(C.ggml_backend_dev_name(d)),
			Description: C.GoString(C.ggml_backend_dev_description(d)),
			GPU:         t == C.GGML_BACKEND_DEVICE_TYPE_GPU || t == C.GGML_BACKEND_DEVICE_TYPE_IGPU,
		})
	}
	return out
}

func (d Device) String() string { return fmt.Sprintf("%s (%s)", d.Name, d.Description) }
