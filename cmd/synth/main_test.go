package main

import (
	"bytes"
	"encoding/json"
	"runtime"
	"slices"
	"strings"
	"testing"

	"synth/native"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(append([]string{"synth"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI(t, "--version")
	if code != exitOK || !strings.Contains(out, version) {
		t.Fatalf("--version: code %d, stdout %q", code, out)
	}
}

func TestUsageErrorsExitTwoWithOneLine(t *testing.T) {
	cases := [][]string{
		{"no-such-command"},
		{"--no-such-flag"},
		{"doctor", "--no-such-flag"},
		{"--log-level", "loud", "doctor"},
		{"--log-format", "xml", "doctor"},
		{"--threads", "-3", "doctor"},
	}
	for _, args := range cases {
		code, _, errOut := runCLI(t, args...)
		if code != exitUsage {
			t.Errorf("%v: exit code %d, want %d (stderr %q)", args, code, exitUsage, errOut)
		}
		lines := strings.Split(strings.TrimSpace(errOut), "\n")
		last := lines[len(lines)-1]
		if !strings.HasPrefix(last, "synth: ") {
			t.Errorf("%v: last stderr line %q, want a 'synth: ...' error line", args, last)
		}
	}
}

func TestHelpListsDoctor(t *testing.T) {
	code, out, _ := runCLI(t, "--help")
	if code != exitOK || !strings.Contains(out, "doctor") {
		t.Fatalf("--help: code %d, stdout %q", code, out)
	}
}

func TestDoctorJSON(t *testing.T) {
	code, out, errOut := runCLI(t, "--threads", "3", "doctor", "--json")
	if code != exitOK {
		t.Fatalf("doctor --json: code %d, stderr %q", code, errOut)
	}
	var r doctorReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("doctor --json output is not JSON: %v\n%s", err, out)
	}
	if r.Threads != 3 {
		t.Errorf("threads = %d, want 3 from --threads", r.Threads)
	}
	if r.KernelVariant == "" || r.CPU == "" || r.GoVersion != runtime.Version() || r.CCVersion == "" {
		t.Errorf("incomplete report: %+v", r)
	}
	if !strings.Contains(r.LlamaCPPSystem, "CPU :") {
		t.Errorf("llama.cpp system info %q has no CPU line", r.LlamaCPPSystem)
	}
	// The acceptance check of the build flags: where our cpuid sees AVX2, ggml must
	// have been compiled with it, or CGO_CFLAGS did not reach llama.cpp.
	if slices.Contains(r.Features, "AVX2") && !strings.Contains(r.LlamaCPPSystem, "AVX2 = 1") {
		t.Errorf("CPU has AVX2 but llama.cpp was built without it (%q): build through make, which sets CGO_CFLAGS=-O3 -march=native", r.LlamaCPPSystem)
	}
}

func TestDoctorText(t *testing.T) {
	code, out, errOut := runCLI(t, "doctor")
	if code != exitOK {
		t.Fatalf("doctor: code %d, stderr %q", code, errOut)
	}
	for _, want := range []string{"kernel variant:", "llama.cpp:", "devices:", "cuda build:", "threads:"} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, out)
		}
	}
}

func TestBenchKernelsUsage(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "kernels", "--variants", "no-such-isa"},
		{"bench", "kernels", "--batch", "0"},
		{"bench", "kernels", "extra"},
	} {
		if code, _, errOut := runCLI(t, args...); code != exitUsage {
			t.Errorf("%v: exit code %d, want %d (stderr %q)", args, code, exitUsage, errOut)
		}
	}
}

func TestPrintBench(t *testing.T) {
	rep := &native.BenchReport{Threads: 2, Variants: []string{"avx2"}, Anchor: "none", Results: []native.BenchResult{
		{Op: "gemm", Model: "vit-l qkv", Shape: "m=257 k=1024 n=3072", DType: "F32", Variant: "avx2", Seconds: 0.01, GFLOPS: 161.2, Anchor: "openblas", Ratio: 1.7, PeakFraction: 0.8},
	}}
	var out bytes.Buffer
	printBench(&out, rep)
	for _, want := range []string{"vit-l qkv", "161.2", "openblas", "1.70", "0.80", "anchor:  none"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("bench table lacks %q:\n%s", want, out.String())
		}
	}
}
