package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"synth/native"
	"synth/pipeline"
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
	var r pipeline.DoctorReport
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
	if (r.LlamaCPUNote != "") != (pipeline.LlamaSIMDGap(r.Features, r.LlamaCPU) != "") {
		t.Errorf("llama.cpp note %q disagrees with the features %v / %v", r.LlamaCPUNote, r.Features, r.LlamaCPU)
	}
}

// The acceptance check of the build flags: where our cpuid sees AVX2, ggml must have been
// compiled with it, or CGO_CFLAGS did not reach llama.cpp. Only a build with -march in
// CGO_CFLAGS (make, make test) can pass it; plain `go test ./...` compiles llama.cpp
// without, which doctor and rewrite then report at run time.
func TestLlamaCPPBuiltWithMarch(t *testing.T) {
	if !strings.Contains(os.Getenv("CGO_CFLAGS"), "-march=") {
		t.Skip("CGO_CFLAGS has no -march (plain go test): llama.cpp is compiled without SIMD flags here; run make test to check the build")
	}
	r := pipeline.Doctor(version, cgoFlags, 1)
	if slices.Contains(r.Features, "AVX2") && !strings.Contains(r.LlamaCPPSystem, "AVX2 = 1") {
		t.Errorf("CPU has AVX2 but llama.cpp was built without it (%q): build through make, which sets CGO_CFLAGS=-O3 -march=native", r.LlamaCPPSystem)
	}
}

func TestLlamaSIMDGap(t *testing.T) {
	for _, c := range []struct {
		cpu, llama []string
		want       string
	}{
		{[]string{"AVX2", "FMA3"}, []string{"AVX", "AVX2"}, ""},
		{[]string{"AVX2", "FMA3"}, []string{"SSE3"}, "AVX2"},
		{[]string{"AVX2", "AVX512F"}, []string{"AVX2"}, "AVX-512"},
		{[]string{"SSE4"}, nil, ""},
	} {
		if got := pipeline.LlamaSIMDGap(c.cpu, c.llama); !strings.Contains(got, c.want) || (c.want == "") != (got == "") {
			t.Errorf("%v / %v: %q, want a note naming %q", c.cpu, c.llama, got, c.want)
		}
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

// Resource flags past what synth can hold, and values that only look valid, are usage
// errors naming the flag and its bound, given before any file or model is read (the
// files named here do not exist). Before, these crashed (out of memory, a KV cache of
// 10^9 sequences) or failed far from the cause.
func TestResourceFlagsBounded(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--threads", "100000", "doctor"}, "--threads 100000: want 0 to 1024"},
		{[]string{"caption", "--model", "m", "--images", "i.jsonl", "--out", "o.jsonl", "--batch", "1000000000"}, "--batch 1000000000: want 1 to 1024"},
		{[]string{"caption", "--model", "m", "--images", "i.jsonl", "--out", "o.jsonl", "--beams", "100000"}, "--beams 100000: want 1 to 64"},
		{[]string{"caption", "--model", "m", "--images", "i.jsonl", "--out", "o.jsonl", "--beams", "64", "--batch", "1000"}, "sequences: want at most 4096"},
		{[]string{"caption", "--model", "m", "--images", "i.jsonl", "--out", "o.jsonl", "--repetition-penalty", "0"}, "--repetition-penalty 0"},
		{[]string{"caption", "--model", "m", "--images", "i.jsonl", "--out", ""}, "--out is empty"},
		{[]string{"tokenize", "--vocab", "v.gz", "--text", "x", "--context", "1000000000", "--pad"}, "--context 1000000000: want 2 to 65536"},
		{[]string{"rewrite", "--model", "m.gguf", "--examples", "e", "--in", "i", "--out", "o", "--ctx", "1000000000"}, "--ctx 1000000000: want 0 to 1048576"},
		{[]string{"rewrite", "--model", "m.gguf", "--examples", "e", "--in", "i", "--out", "o", "--ctx", "1048576", "--parallel", "64", "--batch", "64"}, "positions in one context"},
		{[]string{"rewrite", "--model", "m.gguf", "--examples", "e", "--in", "i", "--out", "o", "--repeat-penalty", "0"}, "--repeat-penalty 0"},
		{[]string{"rewrite", "--model", "m.gguf", "--examples", "e", "--in", "i", "--out", ""}, "--out is empty"},
		{[]string{"embed", "--model", "m", "--text", "x", "--out", "e.jsonl", "--batch", "1000000000"}, "--batch 1000000000: want 1 to 1024"},
		{[]string{"eval", "--model", "m", "--data", "a=" + filepath.Join("..", "..", "synth.example.yaml"), "--out", "o", "--bootstrap", "1000000000"}, "--bootstrap 1000000000"},
		{[]string{"embed", "--model", "", "--text", "x", "--out", "e.jsonl"}, "--model is empty"},
	}
	for _, c := range cases {
		code, _, errOut := runCLI(t, c.args...)
		if code != exitUsage || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, %q; want exit 2 saying %q", c.args, code, strings.TrimSpace(errOut), c.want)
		}
	}
}
