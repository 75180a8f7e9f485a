package main

import (
	"testing"

	"synth/pipeline"
)

func TestBuildKind(t *testing.T) {
	for _, c := range []struct{ flags, kind, arch string }{
		{"-O3 -march=native", "native-tuned", "native"},
		{"-O3 -march=x86-64-v3 -mtune=generic", "portable", "x86-64-v3"},
		{"-O3 -march=native -march=x86-64-v3", "portable", "x86-64-v3"}, // gcc: the last wins
		{"-O3 -march=skylake-avx512", "tuned", "skylake-avx512"},
		{"-O2", "unknown", ""},
		{"", "unknown", ""},
	} {
		if kind, arch := pipeline.BuildKind(c.flags); kind != c.kind || arch != c.arch {
			t.Errorf("buildKind(%q) = %s, %s; want %s, %s", c.flags, kind, arch, c.kind, c.arch)
		}
	}
}
