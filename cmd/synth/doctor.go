package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/klauspost/cpuid/v2"
	"github.com/urfave/cli/v2"

	"synth/llm/llamacpp"
	"synth/native"
)

// doctorReport is what `synth doctor` prints; the JSON field names are stable.
type doctorReport struct {
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

func doctorCommand() *cli.Command {
	return &cli.Command{
		Name:  "doctor",
		Usage: "report CPU features, the kernel variant in use, llama.cpp's build and GPU support",
		Description: "Checks what this machine and this build of synth can do: whether the binary is\n" +
			"portable (x86-64-v3, make dist) or tuned for its build machine (-march=native), the ISA\n" +
			"features cpuid reports, which kernel variant dispatch picks at run time, the SIMD\n" +
			"features llama.cpp's CPU backend was compiled with (AVX2 = 1 shows the -march flags\n" +
			"reached ggml), which ggml GPU backend module was found ($SYNTH_GGML_BACKENDS, or\n" +
			"lib/synth beside the binary), whether CUDA was built in and a GPU is present.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
		},
		Action: func(c *cli.Context) error {
			r := doctor(threads(c))
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			printDoctor(c, r)
			return nil
		},
	}
}

func doctor(nthreads int) doctorReport {
	cpu := native.CPUFeatures()
	kind, arch := buildKind(cgoFlags)
	from, mods := llamacpp.Modules()
	r := doctorReport{
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
	r.LlamaCPUNote = llamaSIMDGap(r.Features, r.LlamaCPU)
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

// llamaSIMDGap names the best SIMD level this CPU has that llama.cpp's CPU backend was
// compiled without, or "". ggml-cpu's SIMD level is fixed at compile time, unlike our
// kernels' dispatch: plain `go build` or `go install` (no -march) gives a llama.cpp
// without AVX2, several times slower at rewriting. doctor reports it; rewrite warns.
func llamaSIMDGap(cpuFeatures, llamaCPU []string) string {
	for _, lv := range []struct{ cpu, ggml, name string }{{"AVX512F", "AVX512", "AVX-512"}, {"AVX2", "AVX2", "AVX2"}} {
		if slices.Contains(cpuFeatures, lv.cpu) && !slices.Contains(llamaCPU, lv.ggml) {
			return "this CPU has " + lv.name + ", which this build's llama.cpp does not use (a native build, plain make, would)"
		}
	}
	return ""
}

// buildKind classifies the recorded cgo flags by their -march: native-tuned (runs on CPUs
// with the build machine's features), portable (a generic x86-64 level), tuned (another
// named CPU) or unknown (not recorded: built without make).
func buildKind(flags string) (kind, arch string) {
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

func printDoctor(c *cli.Context, r doctorReport) {
	w := c.App.Writer
	yes := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	fmt.Fprintf(w, "synth %s\n", r.Version)
	switch r.Build {
	case "unknown":
		fmt.Fprintf(w, "build:          unknown (cgo flags not recorded: built without make)\n")
	case "native-tuned":
		fmt.Fprintf(w, "build:          native-tuned (-march=native: for CPUs like the build machine's; make dist for a portable one; cgo %s)\n", r.CgoFlags)
	default:
		fmt.Fprintf(w, "build:          %s (-march=%s; cgo %s)\n", r.Build, r.BuildArch, r.CgoFlags)
	}
	fmt.Fprintf(w, "cpu:            %s (%s, %d logical CPUs)\n", r.CPU, r.Arch, r.LogicalCPUs)
	fmt.Fprintf(w, "features:       %s\n", strings.Join(r.Features, " "))
	fmt.Fprintf(w, "kernel variant: %s (chosen at run time; this CPU runs: %s)\n", r.KernelVariant, strings.Join(r.KernelRunnable, " "))
	fmt.Fprintf(w, "threads:        %s\n", describeThreads(c))
	fmt.Fprintf(w, "llama.cpp:      %s\n", r.LlamaCPPSystem)
	simd := strings.Join(r.LlamaCPU, " ") + " (fixed at build time)"
	if r.LlamaCPUNote != "" {
		simd += "; " + r.LlamaCPUNote
	}
	fmt.Fprintf(w, "llama.cpp SIMD: %s\n", simd)
	switch {
	case r.GPUModulesFrom == "":
		fmt.Fprintf(w, "gpu module:     none ($%s unset, no lib/synth beside the binary)\n", llamacpp.BackendsEnv)
	case len(r.GPUModules)+len(r.GPUModulesBad) == 0:
		fmt.Fprintf(w, "gpu module:     none in %s\n", r.GPUModulesFrom)
	default:
		line := strings.Join(r.GPUModules, ", ")
		if len(r.GPUModulesBad) > 0 {
			if line != "" {
				line += "; "
			}
			line += "failed to load: " + strings.Join(r.GPUModulesBad, ", ")
		}
		fmt.Fprintf(w, "gpu module:     %s (from %s)\n", line, r.GPUModulesFrom)
	}
	fmt.Fprintf(w, "llama.cpp GPU:  %s (devices: %s)\n", yes(r.LlamaGPU), strings.Join(r.LlamaDevices, ", "))
	for i, d := range r.Devices {
		label := "devices:"
		if i > 0 {
			label = ""
		}
		mem := ""
		if d.MemoryTotal > 0 {
			mem = fmt.Sprintf(", %.1f of %.1f GiB free", float64(d.MemoryFree)/(1<<30), float64(d.MemoryTotal)/(1<<30))
		}
		fmt.Fprintf(w, "%-16s%s (%s%s)\n", label, d.Name, d.Description, mem)
	}
	fmt.Fprintf(w, "cuda build:     %s\n", yes(r.CUDABuild))
	fmt.Fprintf(w, "gpu:            %s (%s)\n", yes(r.GPUPresent), r.GPUNote)
	fmt.Fprintf(w, "go:             %s, cgo %s\n", r.GoVersion, r.CCVersion)
}
