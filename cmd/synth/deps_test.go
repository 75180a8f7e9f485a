package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "synth"

// TestDependencyDirection checks the layering (README.md, Layout) with `go list -deps`:
// cmd -> pipeline -> (vision, llm, eval, dataset) -> native -> kernels; weights is a leaf.
func TestDependencyDirection(t *testing.T) {
	pkgs := listPackages(t)

	// forbidden[a] lists the synth packages (and their subpackages) a may not import.
	forbidden := map[string][]string{
		"kernels":  {"native", "vision", "llm", "eval", "dataset", "weights", "pipeline", "cmd"},
		"weights":  {"kernels", "native", "vision", "llm", "eval", "dataset", "pipeline", "cmd"},
		"native":   {"vision", "llm", "eval", "dataset", "pipeline", "cmd"},
		"vision":   {"llm", "eval", "dataset", "pipeline", "cmd"},
		"llm":      {"vision", "eval", "native", "kernels", "pipeline", "cmd"},
		"eval":     {"vision", "llm", "pipeline", "cmd"},
		"dataset":  {"vision", "llm", "eval", "pipeline", "cmd"},
		"pipeline": {"cmd"},
	}
	for _, p := range pkgs {
		if strings.HasPrefix(p.ImportPath, module+"/internal/") {
			continue
		}
		for _, imp := range p.Imports {
			if imp == module+"/internal/ggmlref" {
				t.Errorf("%s imports internal/ggmlref, which is for tests only", p.ImportPath)
			}
		}
	}
	// The infrastructure leaves (issue 15): standard library only, so weights may use them.
	leaves := map[string]bool{}
	for _, l := range []string{"atomicfile", "filelock", "filehash", "seed", "escape", "progress"} {
		leaves[module+"/internal/"+l] = true
	}
	for _, p := range pkgs {
		if !leaves[p.ImportPath] {
			continue
		}
		delete(leaves, p.ImportPath)
		for _, dep := range p.Deps {
			if first, _, _ := strings.Cut(dep, "/"); first == module || strings.Contains(first, ".") {
				t.Errorf("%s depends on %s: the internal infrastructure leaves import the standard library only", p.ImportPath, dep)
			}
		}
	}
	for l := range leaves {
		t.Errorf("%s not found by go list", l)
	}
	// cgo is allowed only in these packages (README.md).
	cgoAllowed := map[string]bool{
		module + "/kernels":           true,
		module + "/native":            true,
		module + "/native/ggml":       true, // native's ggml backend binding
		module + "/llm/llamacpp":      true,
		module + "/dataset/turbojpeg": true,
		// tests only: the linked ggml's quantizers as the reference for ours
		module + "/internal/ggmlref": true,
	}

	for _, p := range pkgs {
		top := topLevel(p.ImportPath)
		for _, dep := range p.Deps {
			if !strings.HasPrefix(dep, module+"/") {
				continue
			}
			dtop := topLevel(dep)
			if dtop == "cmd" {
				t.Errorf("%s imports %s: no package may import cmd", p.ImportPath, dep)
			}
			for _, f := range forbidden[top] {
				// llama.cpp and native's ggml executor share ggml's backend registry:
				// native/ggml alone loads the GPU modules, for both
				if top == "llm" && dep == module+"/native/ggml" {
					continue
				}
				if dtop == f {
					t.Errorf("%s depends on %s: %s must not import %s", p.ImportPath, dep, top, f)
				}
			}
		}
		for _, imp := range p.Imports {
			if imp == module+"/kernels" && top != "native" && top != "kernels" {
				t.Errorf("%s imports kernels: only native may", p.ImportPath)
			}
		}
		if len(p.CgoFiles) > 0 && !cgoAllowed[p.ImportPath] {
			t.Errorf("%s uses cgo (%v): cgo is allowed only in %v", p.ImportPath, p.CgoFiles, keys(cgoAllowed))
		}
	}
}

type goPackage struct {
	ImportPath string
	Imports    []string // direct
	Deps       []string // transitive
	CgoFiles   []string
}

func listPackages(t *testing.T) []goPackage {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", module+"/...")
	cmd.Dir = "../.."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	var pkgs []goPackage
	for {
		var p goPackage
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 8 {
		t.Fatalf("go list found %d packages, expected the whole module", len(pkgs))
	}
	return pkgs
}

// topLevel maps synth/vision/longclip to "vision", synth/cmd/synth to "cmd".
func topLevel(importPath string) string {
	rest := strings.TrimPrefix(importPath, module+"/")
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
