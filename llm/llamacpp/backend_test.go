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

func TestFindBackendsBesideExecutable(t *testing.T) {
	root := t.TempDir()
	bin := filepath.Join(root, "release")
	lib := filepath.Join(bin, "lib", "synth")
	if err := os.MkdirAll(lib, 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(bin, "synth")
	for _, f := range []string{exe, filepath.Join(lib, "libggml-cuda.so"), filepath.Join(lib, "libggml-base.so")} {
		if err := os.WriteFile(f, nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// a symlink on PATH resolves to the release folder
	link := filepath.Join(root, "synth")
	if err := os.Symlink(exe, link); err != nil {
		t.Fatal(err)
	}
	for _, e := range []string{exe, link} {
		from, files := findBackends("", e)
		if from != lib || len(files) != 1 || files[0] != filepath.Join(lib, "libggml-cuda.so") {
			t.Errorf("findBackends(exe %s) = %q, %v; want %s and its libggml-cuda.so", e, from, files, lib)
		}
	}
	// the variable wins over the folder beside the executable
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "libggml-vulkan.so"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	from, files := findBackends(other, exe)
	if from != "$"+BackendsEnv || len(files) != 1 || filepath.Base(files[0]) != "libggml-vulkan.so" {
		t.Errorf("findBackends(env) = %q, %v; want $%s and libggml-vulkan.so", from, files, BackendsEnv)
	}
	// neither: nowhere to look
	if from, files := findBackends("", filepath.Join(other, "synth")); from != "" || files != nil {
		t.Errorf("findBackends without lib/synth = %q, %v; want nothing", from, files)
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
