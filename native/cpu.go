package native

import "synth/kernels"

// CPUInfo describes the CPU kernels this process uses.
type CPUInfo struct {
	Features []string // ISA features present (cpuid), e.g. AVX2 FMA F16C
	Variant  string   // kernel variant family dispatch picked: ref, avx2, avx512, neon
	Compiler string   // C compiler that built the kernels
}

// CPU reports the host's kernel-relevant features and the variant the Ctxs use: the one
// dispatch picks, or the one SYNTH_KERNELS names (KernelsOverride).
func CPU() CPUInfo {
	f := kernels.HostFeatures()
	v := string(hostSet.ISA())
	if hostSet.VNNI() {
		v += " (vnni)"
	}
	return CPUInfo{Features: f.Names(), Variant: v, Compiler: kernels.CompilerVersion()}
}

// KernelsOverride reports a SYNTH_KERNELS value that names no variant this binary and
// CPU run (dispatch's pick is used instead): callers turn it into a usage error rather
// than measure the wrong kernels.
func KernelsOverride() error {
	_, err := kernels.HostChoice()
	return err
}
