package kernels

/*
static const char *synth_cc_version(void) {
#if defined(__clang__)
	return "clang " __clang_version__;
#elif defined(__GNUC__)
	return "gcc " __VERSION__;
#else
	return "unknown";
#endif
}
*/
import "C"

import (
	"runtime"

	"github.com/klauspost/cpuid/v2"
)

// ISA names a family of kernel variants.
type ISA string

const (
	ISARef    ISA = "ref"    // plain C loops: the specification, always present
	ISAAVX2   ISA = "avx2"   // AVX2 + FMA + F16C
	ISAAVX512 ISA = "avx512" // AVX-512 F/BW/DQ/VL
	ISANEON   ISA = "neon"
)

// Features are the CPU capabilities the kernels care about.
type Features struct {
	AVX2, FMA, F16C                       bool
	AVX512F, AVX512BW, AVX512DQ, AVX512VL bool
	AVX512BF16, AVX512VNNI, AVXVNNI       bool
	NEON, ASIMDHP                         bool
}

// HostFeatures reads the running CPU's features with cpuid.
func HostFeatures() Features {
	c := cpuid.CPU
	return Features{
		AVX2: c.Has(cpuid.AVX2), FMA: c.Has(cpuid.FMA3), F16C: c.Has(cpuid.F16C),
		AVX512F: c.Has(cpuid.AVX512F), AVX512BW: c.Has(cpuid.AVX512BW),
		AVX512DQ: c.Has(cpuid.AVX512DQ), AVX512VL: c.Has(cpuid.AVX512VL),
		AVX512BF16: c.Has(cpuid.AVX512BF16), AVX512VNNI: c.Has(cpuid.AVX512VNNI),
		AVXVNNI: c.Has(cpuid.AVXVNNI),
		NEON:    runtime.GOARCH == "arm64" && c.Has(cpuid.ASIMD),
		ASIMDHP: c.Has(cpuid.ASIMDHP),
	}
}

// Names lists the features that are present, in a fixed order, for reports.
func (f Features) Names() []string {
	all := []struct {
		name string
		on   bool
	}{
		{"AVX2", f.AVX2}, {"FMA", f.FMA}, {"F16C", f.F16C},
		{"AVX512F", f.AVX512F}, {"AVX512BW", f.AVX512BW}, {"AVX512DQ", f.AVX512DQ},
		{"AVX512VL", f.AVX512VL}, {"AVX512_BF16", f.AVX512BF16}, {"AVX512_VNNI", f.AVX512VNNI},
		{"AVX_VNNI", f.AVXVNNI}, {"NEON", f.NEON}, {"ASIMDHP", f.ASIMDHP},
	}
	var out []string
	for _, x := range all {
		if x.on {
			out = append(out, x.name)
		}
	}
	return out
}

// CompilerVersion is the C compiler that built the kernels (cgo's CC).
func CompilerVersion() string { return C.GoString(C.synth_cc_version()) }
