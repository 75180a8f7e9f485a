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

// TestDependencyDirection checks DESIGN.md's layering with `go list -deps`:
// cmd -> (vision, llm, eval, dataset) -> native -> kernels; weights is a leaf.
func TestDependencyDirection(t *testing.T) {
	pkgs := listPackages(t)

	// forbidden[a] lists the synth packages (and their subpackages) a may not import.
	forbidden := map[string][]string{
		"kernels": {"native", "vision", "llm", "eval", "dataset", "weights", "cmd"},
		"weights": {"kernels", "native", "vision", "llm", "eval", "dataset", "cmd"},
		"native":  {"vision", "llm", "eval", "dataset", "cmd"},
		"vision":  {"llm", "eval", "dataset", "cmd"},
		"llm":     {"vision", "eval", "native", "kernels", "cmd"},
		"eval":    {"vision", "llm", "cmd"},
		"dataset": {"vision", "llm", "eval", "cmd"},
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
	// cgo is allowed only in these packages (DESIGN.md).
	cgoAllowed := map[string]bool{
		module + "/kernels":           true,
		module + "/native":            true,
		module + "/native/ggml":       true,
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
