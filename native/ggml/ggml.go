package ggml

/*
#cgo CPPFLAGS: -I${SRCDIR}/../../third_party/ggml/include
#include <stdlib.h>
#include <string.h>
#include "ggml.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"

// A stack tensor over bytes [off, off+n) of buf: what ggml_backend_tensor_set/get need
// to move raw bytes (a buffer has no byte-level API of its own).
static void synth_span(struct ggml_tensor *t, ggml_backend_buffer_t buf, size_t off, size_t n) {
	memset(t, 0, sizeof(*t));
	t->type = GGML_TYPE_I8;
	t->ne[0] = (int64_t)n; t->ne[1] = t->ne[2] = t->ne[3] = 1;
	t->nb[0] = 1; t->nb[1] = t->nb[2] = t->nb[3] = n;
	t->buffer = buf;
	t->data = (char *)ggml_backend_buffer_get_base(buf) + off;
}

static void synth_buf_set(ggml_backend_buffer_t buf, size_t off, const void *data, size_t n) {
	struct ggml_tensor t;
	synth_span(&t, buf, off, n);
	ggml_backend_tensor_set(&t, data, 0, n);
}

static void synth_buf_get(ggml_backend_buffer_t buf, size_t off, void *data, size_t n) {
	struct ggml_tensor t;
	synth_span(&t, buf, off, n);
	ggml_backend_tensor_get(&t, data, 0, n);
}

// The bytes a device allocates for a contiguous tensor of type t and dims ne (CUDA pads
// quantized rows).
static size_t synth_alloc_size(ggml_backend_dev_t dev, int t, int64_t n0, int64_t n1) {
	struct ggml_tensor x;
	memset(&x, 0, sizeof(x));
	x.type = (enum ggml_type)t;
	x.ne[0] = n0; x.ne[1] = n1; x.ne[2] = x.ne[3] = 1;
	x.nb[0] = ggml_type_size(x.type);
	x.nb[1] = ggml_row_size(x.type, n0);
	x.nb[2] = x.nb[3] = x.nb[1] * n1;
	return ggml_backend_buft_get_alloc_size(ggml_backend_dev_buffer_type(dev), &x);
}

static int synth_is_cpu(ggml_backend_dev_t dev) {
	return ggml_backend_dev_type(dev) == GGML_BACKEND_DEVICE_TYPE_CPU;
}

static int synth_is_gpu(ggml_backend_dev_t dev) {
	enum ggml_backend_dev_type t = ggml_backend_dev_type(dev);
	return t == GGML_BACKEND_DEVICE_TYPE_GPU || t == GGML_BACKEND_DEVICE_TYPE_IGPU;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unsafe"

	// Compiles and links ggml (base + CPU backend); we use none of its Go code.
	_ "github.com/ollama/ollama/ml/backend/ggml/ggml/src"
)

// BackendsEnv names the ggml backend modules to load: a list (separated by the OS
// path-list separator) of .so files or folders holding them, e.g. the build/lib/synth
// folder that CMakeLists.txt fills with libggml-cuda.so on a GPU machine. The Go build
// is CPU-only; a GPU backend built from the same ggml sources is loaded as a module,
// the way upstream's GGML_BACKEND_DL builds work. llama.cpp and synth's own ggml
// executor share the one registry, so the modules are loaded once per process, here.
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

// LoadModules loads the modules BackendsEnv names (or those in the default folder),
// once per process. A module that fails to load is logged and skipped: the CPU device
// still works.
var LoadModules = sync.OnceFunc(func() {
	exe, _ := os.Executable()
	from, files := FindModules(os.Getenv(BackendsEnv), exe)
	modules.from = from
	for _, p := range files {
		cp := C.CString(p)
		reg := C.ggml_backend_load(cp)
		C.free(unsafe.Pointer(cp))
		modules.list = append(modules.list, Module{File: p, Loaded: reg != nil})
		if reg == nil {
			slog.Warn("ggml: could not load a backend module", "file", p, "from", from)
			continue
		}
		slog.Info("ggml: loaded backend module", "file", p)
	}
})

// Modules reports where backend modules were looked for (empty when nowhere: the
// variable is unset and no lib/synth folder is beside the executable) and each module
// file tried there, loading them first.
func Modules() (from string, list []Module) {
	LoadModules()
	return modules.from, append([]Module(nil), modules.list...)
}

// FindModules is where modules are looked for and the module files there: the env
// value when set, else lib/synth beside the executable exe when that folder exists.
func FindModules(env, exe string) (from string, files []string) {
	if env != "" {
		return "$" + BackendsEnv, moduleFiles(env)
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
	return dir, moduleFiles(dir)
}

// moduleFiles expands a module list into module files: files as given, and for
// folders the libggml-<backend>.so modules in them, leaving out ggml's base library
// and CPU backends (the CPU backend is compiled into synth already).
func moduleFiles(spec string) []string {
	var out []string
	for _, p := range filepath.SplitList(spec) {
		st, err := os.Stat(p)
		if err != nil {
			slog.Warn("ggml: backend path not found", "path", p, "from", BackendsEnv)
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

// Device is one ggml backend device (the CPU, a GPU of a loaded module).
type Device struct {
	d           C.ggml_backend_dev_t
	Name        string // as ggml reports it: "CPU", "CUDA0", ...
	Description string
	GPU         bool
}

// Devices lists ggml's devices, after loading the modules BackendsEnv names.
func Devices() []*Device {
	LoadModules()
	var out []*Device
	for i := 0; i < int(C.ggml_backend_dev_count()); i++ {
		d := C.ggml_backend_dev_get(C.size_t(i))
		out = append(out, &Device{d: d, Name: C.GoString(C.ggml_backend_dev_name(d)),
			Description: C.GoString(C.ggml_backend_dev_description(d)), GPU: C.synth_is_gpu(d) != 0})
	}
	return out
}

// ErrNoDevice is returned for a name ggml has no device of.
var ErrNoDevice = errors.New("ggml: no such device")

// OpenDevice returns ggml's device called name ("CPU", "CUDA0").
func OpenDevice(name string) (*Device, error) {
	var names []string
	for _, d := range Devices() {
		if d.Name == name {
			return d, nil
		}
		names = append(names, d.Name)
	}
	return nil, fmt.Errorf("%w %q (ggml has %s; GPU modules load from $%s)", ErrNoDevice, name, strings.Join(names, ", "), BackendsEnv)
}

// Memory is the device's free and total memory in bytes.
func (d *Device) Memory() (free, total uint64) {
	var f, t C.size_t
	C.ggml_backend_dev_memory(d.d, &f, &t)
	return uint64(f), uint64(t)
}

// CPU reports whether the device is ggml's CPU device.
func (d *Device) CPU() bool { return C.synth_is_cpu(d.d) != 0 }

// ErrOutOfMemory is returned when the device cannot hold an allocation.
var ErrOutOfMemory = errors.New("ggml: out of device memory")

// Buffer is a block of device memory.
type Buffer struct {
	b    C.ggml_backend_buffer_t
	size int
}

// Alloc allocates size bytes of device memory (at least 1).
func (d *Device) Alloc(size int) (*Buffer, error) {
	buft := C.ggml_backend_dev_buffer_type(d.d)
	b := C.ggml_backend_buft_alloc_buffer(buft, C.size_t(max(size, 1)))
	if b == nil {
		free, total := d.Memory()
		return nil, fmt.Errorf("%w: %s: %.2f GiB asked, %.2f of %.2f GiB free", ErrOutOfMemory, d.Name,
			float64(size)/(1<<30), float64(free)/(1<<30), float64(total)/(1<<30))
	}
	return &Buffer{b: b, size: size}, nil
}

// AllocSize is the bytes d allocates for a contiguous matrix of n rows of k values of
// type t (rows may be padded, as CUDA pads quantized rows).
func (d *Device) AllocSize(t Type, k, n int) int {
	return int(C.synth_alloc_size(d.d, C.int(t), C.int64_t(k), C.int64_t(n)))
}

// Size is the buffer's size in bytes.
func (b *Buffer) Size() int { return b.size }

// Free gives the memory back; the buffer must not be used afterwards.
func (b *Buffer) Free() {
	if b.b != nil {
		C.ggml_backend_buffer_free(b.b)
		b.b = nil
	}
}

// Clear sets every byte to v.
func (b *Buffer) Clear(v byte) { C.ggml_backend_buffer_clear(b.b, C.uint8_t(v)) }

func (b *Buffer) check(op string, off, n int) {
	if b.b == nil || off < 0 || n < 0 || off+n > b.size {
		panic(fmt.Sprintf("ggml: %s of %d bytes at %d in a buffer of %d (freed: %v)", op, n, off, b.size, b.b == nil))
	}
}

// Write copies data to bytes [off, off+len(data)) of the buffer, synchronously.
func (b *Buffer) Write(off int, data []byte) {
	b.check("write", off, len(data))
	if len(data) > 0 {
		C.synth_buf_set(b.b, C.size_t(off), unsafe.Pointer(&data[0]), C.size_t(len(data)))
	}
}

// Read copies bytes [off, off+len(data)) of the buffer to data, synchronously.
func (b *Buffer) Read(off int, data []byte) {
	b.check("read", off, len(data))
	if len(data) > 0 {
		C.synth_buf_get(b.b, C.size_t(off), unsafe.Pointer(&data[0]), C.size_t(len(data)))
	}
}

// Backend is a device opened for computing: graphs run on it in the order given.
type Backend struct {
	be  C.ggml_backend_t
	dev *Device
}

// NewBackend opens d for computing, with threads CPU threads where the device uses
// them (ggml's CPU device).
func (d *Device) NewBackend(threads int) (*Backend, error) {
	be := C.ggml_backend_dev_init(d.d, nil)
	if be == nil {
		return nil, fmt.Errorf("ggml: cannot initialise device %s", d.Name)
	}
	if d.CPU() {
		C.ggml_backend_cpu_set_n_threads(be, C.int(max(threads, 1)))
	}
	return &Backend{be: be, dev: d}, nil
}

// Device is the backend's device.
func (b *Backend) Device() *Device { return b.dev }

// Close frees the backend.
func (b *Backend) Close() {
	if b.be != nil {
		C.ggml_backend_free(b.be)
		b.be = nil
	}
}
