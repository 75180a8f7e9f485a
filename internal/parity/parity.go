// Package parity holds what the vision models' golden tests share: reading a fixture's
// tensors, comparing float tensors with a relative tolerance, and naming the first block
// (in forward order) that diverges. It is imported by tests only.
//
// parity imports native and weights; it must not import llm, eval, dataset or cmd.
package parity

import (
	"fmt"
	"math"
	"os"
	"testing"

	"synth/native"
	"synth/weights"
)

// Tensors is a fixture file's tensors by name.
type Tensors map[string]weights.Tensor

// Load reads every tensor of a safetensors file, failing the test on error.
func Load(t testing.TB, path string) Tensors {
	t.Helper()
	src, err := weights.Open(path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { src.Close() })
	out := Tensors{}
	for _, x := range src.Tensors() {
		out[x.Name] = x
	}
	return out
}

// F32 returns a float tensor's values and shape, failing the test when it is absent.
func (ts Tensors) F32(t testing.TB, name string) ([]float32, []int) {
	t.Helper()
	x, ok := ts[name]
	if !ok {
		t.Fatalf("fixture has no tensor %q", name)
	}
	v, err := x.F32()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v, x.Shape
}

// Ints returns an integer tensor's values and shape, failing the test when it is absent.
func (ts Tensors) Ints(t testing.TB, name string) ([]int64, []int) {
	t.Helper()
	x, ok := ts[name]
	if !ok {
		t.Fatalf("fixture has no tensor %q", name)
	}
	v, err := x.Ints()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v, x.Shape
}

// RelErr is max|got - want| / max|want|: the largest deviation relative to the tensor's
// scale. skip, when set, excludes elements (e.g. padding rows).
func RelErr(got, want []float32, skip func(i int) bool) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	var maxD, maxW float64
	for i := range want {
		if skip != nil && skip(i) {
			continue
		}
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if d != d {
			return math.Inf(1)
		}
		maxD = math.Max(maxD, d)
		maxW = math.Max(maxW, math.Abs(float64(want[i])))
	}
	if maxW == 0 {
		return maxD
	}
	return maxD / maxW
}

// Checker compares blocks in forward order and reports the first that diverges.
type Checker struct {
	T     testing.TB
	Tol   float64
	first string
	Worst map[string]float64
}

// Check compares one block; the first failing block is named in the failure message.
func (c *Checker) Check(block string, got, want []float32, skip func(i int) bool) {
	c.T.Helper()
	if c.Worst == nil {
		c.Worst = map[string]float64{}
	}
	e := RelErr(got, want, skip)
	c.Worst[block] = e
	if e <= c.Tol {
		return
	}
	if c.first == "" {
		c.first = block
		c.T.Errorf("first diverging block: %s (relative error %.3g > %.0e; %d values vs %d)", block, e, c.Tol, len(got), len(want))
		return
	}
	c.T.Errorf("also diverges: %s (relative error %.3g, after %s)", block, e, c.first)
}

// Summary lists the relative error of every block checked, for the test log.
func (c *Checker) Summary(order []string) string {
	s := ""
	for _, b := range order {
		if e, ok := c.Worst[b]; ok {
			s += fmt.Sprintf("%s %.2g; ", b, e)
		}
	}
	return s
}

// Devices are the devices the golden tests run every fixture set on:
// SYNTH_TEST_DEVICES (a comma list, e.g. "cpu,ggml:CPU" or "cuda:0"), or every device
// this process has (the cpu and ggml's devices).
func Devices(t testing.TB) []*native.Device {
	t.Helper()
	devs, err := native.DeviceList(os.Getenv("SYNTH_TEST_DEVICES"))
	if err != nil {
		t.Fatalf("SYNTH_TEST_DEVICES: %v", err)
	}
	return devs
}

// Ctx opens a Ctx on dev for a test (closed when the test ends). The cpu device gets
// threads workers; other devices one host thread: ggml's CPU threads spin while they
// wait for each other, which on a busy machine makes a tiny model's graphs hundreds of
// times slower (the op tests in native cover its threading).
func Ctx(t testing.TB, dev *native.Device, threads int) *native.Ctx {
	t.Helper()
	if dev != native.CPU {
		threads = 1
	}
	c, err := native.NewCtxOn(dev, threads)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}
