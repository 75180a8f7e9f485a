package nn

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"synth/native"
	"synth/weights"
)

// mappedRSS is the resident size of the process's mappings of file path (the Rss lines
// of its /proc/self/smaps entries), in bytes.
func mappedRSS(t *testing.T, path string) int64 {
	t.Helper()
	raw, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	var total int64
	in := false
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 && strings.Contains(f[0], "-") { // a mapping's header line
			in = f[len(f)-1] == path
			continue
		}
		if in && len(f) >= 2 && f[0] == "Rss:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			total += kb << 10
		}
	}
	return total
}

// TestLoaderReleasesMappedTensors: loading layers from a mapped checkpoint leaves (almost)
// none of its pages resident when the layers hold their own copies: a packed Linear, a
// quantized one, a LayerNorm and an F32 table. The layers still compute what the
// checkpoint says.
func TestLoaderReleasesMappedTensors(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const out, in = 512, 1024 // 2 MiB of f32 per matrix
	w1, w2, b := randVec(r, out*in, 0.1), randVec(r, out*in, 0.1), randVec(r, out, 1)
	table, g := randVec(r, 600*in, 1), randVec(r, in, 1)
	path := filepath.Join(t.TempDir(), "m.gguf")
	gw := weights.NewGGUFWriter()
	for _, x := range []weights.Tensor{
		tensor("a.weight", w1, out, in), tensor("a.bias", b, out), tensor("q.weight", w2, out, in),
		tensor("norm.weight", g, in), tensor("norm.bias", g, in), tensor("table", table, 600, in),
	} {
		if err := gw.AddTensor(x); err != nil {
			t.Fatal(err)
		}
	}
	if err := gw.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	src, err := weights.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	sum := 0
	for _, x := range src.Tensors() { // every page resident, as after reading the file
		for i := 0; i < len(x.Data); i += 4096 {
			sum += int(x.Data[i])
		}
	}
	loaded := mappedRSS(t, path)
	t.Logf("file resident: %d bytes (page sum %d)", loaded, sum)
	if loaded < 4*(2*out*in+600*in) {
		t.Skipf("the file's pages are not resident after reading it (%d bytes)", loaded)
	}
	l := NewLoader(weights.NewScope(src), Options{DType: native.F32})
	a := l.Linear("a", out, in, true)
	ql := NewLoader(weights.NewScope(src), Options{DType: native.Q8_0}).Linear("q", out, in, false)
	norm := l.LayerNorm("norm", in, 1e-5)
	tab := l.F32("table", 600, in)
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	left := mappedRSS(t, path)
	if a.W.ReadsSource() || ql.W.ReadsSource() {
		t.Skip("this CPU's GEMM reads the checkpoint in place: nothing to release")
	}
	// what may stay: the header and the pages tensors share with their neighbours
	if left > 64<<10 {
		t.Fatalf("%d of the file's bytes resident before loading, %d after", loaded, left)
	}
	if !slices.Equal(a.W.Dequantize(), w1) || !slices.Equal(a.B.F32(), b) || !slices.Equal(norm.B.F32(), g) || !slices.Equal(tab, table) {
		t.Fatal("loaded layers differ from the checkpoint")
	}
	if ql.W.DType() != native.Q8_0 {
		t.Fatalf("quantized layer is %s", ql.W.DType())
	}
}
