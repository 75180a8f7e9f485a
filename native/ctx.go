package native

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"

	"synth/kernels"
)

// hostSet is the kernel variant dispatch picks for this CPU, chosen once.
var hostSet = kernels.Host()

// Ctx runs ops: it owns a persistent pool of worker goroutines (each op is one kernel
// call per worker, on its share of the work) and a scratch arena that op results are
// allocated from. A forward pass allocates its tensors from the arena and calls Reset at
// the end; after the first pass the arena has grown to the pass's peak and later passes
// allocate nothing.
//
// A Ctx is used by one goroutine at a time. Tensors from Alloc (and every op result) are
// valid until the next Reset: Clone what must outlive it.
type Ctx struct {
	set    *kernels.Set
	pool   *pool
	arena  arena
	closed bool

	// reused per op so that running one allocates nothing
	gemm    gemmJob
	rowJob  rowJob
	attn    attnJob
	im2col  im2colJob
	gather  gatherJob
	seqBuf  []int64
	maskBuf []byte
}

// NewCtx starts a Ctx with threads workers (threads <= 0: GOMAXPROCS) using the kernel
// variant dispatch picked for this CPU.
func NewCtx(threads int) *Ctx { return newCtx(threads, hostSet) }

// NewCtxVariant is NewCtx with a named kernel variant (ref, avx2, avx512: see Variants),
// for benchmarks and cross-variant tests.
func NewCtxVariant(threads int, variant string) (*Ctx, error) {
	s, err := kernels.For(kernels.ISA(variant))
	if err != nil {
		return nil, fmt.Errorf("native: %w", err)
	}
	return newCtx(threads, s), nil
}

// Variants lists the kernel variants this binary has and this CPU runs, best first.
func Variants() []string {
	var out []string
	for _, isa := range kernels.Runnable() {
		out = append(out, string(isa))
	}
	return out
}

func newCtx(threads int, s *kernels.Set) *Ctx {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	return &Ctx{set: s, pool: newPool(threads)}
}

// Close stops the workers. The Ctx must not be used afterwards.
func (c *Ctx) Close() {
	if !c.closed {
		c.pool.close()
		c.closed = true
	}
}

// Threads is the number of workers.
func (c *Ctx) Threads() int { return c.pool.n }

// Variant is the kernel variant this Ctx runs (ref, avx2, avx512).
func (c *Ctx) Variant() string { return string(c.set.ISA()) }

// Alloc returns a tensor from the scratch arena, valid until Reset. Its contents are
// whatever the arena held: every op overwrites its whole output, use Zeros otherwise.
func (c *Ctx) Alloc(shape ...int) Tensor {
	return makeTensor(c.arena.alloc(numel(shape)), shape)
}

// Zeros is Alloc with the contents set to zero.
func (c *Ctx) Zeros(shape ...int) Tensor {
	t := c.Alloc(shape...)
	clear(t.data)
	return t
}

// Reset releases every tensor allocated since the last Reset. When the pass needed more
// than the arena had, the arena grows to that peak here, so the next pass fits.
func (c *Ctx) Reset() { c.arena.reset() }

// run executes j on every worker and panics if a kernel refused its arguments: ops check
// shapes first, so a refusal is a bug.
func (c *Ctx) run(j job) {
	if c.closed {
		panic("native: Ctx used after Close")
	}
	defer profileOp(c, j)() // profile.go: times j when a Profile is running
	if err := c.pool.run(j); err != nil {
		panic(fmt.Sprintf("native: %v", err))
	}
}

// arena is a bump allocator over one 64-byte-aligned slab.
type arena struct {
	slab     []float32
	used     int // floats handed out from slab
	overflow int // floats handed out from the heap because slab was full
}

func (a *arena) alloc(n int) []float32 {
	rounded := (n + 15) &^ 15 // keep every tensor on a cache line
	if a.used+rounded <= len(a.slab) {
		s := a.slab[a.used : a.used+n : a.used+n]
		a.used += rounded
		return s
	}
	a.overflow += rounded
	return alignedFloats(n)
}

// reset grows the slab to the pass's peak when the pass overflowed it. The old slab and
// the overflow tensors are garbage then (arena tensors die at Reset); they are collected
// and their pages handed back before the new slab is taken, so that growing costs the
// new slab alone: with gigabytes of weights live on the heap, the collector would leave
// them resident beside it for a long time. This happens in the first passes only.
func (a *arena) reset() {
	if a.overflow > 0 {
		n := len(a.slab) + a.overflow
		a.slab = nil
		debug.FreeOSMemory()
		a.slab = alignedFloats(n)
	}
	a.used, a.overflow = 0, 0
}

// job is one op's kernel call; run does share ith of nth.
type job interface {
	run(ith, nth int, scratch []float32) error
}

// pool is a set of persistent worker goroutines. Worker 0 is the caller's goroutine;
// workers 1..n-1 wait on their own channel. Each owns a scratch buffer.
type pool struct {
	n       int
	start   []chan job
	wg      sync.WaitGroup
	errs    []error
	scratch [][]float32
}

func newPool(n int) *pool {
	p := &pool{n: n, start: make([]chan job, n), errs: make([]error, n), scratch: make([][]float32, n)}
	for i := range p.scratch {
		p.scratch[i] = alignedFloats(kernels.ScratchFloats)
	}
	for i := 1; i < n; i++ {
		p.start[i] = make(chan job, 1)
		go p.worker(i)
	}
	return p
}

func (p *pool) worker(i int) {
	for j := range p.start[i] {
		p.errs[i] = j.run(i, p.n, p.scratch[i])
		p.wg.Done()
	}
}

func (p *pool) run(j job) error {
	p.wg.Add(p.n - 1)
	for i := 1; i < p.n; i++ {
		p.start[i] <- j
	}
	p.errs[0] = j.run(0, p.n, p.scratch[0])
	p.wg.Wait()
	for _, err := range p.errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (p *pool) close() {
	for i := 1; i < p.n; i++ {
		close(p.start[i])
	}
}
