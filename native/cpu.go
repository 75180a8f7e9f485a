package native

import "synth/kernels"

// CPUInfo describes the CPU kernels this process uses.
type CPUInfo struct {
	Features []string // ISA features present (cpuid), e.g. AVX2 FMA F16C
	Variant  string   // kernel variant family dispatch picked: ref, avx2, avx512, neon
	Runnable []string // variant families compiled in that this CPU can run, best first
	Compiler string   // C compiler that built the kernels
}

// CPU reports the host's kernel-relevant features and the variant dispatch picks.
func CPU() CPUInfo {
	f := kernels.HostFeatures()
	var runnable []string
	for _, isa := range kernels.Runnable() {
		runnable = append(runnable, string(isa))
	}
	return CPUInfo{Features: f.Names(), Variant: string(kernels.Pick(f)), Runnable: runnable, Compiler: kernels.CompilerVersion()}
}
