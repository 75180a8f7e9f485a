package kernels

import "testing"

// TestHostChoice: SYNTH_KERNELS selects any variant this CPU runs (the measuring override
// of issue 19) and anything else is an error that leaves dispatch's pick.
func TestHostChoice(t *testing.T) {
	pick := Pick(HostFeatures())
	for _, isa := range Runnable() {
		t.Setenv(EnvVariant, " "+string(isa)+" ")
		got, err := HostChoice()
		if err != nil || got != isa {
			t.Errorf("%s=%s: %s, %v", EnvVariant, isa, got, err)
		}
		if h := Host(); h.ISA() != isa {
			t.Errorf("%s=%s: Host is %s", EnvVariant, isa, h.ISA())
		}
	}
	for _, bad := range []string{"avx3", "neon"} {
		if supports(HostFeatures(), ISA(bad)) {
			continue
		}
		t.Setenv(EnvVariant, bad)
		if got, err := HostChoice(); err == nil || got != pick {
			t.Errorf("%s=%s: %s, %v: want %s and an error", EnvVariant, bad, got, err, pick)
		}
	}
	t.Setenv(EnvVariant, "")
	if got, err := HostChoice(); err != nil || got != pick {
		t.Errorf("unset: %s, %v, want %s", got, err, pick)
	}
}
