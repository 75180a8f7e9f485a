package native

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"synth/kernels"
)

// hostSet is the kernel variant dispatch picks for this CPU, chosen once.
var hostSet = kernels.Host()

// Ctx runs ops on one device: it owns the device's executor (on the cpu a persistent
// pool of worker goroutines, each op one kernel call per worker; on a ggml device a
// backend instance and the graph being recorded) and a scratch arena that op results
// are allocated from.
//
// Lifetimes are scoped: m := c.Mark() ... c.Release(m) frees every tensor allocated
// after the mark, so a block of a forward pass reads
//
//	m := c.Mark()
//	h := c.LayerNorm(x, ...)      // temporaries of the block
//	c.LinearInto(x, h, ...)       // x was allocated before the mark and lives on
//	c.Release(m)
//
// After the first pass the arena has grown to the pass's peak and later passes allocate
// nothing. A Ctx is used by one goroutine at a time.
type Ctx struct {
	dev    *Device
	x      executor
	arena  arena
	closed bool

	// reused per op so that running one allocates nothing
	seqBuf  []int64
	maskBuf []byte
	idBuf   []int64
}

// NewCtx starts a Ctx on the cpu device with threads workers (threads <= 0:
// GOMAXPROCS) using the kernel variant dispatch picked for this CPU.
func NewCtx(threads int) *Ctx { return newCtx(CPU, newCPUExec(threads, hostSet)) }

// NewCtxVariant is NewCtx with a named kernel variant (ref, avx2, avx512: see Variants),
// for benchmarks and cross-variant tests.
func NewCtxVariant(threads int, variant string) (*Ctx, error) {
	s, err := kernels.For(kernels.ISA(variant))
	if err != nil {
		return nil, fmt.Errorf("native: %w", err)
	}
	return newCtx(CPU, newCPUExec(threads, s)), nil
}

// NewCtxOn starts a Ctx on dev with threads CPU threads (the cpu device's workers; the
// ggml CPU device's threads; a GPU device's host-side threads where it has any).
func NewCtxOn(dev *Device, threads int) (*Ctx, error) {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	if dev == nil || dev.host() {
		return NewCtx(threads), nil
	}
	x, err := dev.g.newExec(dev, threads)
	if err != nil {
		return nil, err
	}
	return newCtx(dev, x), nil
}

// Variants lists the kernel variants this binary has and this CPU runs, best first.
func Variants() []string {
	var out []string
	for _, isa := range kernels.Runnable() {
		out = append(out, string(isa))
	}
	return out
}

func newCtx(dev *Device, x executor) *Ctx {
	return &Ctx{dev: dev, x: x}
}

// Close stops the workers and frees the arena. The Ctx must not be used afterwards.
func (c *Ctx) Close() {
	if !c.closed {
		c.x.close()
		c.arena.free()
		c.closed = true
	}
}

// Device is the device the Ctx runs on.
func (c *Ctx) Device() *Device { return c.dev }

// Threads is the number of CPU threads the Ctx computes with.
func (c *Ctx) Threads() int { return c.x.threads() }

// Variant is the kernel variant this Ctx runs (ref, avx2, avx512), or the device name
// for a ggml device.
func (c *Ctx) Variant() string { return c.x.variant() }

func (c *Ctx) live(op string) {
	if c.closed {
		panic("native: " + op + ": Ctx used after Close")
	}
}

// Alloc returns a tensor from the scratch arena, valid until the Release of a mark
// taken before it. Its contents are whatever the arena held: every op overwrites its
// whole output.
func (c *Ctx) Alloc(shape ...int) Tensor {
	c.live("Alloc")
	n := numel(shape)
	buf, off := c.arena.alloc(c.dev, n)
	return makeTensor(buf, off, shape)
}

// Upload copies host values into a new arena tensor on the Ctx's device.
func (c *Ctx) Upload(data []float32, shape ...int) Tensor {
	if n := numel(shape); n != len(data) {
		panic(fmt.Sprintf("native: Upload: %d values for shape %v (%d)", len(data), slices2(shape), n))
	}
	t := c.Alloc(shape...)
	c.x.upload(t, data)
	return t
}

// ToHost copies t's values (its 2-D form, row-major, views included) into a new host
// slice, after the work that produces them is done.
func (c *Ctx) ToHost(t Tensor) []float32 {
	return c.ToHostInto(nil, t)
}

// ToHostInto is ToHost appending to dst[:0] (reusing its memory).
func (c *Ctx) ToHostInto(dst []float32, t Tensor) []float32 {
	c.live("ToHost")
	c.onDevice("ToHost", t)
	rows, cols := t.Dims2()
	dst = append(dst[:0], make([]float32, rows*cols)...)
	c.x.download(dst, t)
	return dst
}

// Sync waits for every op recorded so far (a no-op on the cpu, where ops run as they
// are called).
func (c *Ctx) Sync() { c.live("Sync"); c.x.sync() }

