package pipeline

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/klauspost/cpuid/v2"

	"synth/llm/llamacpp"
	"synth/native"
)

// DoctorReport is what this machine and this build of synth can run the steps on, as
// `synth doctor` prints it; the JSON field names are stable.
type DoctorReport struct {
	Version        string              `json:"version"`
	CPU            string              `json:"cpu"`
	Arch           string              `json:"arch"`
	LogicalCPUs    int                 `json:"logical_cpus"`
	Features       []string            `json:"features"`
	Build          string              `json:"build"`      // portable, native-tuned, tuned, unknown
	BuildArch      string              `json:"build_arch"` // the -march value: x86-64-v3, native, ...
	CgoFlags       string              `json:"cgo_flags"`  // CGO_CFLAGS at build time ("" when not recorded)
	KernelVariant  string              `json:"kernel_variant"`
	KernelRunnable []string            `json:"kernel_variants_runnable"` // compiled in and runnable here, best first
	Threads        int                 `json:"threads"`
	LlamaCPPSystem string              `json:"llama_cpp_system_info"`
	LlamaCPU       []string            `json:"llama_cpp_cpu_features"` // fixed at build time by -march
	LlamaCPUNote   string              `json:"llama_cpp_cpu_note"`
	GPUModulesFrom string              `json:"gpu_modules_from"` // "" when nowhere to look
	GPUModules     []string            `json:"gpu_modules"`      // module files loaded
	GPUModulesBad  []string            `json:"gpu_modules_failed"`
	LlamaGPU       bool                `json:"llama_cpp_gpu_offload"`
	LlamaDevices   []string            `json:"llama_cpp_devices"`
	Devices        []native.DeviceInfo `json:"devices"` // synth's compute devices (cpu, ggml:...)
	CUDABuild      bool                `json:"cuda_build"`
	CUDADevices    []string            `json:"cuda_devices"`
	GPUPresent     bool                `json:"gpu_present"`
	GPUNote        string              `json:"gpu_note"`
	GoVersion      string              `json:"go_version"`
	CCVersion      string              `json:"cgo_cc_version"`
}

// Doctor gathers the report; version and cgoFlags are what the binary was built with
// (cgoFlags "" when not recorded).
func Doctor(version, cgoFlags string, nthreads int) DoctorReport {
	cpu := native.CPUFeatures()
	kind, arch := BuildKind(cgoFlags)
	from, mods := llamacpp.Modules()
	r := DoctorReport{
		Version:        version,
		CPU:            cpuid.CPU.BrandName,
		Arch:           runtime.GOOS + "/" + runtime.GOARCH,
		LogicalCPUs:    runtime.NumCPU(),
		Features:       cpu.Features,
		Build:          kind,
		BuildArch:      arch,
		CgoFlags:       cgoFlags,
		KernelVariant:  cpu.Variant,
		KernelRunnable: cpu.Runnable,
		Threads:        nthreads,
		LlamaCPPSystem: llamacpp.SystemInfo(),
		LlamaCPU:       llamacpp.CPUFeatures(),
		GPUModulesFrom: from,
		GPUModules:     []string{},
		GPUModulesBad:  []string{},
		LlamaGPU:       llamacpp.SupportsGPUOffload(),
		LlamaDevices:   []string{},
		Devices:        native.Devices(),
		GoVersion:      runtime.Version(),
		CCVersion:      cpu.Compiler,
	}
	if r.Features == nil {
		r.Features = []string{}
	}
	if r.KernelRunnable == nil {
		r.KernelRunnable = []string{}
	}
	if r.LlamaCPU == nil {
		r.LlamaCPU = []string{}
	}
	r.LlamaCPUNote = LlamaSIMDGap(r.Features, r.LlamaCPU)
	for _, m := range mods {
		if m.Loaded {
			r.GPUModules = append(r.GPUModules, m.File)
		} else {
			r.GPUModulesBad = append(r.GPUModulesBad, m.File)
		}
	}
	for _, d := range llamacpp.Devices() {
		r.LlamaDevices = append(r.LlamaDevices, d.String())
	}
	r.CUDADevices = []string{}
	for _, d := range r.Devices {
		if strings.HasPrefix(d.Name, "ggml:CUDA") {
			r.CUDABuild = true
			r.CUDADevices = append(r.CUDADevices, d.Name)
		}
	}
	r.GPUPresent, r.GPUNote = nvidiaGPUPresent()
	if r.GPUPresent && !r.CUDABuild {
		r.GPUNote += fmt.Sprintf("; no CUDA device: build the module (CMakeLists.txt) and name it in $%s", llamacpp.BackendsEnv)
	}
	return r
}

// BuildKind classifies the recorded cgo flags by their -march: native-tuned (runs on CPUs
// with the build machine's features), portable (a generic x86-64 level), tuned (another
// named CPU) or unknown (not recorded: built without make).
func BuildKind(flags string) (kind, arch string) {
	for _, f := range strings.Fields(flags) {
		if v, ok := strings.CutPrefix(f, "-march="); ok {
			arch = v // the last one wins, as in gcc
		}
	}
	switch {
	case arch == "native":
		return "native-tuned", arch
	case arch == "x86-64" || strings.HasPrefix(arch, "x86-64-v") || strings.HasPrefix(arch, "armv8"):
		return "portable", arch
	case arch != "":
		return "tuned", arch
	}
	return "unknown", ""
}

// nvidiaGPUPresent looks for the NVIDIA kernel driver's view of GPUs, which needs no CUDA
// libraries, so a CPU-only build can still say that a GPU is there.
func nvidiaGPUPresent() (bool, string) {
	gpus, _ := filepath.Glob("/proc/driver/nvidia/gpus/*")
	if len(gpus) > 0 {
		return true, fmt.Sprintf("%d NVIDIA GPU(s) seen by the driver", len(gpus))
	}
	if _, err := os.Stat("/dev/nvidia0"); err == nil {
		return true, "/dev/nvidia0 present"
	}
	return false, "no NVIDIA driver or device found"
}
