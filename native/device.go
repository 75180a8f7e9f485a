package native

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"synth/native/ggml"
)

// Device is where tensors, weights and KV caches live and where ops run. Two kinds
// exist:
//
//   - "cpu": synth's own kernels (package kernels) on host memory, the default;
//   - "ggml:<name>": the same ops recorded as ggml graphs and computed by a ggml backend
//     device, named as ggml reports it ("ggml:CPU", "ggml:CUDA0"); "cuda:N" is an alias
//     of "ggml:CUDAN". The ggml CPU device is always there, so the ggml path is tested
//     without a GPU.
//
// Model code never asks which kind it runs on: it calls the ops of a Ctx made for the
// device, and host memory is reached only through explicit copies (Ctx.Upload,
// Ctx.ToHost). A Device is safe for concurrent use.
type Device struct {
	name string
	g    *gdevice // nil for cpu
}

// CPU is the cpu device: synth's kernels on host memory.
var CPU = &Device{name: "cpu"}

// ErrNoDevice is returned for a device name that names no device this process has.
var ErrNoDevice = errors.New("native: no such device")

func (d *Device) String() string { return d.name }

// Name is the device's name as OpenDevice takes it.
func (d *Device) Name() string { return d.name }

func (d *Device) host() bool { return d == CPU }

// Memory is the device's free and total memory in bytes (0, 0 for the cpu device,
// whose memory is the process's).
func (d *Device) Memory() (free, total uint64) {
	if d.g == nil {
		return 0, 0
	}
	return d.g.d.Memory()
}

// GPU reports whether the device is a GPU.
func (d *Device) GPU() bool { return d.g != nil && d.g.d.GPU }

// DeviceInfo describes a device: its name for OpenDevice, a description, and its memory.
type DeviceInfo struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	GPU         bool   `json:"gpu"`
	MemoryFree  uint64 `json:"memory_free,omitempty"`
	MemoryTotal uint64 `json:"memory_total,omitempty"`
}

// Devices lists the devices this process can open: cpu, then every ggml device (the
// ggml CPU device, and GPUs of the backend modules ggml loaded, see LoadBackends).
func Devices() []DeviceInfo {
	out := []DeviceInfo{{Name: "cpu", Description: "synth kernels (" + CPUInfoLine() + ")"}}
	return append(out, ggmlDevices()...)
}

var (
	devMu  sync.Mutex
	opened = map[string]*Device{}
)

// OpenDevice returns the device of that name ("cpu", "ggml:CPU", "cuda:0", ...). A
// device is opened once per process; later calls return the same value.
func OpenDevice(name string) (*Device, error) {
	asked := name
	switch n := strings.TrimSpace(name); {
	case n == "" || n == "cpu":
		return CPU, nil
	case strings.HasPrefix(n, "cuda:"):
		name = "ggml:CUDA" + strings.TrimPrefix(n, "cuda:")
	case strings.HasPrefix(n, "ggml:"):
		name = n
	default:
		return nil, fmt.Errorf("%w %q: want cpu, ggml:<device> or cuda:<n> (synth doctor lists them)", ErrNoDevice, name)
	}
	devMu.Lock()
	defer devMu.Unlock()
	if d := opened[name]; d != nil {
		return d, nil
	}
	g, err := openGGML(strings.TrimPrefix(name, "ggml:"))
	if err != nil {
		var have []string
		for _, d := range Devices() {
			have = append(have, d.Name)
		}
		return nil, fmt.Errorf("%w %q: this process has %s (GPU modules load from $%s or lib/synth beside the binary)",
			ErrNoDevice, asked, strings.Join(have, ", "), ggml.BackendsEnv)
	}
	d := &Device{name: name, g: g}
	opened[name] = d
	return d, nil
}

// DeviceList opens the devices of a comma list of names; the empty list is every
// device this process has (Devices). Tests take SYNTH_TEST_DEVICES through it.
func DeviceList(spec string) ([]*Device, error) {
	var names []string
	if strings.TrimSpace(spec) == "" {
		for _, d := range Devices() {
			names = append(names, d.Name)
		}
	} else {
		names = strings.Split(spec, ",")
	}
	var out []*Device
	for _, n := range names {
		d, err := OpenDevice(n)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// CPUInfoLine is a short description of the cpu device's kernels ("avx512, 2 threads").
func CPUInfoLine() string {
	return "kernel variant " + CPU.cpuVariant()
}

func (d *Device) cpuVariant() string { return string(hostSet.ISA()) }

// newBuffer allocates persistent storage of n floats on d (zeroed on the cpu).
func (d *Device) newBuffer(n int) *Buffer {
	if d.host() {
		return &Buffer{dev: d, n: n, host: alignedFloats(n)}
	}
	return d.g.newBuffer(d, n)
}

// NewTensor is a persistent zeroed tensor on d: memory that lives as long as the
// Tensor is referenced (a cache, a table, a model's small weights), outside any Ctx's
// arena.
func (d *Device) NewTensor(shape ...int) Tensor {
	return makeTensor(d.newBuffer(numel(shape)), 0, shape)
}

// FromHost is a persistent tensor on d holding a copy of data: how a model's small
// weights (biases, norms, position tables) reach the device once, at load.
func (d *Device) FromHost(data []float32, shape ...int) Tensor {
	if n := numel(shape); n != len(data) {
		panic(fmt.Sprintf("native: FromHost: %d values for shape %v (%d)", len(data), slices2(shape), n))
	}
	t := d.NewTensor(shape...)
	if d.host() {
		copy(t.buf.host, data)
	} else {
		d.g.write(t, data)
	}
	return t
}

func slices2(s []int) []int { return append([]int(nil), s...) }
