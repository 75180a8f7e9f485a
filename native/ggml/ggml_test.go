package ggml

import (
	"os"
	"path/filepath"
	"testing"
)

func TestModuleFilesSkipsBaseAndCPU(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"libggml-base.so", "libggml-cpu.so", "libggml-cpu-haswell.so", "libggml-cuda.so", "libggml.so", "notes.txt"} {
		os.WriteFile(filepath.Join(dir, f), nil, 0o644)
	}
	got := moduleFiles(dir + string(os.PathListSeparator) + filepath.Join(dir, "absent.so"))
	if len(got) != 1 || filepath.Base(got[0]) != "libggml-cuda.so" {
		t.Fatalf("backendFiles = %v, want only libggml-cuda.so", got)
	}
}

func TestFindModulesBesideExecutable(t *testing.T) {
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
		from, files := FindModules("", e)
		if from != lib || len(files) != 1 || files[0] != filepath.Join(lib, "libggml-cuda.so") {
			t.Errorf("FindModules(exe %s) = %q, %v; want %s and its libggml-cuda.so", e, from, files, lib)
		}
	}
	// the variable wins over the folder beside the executable
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "libggml-vulkan.so"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	from, files := FindModules(other, exe)
	if from != "$"+BackendsEnv || len(files) != 1 || filepath.Base(files[0]) != "libggml-vulkan.so" {
		t.Errorf("FindModules(env) = %q, %v; want $%s and libggml-vulkan.so", from, files, BackendsEnv)
	}
	// neither: nowhere to look
	if from, files := FindModules("", filepath.Join(other, "synth")); from != "" || files != nil {
		t.Errorf("findBackends without lib/synth = %q, %v; want nothing", from, files)
	}
}
