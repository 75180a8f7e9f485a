package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
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
	KernelVariant  string              `json:"kernel_variant"`
	Threads        int                 `json:"threads"`
	LlamaCPPSystem string              `json:"llama_cpp_system_info"`
	LlamaGPU       bool                `json:"llama_cpp_gpu_offload"`
	LlamaDevices   []string            `json:"llama_cpp_devices"`
	Devices        []native.DeviceInfo `json:"devices"`
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
		Description: "Checks what this machine and this build of synth can do: the ISA features cpuid\n" +
			"reports, which kernel variant dispatch picks, llama.cpp's system info line (AVX2 = 1\n" +
			"shows the -march flags reached ggml), whether CUDA was built in and a GPU is present.",
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
	r := doctorReport{
		Version:        version,
		CPU:            cpuid.CPU.BrandName,
		Arch:           runtime.GOOS + "/" + runtime.GOARCH,
		LogicalCPUs:    runtime.NumCPU(),
		Features:       cpu.Features,
		KernelVariant:  cpu.Variant,
		Threads:        nthreads,
		LlamaCPPSystem: llamacpp.SystemInfo(),
		LlamaGPU:       llamacpp.SupportsGPUOffload(),
		LlamaDevices:   []string{},
		Devices:        native.Devices(),
		GoVersion:      runtime.Version(),
		CCVersion:      cpu.Compiler,
	}
	if r.Features == nil {
		r.Features = []string{}
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
	fmt.Fprintf(w, "cpu:            %s (%s, %d logical CPUs)\n", r.CPU, r.Arch, r.LogicalCPUs)
	fmt.Fprintf(w, "features:       %s\n", strings.Join(r.Features, " "))
	fmt.Fprintf(w, "kernel variant: %s\n", r.KernelVariant)
	fmt.Fprintf(w, "threads:        %s\n", describeThreads(c))
	fmt.Fprintf(w, "llama.cpp:      %s\n", r.LlamaCPPSystem)
	fmt.Fprintf(w, "llama.cpp GPU:  %s (devices: %s; GPU modules load from $%s)\n", yes(r.LlamaGPU), strings.Join(r.LlamaDevices, ", "), llamacpp.BackendsEnv)
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
	fmt.Fprintf(w, "cuda device:    %s\n", yes(r.CUDABuild))
	fmt.Fprintf(w, "gpu:            %s (%s)\n", yes(r.GPUPresent), r.GPUNote)
	fmt.Fprintf(w, "go:             %s, cgo %s\n", r.GoVersion, r.CCVersion)
}
