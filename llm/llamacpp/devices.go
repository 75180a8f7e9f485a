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
//
// Unset, the modules are looked for in lib/synth beside the executable (symlinks
// resolved): where the release's -cuda tarball unpacks next to the binary.
const BackendsEnv = "SYNTH_GGML_BACKENDS"

// Module is one ggml backend module file that was tried.
type Module struct {
	File   string
	Loaded bool // false: ggml_backend_load refused it (missing CUDA libraries, wrong build)
}

var modules struct {
	from string // where they were looked for: "$SYNTH_GGML_BACKENDS" or the lib/synth folder
	list []Module
}

// Modules reports where backend modules were looked for (empty when nowhere: the
// variable is unset and no lib/synth folder is beside the executable) and each module
// file tried there. It loads them first if no BackendInit has.
func Modules() (from string, list []Module) {
	BackendInit()
	defer BackendFree()
	return modules.from, append([]Module(nil), modules.list...)
}

// loadBackends loads the modules BackendsEnv names, or those in the default folder.
// Called once, before llama_backend_init. A module that fails to load is logged and
// skipped: the CPU backend still works.
func loadBackends() {
	exe, _ := os.Executable()
	from, files := findBackends(os.Getenv(BackendsEnv), exe)
	modules.from = from
	for _, p := range files {
		cp := C.CString(p)
		reg := C.ggml_backend_load(cp)
		C.free(unsafe.Pointer(cp))
		modules.list = append(modules.list, Module{File: p, Loaded: reg != nil})
		if reg == nil {
			slog.Warn("llama.cpp: could not load a ggml backend module", "file", p, "from", from)
			continue
		}
		slog.Info("llama.cpp: loaded ggml backend module", "file", p)
	}
}

// findBackends is where modules are looked for and the module files there: the env
// value when set, else lib/synth beside the executable exe when that folder exists.
func findBackends(env, exe string) (from string, files []string) {
	if env != "" {
		return "$" + BackendsEnv, backendFiles(env)
	}
	if exe == "" {
		return "", nil
	}
	if real, err := filepath.EvalSymlinks(exe); err == nil {
		exe = real
	}
	dir := filepath.Join(filepath.Dir(exe), "lib", "synth")
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return "", nil
	}
	return dir, backendFiles(dir)
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
