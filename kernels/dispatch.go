package kernels

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
