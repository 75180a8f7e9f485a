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
