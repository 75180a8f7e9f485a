package weights

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// rss is the process's resident set size (VmRSS), in bytes.
func rss(t *testing.T) int64 {
	t.Helper()
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Skip("no VmRSS in /proc/self/status")
	return 0
}

// TestReleaseDropsMappedPages: once read, a mapped tensor's pages count in the process's
// resident memory; Release takes them out (the RSS falls by about the tensor's size)
// without touching its neighbours or its contents, which read back unchanged.
func TestReleaseDropsMappedPages(t *testing.T) {
	const size = 32 << 20
	big := bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7, 8}, size/8)
	small := []byte{9, 10, 11, 12}
	w := NewGGUFWriter()
	for _, x := range []Tensor{
		{Name: "small", DType: I8, Shape: []int{len(small)}, Data: small},
		{Name: "big", DType: I8, Shape: []int{size}, Data: big},
	} {
		if err := w.AddTensor(x); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "big.gguf")
	if err := w.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	src, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	tb, _ := src.Tensor("big")
	ts, _ := src.Tensor("small")
	sum := 0
	for i := 0; i < len(tb.Data); i += 4096 {
		sum += int(tb.Data[i]) // fault every page in
	}
	if sum == 0 {
		t.Fatal("the mapped tensor reads as zeros")
	}
	before := rss(t)
	if err := src.Release(tb); err != nil {
		t.Fatal(err)
	}
	after := rss(t)
	if drop := before - after; drop < size*3/4 {
		t.Fatalf("RSS %d -> %d after releasing %d mapped bytes", before, after, size)
	}
	if !bytes.Equal(tb.Data, big) || !bytes.Equal(ts.Data, small) {
		t.Fatal("released data reads back changed")
	}
	if err := src.Release(ts); err != nil { // no whole page of its own: nothing to do
		t.Fatal(err)
	}
	// not s's memory: a heap tensor, an in-memory source
	if err := src.Release(Tensor{Name: "heap", DType: I8, Shape: []int{size}, Data: big}); err != nil {
		t.Fatal(err)
	}
	mem, err := FromTensors("mem", []Tensor{{Name: "big", DType: I8, Shape: []int{size}, Data: big}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	mt, _ := mem.Tensor("big")
	if err := mem.Release(mt); err != nil || !bytes.Equal(mt.Data, big) {
		t.Fatalf("in-memory release: %v", err)
	}
}
