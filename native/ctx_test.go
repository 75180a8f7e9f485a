package native

import (
	"math"
	"os"
	"runtime"
	"sync"
	"testing"
	"unsafe"

	"synth/kernels"
)

// TestForwardPassAllocatesNothing: once the arena has grown to a pass's peak, a pass of
// ops (a transformer block's worth) allocates nothing on the Go heap.
func TestForwardPassAllocatesNothing(t *testing.T) {
	r := newRand(t)
	const tok, width, heads = 17, 64, 4
	x := randTensor(r, 1, tok, width)
	mk := func(n, k int) *Matrix {
		m, err := NewMatrixF32(randFloats(r, n*k, 0.1), n, k)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	qkvW, outW, fc1, fc2 := mk(3*width, width), mk(width, width), mk(width, width), mk(width, width)
	embed, err := QuantizeMatrix(randFloats(r, 50*width, 0.1), 50, width, Q8_0)
	if err != nil {
		t.Fatal(err)
	}
	ids := []int32{4, 49, 0}
	g, b := randTensor(r, 1, width), randTensor(r, 1, width)
	p := AttnParams{Heads: heads, HeadDim: width / heads, Scale: 0.25, Causal: true}
	c := NewCtx(3)
	defer c.Close()
	pass := func() {
		mk := c.Mark()
		h := c.LayerNorm(x, g, b, 1e-5)
		qkv := c.Linear(h, qkvW, Tensor{}, None, Tensor{})
		a := c.Attention(qkv.Cols(0, width), qkv.Cols(width, width), qkv.Cols(2*width, width), 1, p)
		y := c.Linear(a, outW, Tensor{}, None, x)
		h = c.LayerNorm(y, g, b, 1e-5)
		m := c.Linear(h, fc1, b, QuickGELU, Tensor{})
		c.LinearInto(y, m, fc2, Tensor{}, None, y)
		c.Gather(embed, ids)
		c.Release(mk)
	}
	pass()
	if n := testing.AllocsPerRun(20, pass); n != 0 {
		t.Fatalf("a pass allocates %v times", n)
	}
}

// TestArenaGrowthLeavesNoGarbage: when a pass outgrows the arena, Release collects the old
// slab and the overflow tensors before taking the grown slab, so the heap holds the new
// slab and not the old memory too.
func TestArenaGrowthLeavesNoGarbage(t *testing.T) {
	const n = 16 << 20 // floats per tensor: 64 MiB
	c := NewCtx(1)
	defer c.Close()
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	c.Alloc(n)
	c.Alloc(n)
	c.Release(Mark{})
	runtime.ReadMemStats(&ms)
	if grown := int64(ms.HeapAlloc) - int64(before); grown > 2*4*n+(16<<20) {
		t.Fatalf("the heap grew by %d MiB for a %d MiB arena", grown>>20, 2*4*n>>20)
	}
}

func TestArenaReuseAndGrowth(t *testing.T) {
	c := NewCtx(1)
	defer c.Close()
	c.Alloc(100) // the first pass overflows the empty arena
	c.Alloc(3, 5)
	c.Release(Mark{})
	if c.arena.size() < 112+16 {
		t.Fatalf("arena did not grow to the pass's peak: %d floats", c.arena.size())
	}
	a := c.Alloc(100)
	b := c.Alloc(3, 5)
	if uintptr(unsafe.Pointer(&a.F32()[0]))%64 != 0 || uintptr(unsafe.Pointer(&b.F32()[0]))%64 != 0 {
		t.Fatal("arena tensors are not 64-byte aligned")
	}
	c.Release(Mark{})
	if a2 := c.Alloc(100); &a2.F32()[0] != &a.F32()[0] {
		t.Fatal("after Release the arena did not reuse its memory")
	}
	// scoped marks: an inner release keeps what was allocated before the mark
	m := c.Mark()
	inner := c.Alloc(7)
	c.Release(m)
	if again := c.Alloc(7); &again.F32()[0] != &inner.F32()[0] {
		t.Fatal("an inner Release did not give its memory back")
	}
	c.Alloc(50)
	c.Release(Mark{})
	if c.arena.size() < 112+16+64 {
		t.Fatalf("arena did not grow to the second pass's peak: %d floats", c.arena.size())
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("releasing a mark twice did not panic")
			}
		}()
		c.Alloc(5)
		m := c.Mark()
		c.Alloc(3)
		c.Release(Mark{})
		c.Release(m)
	}()
}

// TestCtxsRunConcurrently: separate Ctxs (each with its own pool) may run at once and
// share Matrices.
func TestCtxsRunConcurrently(t *testing.T) {
	r := newRand(t)
	w := randFloats(r, 48*32, 0.2)
	m, err := NewMatrixF32(w, 48, 32)
	if err != nil {
		t.Fatal(err)
	}
	x := randTensor(r, 1, 20, 32)
	want := linearOracle(x.F32(), w, nil, GELU, nil, 20, 48, 32)
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := NewCtx(2)
			defer c.Close()
			for i := 0; i < 50; i++ {
				y := c.Linear(x, m, Tensor{}, GELU, Tensor{})
				for j, v := range y.F32() {
					if math.Abs(float64(v-want[j])) > 1e-5*(math.Abs(float64(want[j]))+1) {
						errs <- "concurrent Linear differs"
						return
					}
				}
				c.Release(Mark{})
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}

func TestCtxUseAfterClosePanics(t *testing.T) {
	c := NewCtx(2)
	c.Close()
	c.Close() // idempotent
	defer func() {
		if recover() == nil {
			t.Fatal("op on a closed Ctx did not panic")
		}
	}()
	c.L2Normalize(NewTensor(2, 2))
}

func TestNewCtxVariant(t *testing.T) {
	if _, err := NewCtxVariant(1, "no-such-isa"); err == nil {
		t.Fatal("unknown variant accepted")
	}
	vs := Variants()
	if len(vs) == 0 || vs[len(vs)-1] != "ref" {
		t.Fatalf("Variants() = %v, want ref last", vs)
	}
	want, _ := kernels.HostChoice() // dispatch's pick, or SYNTH_KERNELS's variant (a bad value falls back, as NewCtx does)
	if os.Getenv(kernels.EnvVariant) == "" && string(want) != vs[0] {
		t.Fatalf("dispatch picks %s, want the best runnable variant %s", want, vs[0])
	}
	if c := NewCtx(0); c.Threads() < 1 || c.Variant() != string(want) {
		t.Fatalf("NewCtx(0): %d threads, variant %s, want %s", c.Threads(), c.Variant(), want)
	} else {
		c.Close()
	}
}
