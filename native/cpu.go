package native

import "synth/kernels"

// CPUInfo describes the CPU kernels this process uses.
type CPUInfo struct {
	Features []string // ISA features present (cpuid), e.g. AVX2 FMA F16C
	Variant  string   // kernel variant family dispatch picked: ref, avx2, avx512, neon
	Compiler string   // C compiler that built the kernels
}

// CPU reports the host's kernel-relevant features and the variant dispatch picks.
func CPU() CPUInfo {
	f := kernels.HostFeatures()
	return CPUInfo{Features: f.Names(), Variant: string(kernels.Pick(f)), Compiler: kernels.CompilerVersion()}
}
