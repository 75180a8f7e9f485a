package kernels

import (
	"fmt"
	"os"
	"strings"
)

// compiled lists the variant families built into this binary and covered by the parity
// tests, best first. A family is added here only together with its kernels and tests.
var compiled = []ISA{ISAAVX512, ISAAVX2, ISARef}

// Pick is the variant family dispatch selects for CPU features f: the best compiled
// family whose features f has.
func Pick(f Features) ISA {
	for _, isa := range compiled {
		if supports(f, isa) {
			return isa
		}
	}
	return ISARef
}

func supports(f Features, isa ISA) bool {
	switch isa {
	case ISAAVX512:
		return f.AVX512F && f.AVX512BW && f.AVX512DQ && f.AVX512VL && f.FMA && f.F16C
	case ISAAVX2:
		return f.AVX2 && f.FMA && f.F16C
	case ISANEON:
		return f.NEON
	default:
		return true
	}
}

// EnvVariant names the environment variable that overrides dispatch: SYNTH_KERNELS=avx2
// makes Host the avx2 kernels on a CPU that also has AVX-512 (to measure what an
// AVX2-only machine gets, models included), =ref the references. Empty: Pick.
const EnvVariant = "SYNTH_KERNELS"

// HostChoice is the variant family Host uses: the one EnvVariant names, or Pick's. A
// value that is not a compiled family this CPU runs is an error, and Pick's is used.
func HostChoice() (ISA, error) {
	f := HostFeatures()
	v := strings.ToLower(strings.TrimSpace(os.Getenv(EnvVariant)))
	if v == "" {
		return Pick(f), nil
	}
	isa := ISA(v)
	if !Compiled(isa) || !supports(f, isa) {
		var ok []string
		for _, c := range Runnable() {
			ok = append(ok, string(c))
		}
		return Pick(f), fmt.Errorf("kernels: %s=%q: not one of %s (this build and CPU)", EnvVariant, v, strings.Join(ok, ", "))
	}
	return isa, nil
}

// Compiled reports whether the variant family isa is built into this binary.
func Compiled(isa ISA) bool {
	for _, c := range compiled {
		if c == isa {
			return true
		}
	}
	return false
}

// Runnable lists the compiled variant families this CPU can run, best first.
func Runnable() []ISA {
	f := HostFeatures()
	var out []ISA
	for _, isa := range compiled {
		if supports(f, isa) {
			out = append(out, isa)
		}
	}
	return out
}
