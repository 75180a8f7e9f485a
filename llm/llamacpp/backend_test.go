package llamacpp

import (
	"os"
	"path/filepath"
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

func TestBackendFilesSkipsBaseAndCPU(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"libggml-base.so", "libggml-cpu.so", "libggml-cpu-haswell.so", "libggml-cuda.so", "libggml.so", "notes.txt"} {
		os.WriteFile(filepath.Join(dir, f), nil, 0o644)
	}
	got := backendFiles(dir + string(os.PathListSeparator) + filepath.Join(dir, "absent.so"))
	if len(got) != 1 || filepath.Base(got[0]) != "libggml-cuda.so" {
		t.Fatalf("backendFiles = %v, want only libggml-cuda.so", got)
	}
}
