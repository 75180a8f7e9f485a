package llamacpp

/*
#include <stdlib.h>
#include "ggml-backend.h"
*/
import "C"

import (
	"fmt"

	"synth/native/ggml"
)

// BackendsEnv names the ggml backend modules to load (see native/ggml, which loads
// them once for llama.cpp and synth's own ggml executor alike).
const BackendsEnv = ggml.BackendsEnv

// Module is one ggml backend module file that was tried.
type Module = ggml.Module

// Modules reports where backend modules were looked for and each module file tried
// there (see ggml.Modules).
func Modules() (from string, list []Module) { return ggml.Modules() }

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