// Mark is a position in a Ctx's arena (see Ctx).
type Mark struct {
	used, overflow int
}

// Mark returns the arena's position: Release(m) frees what is allocated after it. The
// zero Mark is the arena's start: Release(Mark{}) frees everything.
func (c *Ctx) Mark() Mark { return Mark{c.arena.used, len(c.arena.overflow)} }

// Release frees every arena tensor allocated since m was taken. Marks nest: releasing
// an outer mark releases the inner ones. When everything is released and the pass
// needed more than the arena had, the arena grows to that peak here, so the next pass
// fits.
func (c *Ctx) Release(m Mark) {
	c.live("Release")
	if m.used > c.arena.used || m.overflow > len(c.arena.overflow) {
		panic(fmt.Sprintf("native: Release of a mark (%d, %d) past the arena's position (%d, %d): released twice?", m.used, m.overflow, c.arena.used, len(c.arena.overflow)))
	}
	if m.overflow < len(c.arena.overflow) || (m.used == 0 && c.arena.need > c.arena.size()) {
		// pending work may still read the memory given back: finish it first
		c.x.sync()
	}
	c.arena.release(c.dev, m)
}

// arena is a stack allocator over one slab of device memory, with overflow buffers
// once the slab is full.
type arena struct {
	slab     *Buffer
	used     int       // floats handed out from slab
	overflow []*Buffer // allocations the slab had no room for, in order
	need     int       // the largest used + overflow floats seen since the last growth
	inOver   int       // floats in overflow
}

func (a *arena) size() int {
	if a.slab == nil {
		return 0
	}
	return a.slab.n
}

func (a *arena) alloc(dev *Device, n int) (*Buffer, int) {
	rounded := (n + 15) &^ 15 // keep every tensor on a cache line
	if len(a.overflow) == 0 && a.used+rounded <= a.size() {
		off := a.used
		a.used += rounded
		a.need = max(a.need, a.used)
		return a.slab, off
	}
	b := dev.newBuffer(max(n, 1))
	a.overflow = append(a.overflow, b)
	a.inOver += rounded
	a.need = max(a.need, a.used+a.inOver)
	return b, 0
}

// release returns to m. Overflow buffers are dropped (a ggml device frees them); once
// everything is released, a slab too small for the peak is replaced by one that fits.
// The old slab and the overflow buffers are collected and their pages handed back
// before the new slab is taken, so that growing costs the new slab alone: with
// gigabytes of weights live on the heap, the collector would leave them resident
// beside it for a long time. This happens in the first passes only.
func (a *arena) release(dev *Device, m Mark) {
	for _, b := range a.overflow[m.overflow:] {
		b.free()
		a.inOver -= (b.n + 15) &^ 15
	}
	clear(a.overflow[m.overflow:])
	a.overflow = a.overflow[:m.overflow]
	a.used = m.used
	if m.used == 0 && m.overflow == 0 && a.need > a.size() {
		if a.slab != nil {
			a.slab.free()
			a.slab = nil
		}
		if dev.host() {
			debug.FreeOSMemory()
		}
		a.slab = dev.newBuffer(a.need)
		a.inOver = 0
	}
}

func (a *arena) free() {
	for _, b := range a.overflow {
		b.free()
	}
	a.overflow = nil
	if a.slab != nil {
		a.slab.free()
		a.slab = nil
	}
	a.used, a.inOver, a.need = 0, 0, 0
}

// free gives a buffer's device memory back (host memory is left to the collector).
func (b *Buffer) free() {
	if b.dev.host() {
		b.host = nil
		return
	}
	b.dev.g.freeBuffer(b)
}

// onDevice panics unless every tensor given (the empty one excepted) lives on c's
// device: ops never move data implicitly.
func (c *Ctx) onDevice(op string, ts ...Tensor) {
	for _, t := range ts {
		if t.buf != nil && t.buf.dev != c.dev {
			panic(fmt.Sprintf("native: %s: tensor %v is on %s, the Ctx runs on %s (Upload or ToHost it)", op, t.Shape(), t.buf.dev, c.dev))
		}
	}
}

// Import returns t on the Ctx's device: t itself when it is there already, else a copy
// of its host values in the arena (how a driver's host input, such as preprocessed
// pixels, reaches any device).
func (c *Ctx) Import(t Tensor) Tensor {
	if t.Empty() || t.Device() == c.dev {
		return t
	}
	t.mustHost("Import")
	rows, cols := t.Dims2()
	if !t.Contiguous() {
		out := c.Alloc(rows, cols)
		c.x.upload(out, hostRows(t))
		return out
	}
	return c.Upload(t.F32(), t.Shape()...)
}

// hostRows copies a strided host view's rows into one slice.
func hostRows(t Tensor) []float32 {
	rows, cols := t.Dims2()
	out := make([]float32, 0, rows*cols)
	for r := 0; r < rows; r++ {
		out = append(out, t.Row(r)...)
	}
	return out
}
