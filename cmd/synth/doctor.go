package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"synth/llm/llamacpp"
	"synth/pipeline"
)

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
			r := pipeline.Doctor(version, cgoFlags, threads(c))
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

func printDoctor(c *cli.Context, r pipeline.DoctorReport) {
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
