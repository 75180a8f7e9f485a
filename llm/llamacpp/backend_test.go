package llamacpp

import (
	"strings"
	"testing"
)

func TestSystemInfoListsCPUFeatures(t *testing.T) {
	info := SystemInfo()
	if !strings.Contains(info, "CPU :") {
		t.Fatalf("llama_print_system_info = %q, want a CPU feature line", info)
	}
	// Nested init/free must leave the backend usable for a later caller.
	BackendInit()
	BackendInit()
	BackendFree()
	if again := SystemInfo(); again != info {
		t.Fatalf("second SystemInfo = %q, first %q", again, info)
	}
	BackendFree()
	BackendFree() // one extra free is harmless
}

func TestDevicesIncludeCPU(t *testing.T) {
	devs := Devices()
	if len(devs) == 0 {
		t.Fatal("no ggml devices")
	}
	cpu := false
	for _, d := range devs {
		if strings.Contains(strings.ToUpper(d.Name), "CPU") && !d.GPU {
			cpu = true
		}
	}
	if !cpu {
		t.Fatalf("devices %v have no CPU", devs)
	}
}

func TestCPUFeaturesMatchSystemInfo(t *testing.T) {
	feats := CPUFeatures()
	if len(feats) == 0 {
		t.Fatal("ggml's CPU backend reports no features")
	}
	info := SystemInfo()
	for _, f := range feats {
		if !strings.Contains(info, f+" = 1") {
			t.Errorf("feature %s is not %q in the system info %q", f, f+" = 1", info)
		}
	}
}
