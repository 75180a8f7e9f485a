package native

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"synth/kernels"
)

// ErrShape is returned when a weight's bytes or dimensions do not fit its dtype.
var ErrShape = errors.New("native: bad weight shape")

// Matrix is a weight matrix W [N, K] (nn.Linear layout: N outputs by K inputs) in any
// weight dtype, ready for Ctx.Linear. A Matrix is immutable and safe to share between
// Ctxs and goroutines.
//
// Memory: a Matrix holds one copy of its weights. Where this CPU's GEMM reads panels
// (the avx2 and avx512 variants), construction packs the source into them (the same
// dtype and bytes, rows reordered: quantized blocks stay quantized and are dequantized
// inside the GEMM) and keeps no reference to the source: a heap source is garbage once
// the caller drops it, and the pages of an mmap'd one can be handed back to the OS
// (weights.Source.Release). Gather, Dequantize and the reference kernels read the panels
// (kernels.GatherRows, kernels.Unpack). Where the GEMM reads raw rows (the ref variant,
// on a CPU without AVX2), the Matrix uses the source in place: ReadsSource reports it,
// and the source must then stay valid (and an mmap'd one mapped) while the Matrix is
// used. A Ctx of another variant (NewCtxVariant: tests, benchmarks) adds that variant's
// layout to the Matrix, built from the one copy, for the Matrix's lifetime.
type Matrix struct {
	dev         *Device
	dt          DType
	n, k        int
	host        *kernels.Weights // cpu: the one copy, panels for the host's GEMM, or the source rows
	readsSource bool             // host.Raw is the caller's source
	g           gmat             // ggml devices: the weights in device memory, as stored

	mu    sync.Mutex
	other map[int]*kernels.Weights // by panel width (0: raw rows), for other variants
	tr    *Matrix                  // W^T in Q8_0 for LinearBackward of a quantized W (cpu)
}

// NewMatrixF32 makes a cpu Matrix (see Device.NewMatrixF32).
func NewMatrixF32(w []float32, n, k int) (*Matrix, error) { return CPU.NewMatrixF32(w, n, k) }

// NewMatrix makes a cpu Matrix (see Device.NewMatrix).
func NewMatrix(dt DType, raw []byte, n, k int) (*Matrix, error) { return CPU.NewMatrix(dt, raw, n, k) }

// QuantizeMatrix makes a cpu Matrix (see Device.QuantizeMatrix).
func QuantizeMatrix(w []float32, n, k int, dt DType) (*Matrix, error) {
	return CPU.QuantizeMatrix(w, n, k, dt)
}

// NewMatrixF32 makes a Matrix on d of w [n, k] row-major. Unless ReadsSource says otherwise
// (see Matrix), w is not referenced once NewMatrixF32 returns; when it is, do not modify
// it afterwards.
func (d *Device) NewMatrixF32(w []float32, n, k int) (*Matrix, error) {
	if n < 0 || k < 0 || len(w) != n*k {
		return nil, fmt.Errorf("native: F32 matrix [%d, %d] from %d values: %w", n, k, len(w), ErrShape)
	}
	var raw []byte
	if len(w) > 0 {
		raw = unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), 4*len(w))
	}
	return d.newMatrix(F32, raw, n, k, false)
}

// NewMatrix makes a Matrix on d of n rows of k values of dt from raw (row-major, ggml blocks
// for the quantized types; any alignment; it may be mmap'd). Unless ReadsSource says otherwise
// (see Matrix), raw is not referenced once NewMatrix returns.
func (d *Device) NewMatrix(dt DType, raw []byte, n, k int) (*Matrix, error) {
	if !isWeightDType(dt) {
		return nil, fmt.Errorf("native: %s is not a weight dtype: %w", dt, ErrShape)
	}
	if n < 0 || k < 0 || k%dt.BlockSize() != 0 {
		return nil, fmt.Errorf("native: %s matrix [%d, %d]: K must be a multiple of %d: %w", dt, n, k, dt.BlockSize(), ErrShape)
	}
	if need := n * dt.RowBytes(k); len(raw) != need {
		return nil, fmt.Errorf("native: %s matrix [%d, %d] needs %d bytes, have %d: %w", dt, n, k, need, len(raw), ErrShape)
	}
	return d.newMatrix(dt, raw, n, k, false)
}

// quantChunk bounds the bytes of rows QuantizeMatrix converts before packing them: a
// few MiB, so that a matrix quantized at load costs its panels plus this, not a second
// full copy. (A variable for tests.)
var quantChunk = 8 << 20

// QuantizeMatrix converts w [n, k] on d to dt (bit-exact with ggml's quantizers) and makes a
// Matrix of the result. w is not referenced afterwards. The rows are quantized a chunk
// at a time straight into the panels.
func (d *Device) QuantizeMatrix(w []float32, n, k int, dt DType) (*Matrix, error) {
	if !isWeightDType(dt) {
		return nil, fmt.Errorf("native: %s is not a weight dtype: %w", dt, ErrShape)
	}
	if n < 0 || k < 0 || len(w) != n*k || k%dt.BlockSize() != 0 {
		return nil, fmt.Errorf("native: quantize [%d, %d] (%d values) to %s: %w", n, k, len(w), dt, ErrShape)
	}
	kdt, rb := kernels.DType(dt), dt.RowBytes(k)
	// quantize rows [r0, r1) of w into out, rows split between the workers
	quantize := func(r0, r1 int, out []byte) error {
		return parallel(func(ith, nth int) error {
			a, b := r0+(r1-r0)*ith/nth, r0+(r1-r0)*(ith+1)/nth
			return quantizeRows(dt, w[a*k:b*k], k, out[(a-r0)*rb:(b-r0)*rb])
		})
	}
	nr := hostSet.PanelWidth(kdt)
	if !d.host() || nr == 0 || n == 0 || k == 0 {
		raw := make([]byte, n*rb)
		if err := quantize(0, n, raw); err != nil {
			return nil, fmt.Errorf("native: quantize to %s: %w", dt, err)
		}
		return d.newMatrix(dt, raw, n, k, true)
	}
	packed := alignedBytes(kernels.PackedBytes(kdt, n, k, nr))
	chunk := max(1, quantChunk/(rb*nr)) * nr // whole panels
	buf := make([]byte, min(chunk, n)*rb)
	for r0 := 0; r0 < n; r0 += chunk {
		r1 := min(n, r0+chunk)
		if err := quantize(r0, r1, buf); err != nil {
			return nil, fmt.Errorf("native: quantize to %s: %w", dt, err)
		}
		rows, out := buf[:(r1-r0)*rb], packed[kernels.PackedBytes(kdt, r0, k, nr):] // r0 is a panel boundary
		if err := parallel(func(ith, nth int) error { return kernels.Pack(kdt, rows, r1-r0, k, nr, out, ith, nth) }); err != nil {
			return nil, fmt.Errorf("native: pack [%d, %d]: %w", n, k, err)
		}
	}
	return &Matrix{dev: d, dt: dt, n: n, k: k, host: &kernels.Weights{DType: kdt, N: n, K: k, Packed: packed, PanelNR: nr}}, nil
}

// newMatrix packs raw for the host's GEMM, or uses it in place when the GEMM reads raw
// rows; on a ggml device it copies raw to device memory as it is. owned says raw is the
// Matrix's own (not the caller's source).
func (d *Device) newMatrix(dt DType, raw []byte, n, k int, owned bool) (*Matrix, error) {
	m := &Matrix{dev: d, dt: dt, n: n, k: k}
	if !d.host() {
		g, err := d.g.newMatrix(dt, raw, n, k)
		if err != nil {
			return nil, err
		}
		m.g = g
		return m, nil
	}
	nr := hostSet.PanelWidth(kernels.DType(dt))
	if nr == 0 {
		m.host = &kernels.Weights{DType: kernels.DType(dt), N: n, K: k, Raw: raw}
		m.readsSource = !owned && len(raw) > 0
		return m, nil
	}
	w, err := pack(dt, raw, n, k, nr)
	if err != nil {
		return nil, err
	}
	m.host = w
	return m, nil
}

// ReadsSource reports whether m reads the bytes it was made from (the host's GEMM reads
// raw rows, see Matrix): they must then stay valid, and are touched by every GEMM.
func (m *Matrix) ReadsSource() bool { return m.readsSource }

// pack returns raw rows [n, k] of dt in panels of nr rows.
func pack(dt DType, raw []byte, n, k, nr int) (*kernels.Weights, error) {
	w := &kernels.Weights{DType: kernels.DType(dt), N: n, K: k, PanelNR: nr}
	w.Packed = alignedBytes(kernels.PackedBytes(w.DType, n, k, nr))
	if err := parallel(func(ith, nth int) error { return kernels.Pack(w.DType, raw, n, k, nr, w.Packed, ith, nth) }); err != nil {
		return nil, fmt.Errorf("native: pack [%d, %d]: %w", n, k, err)
	}
	return w, nil
}

// parallel runs f(ith, nth) on GOMAXPROCS goroutines (load-time work outside any Ctx).
func parallel(f func(ith, nth int) error) error {
	nth := runtime.GOMAXPROCS(0)
	errs := make([]error, nth)
	var wg sync.WaitGroup
	for i := 0; i < nth; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs[i] = f(i, nth)
		}(i)
	}
	wg.Wait()
	return errors.Join(errs...)
}

// rawRows returns W's raw rows: the source when m reads it, else rebuilt from the panels
// or read from the device (a new slice).
func (m *Matrix) rawRows() []byte {
	if !m.dev.host() {
		return m.dev.g.readMatrix(m)
	}
	if len(m.host.Packed) == 0 {
		return m.host.Raw
	}
	raw := make([]byte, m.n*m.dt.RowBytes(m.k))
	if err := parallel(func(ith, nth int) error {
		return kernels.Unpack(m.host.DType, m.host.Packed, m.n, m.k, m.host.PanelNR, raw, ith, nth)
	}); err != nil {
		panic(err) // the shape was validated at construction
	}
	return raw
}

// weightsFor returns m as kernel set s reads it: the host's copy, or (tests, benchmarks)
// the layout of another variant, made once from it and kept.
func (m *Matrix) weightsFor(s *kernels.Set) *kernels.Weights {
	nr := s.PanelWidth(kernels.DType(m.dt))
	if nr == m.host.PanelNR {
		return m.host
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if w := m.other[nr]; w != nil {
		return w
	}
	raw := m.rawRows()
	w := &kernels.Weights{DType: kernels.DType(m.dt), N: m.n, K: m.k, Raw: raw}
	if nr > 0 {
		var err error
		if w, err = pack(m.dt, raw, m.n, m.k, nr); err != nil {
			panic(err) // the shape was validated at construction
		}
	}
	if m.other == nil {
		m.other = map[int]*kernels.Weights{}
	}
	m.other[nr] = w
	return w
}

// N is the number of rows (outputs).
func (m *Matrix) N() int { return m.n }

// K is the number of columns (inputs).
func (m *Matrix) K() int { return m.k }

// DType is the element type of the stored weights.
func (m *Matrix) DType() DType { return m.dt }

// Device is where the weights live.
func (m *Matrix) Device() *Device { return m.dev }

func (m *Matrix) mustOn(dev *Device, op string) {
	if m.dev != dev {
		panic(fmt.Sprintf("native: %s: weights [%d, %d] on %s, the Ctx runs on %s", op, m.n, m.k, m.dev, dev))
	}
}

// Free gives a ggml device's memory for the weights back; the Matrix must not be used
// afterwards, and the work that reads it must be done (Ctx.Sync on every Ctx that used
// it). (Host weights are left to the collector.)
func (m *Matrix) Free() {
	if !m.dev.host() {
		m.dev.g.freeMatrix(m)
	}
}

// transposedQ8 is W^T [K, N] in Q8_0, made once: the cpu's LinearBackward of a
// quantized W multiplies in integers like its forward pass, instead of dequantizing and
// transposing W at every step. It costs a second copy of W at about 8.5 bits a value
// (training only). nil when N is not a multiple of Q8_0's block. Only the cpu calls it.
func (m *Matrix) transposedQ8() *Matrix {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.tr != nil || m.n%Q8_0.BlockSize() != 0 {
		return m.tr
	}
	// W^T's row kk, block b holds W[32b:32b+32, kk]: quantize 32 rows of W at a time,
	// transposed, so that no full-size f32 copy of W is ever made
	const bn = 32
	rb, bb := Q8_0.RowBytes(m.n), Q8_0.RowBytes(bn)
	raw := make([]byte, m.k*rb)
	tile, tt := make([]float32, bn*m.k), make([]float32, m.k*bn)
	blocks := make([]byte, m.k*bb)
	ids := make([]int32, bn)
	for n0 := 0; n0 < m.n; n0 += bn {
		for i := range ids {
			ids[i] = int32(n0 + i)
		}
		mat := kernels.Mat{Data: tile, Rows: bn, Cols: m.k, LD: m.k}
		if err := parallel(func(ith, nth int) error { return hostSet.GatherRows(m.host, ids, mat, ith, nth) }); err != nil {
			return nil
		}
		transpose(tt, tile, bn, m.k, m.k)
		if err := kernels.Quantize(kernels.Q8_0, tt, blocks); err != nil {
			return nil
		}
		for kk := 0; kk < m.k; kk++ {
			copy(raw[kk*rb+n0/bn*bb:], blocks[kk*bb:(kk+1)*bb])
		}
	}
	tr, err := m.dev.NewMatrix(Q8_0, raw, m.k, m.n)
	if err != nil {
		return nil
	}
	m.tr = tr
	return tr
}

// Dequantize returns W [N, K] as f32, row-major (a new slice; exact for every dtype).
func (m *Matrix) Dequantize() []float32 {
	if !m.dev.host() {
		out := make([]float32, m.n*m.k)
		if err := kernels.Dequantize(kernels.DType(m.dt), m.rawRows(), out); err != nil {
			panic(err) // sizes were validated at construction
		}
		return out
	}
	out := make([]float32, m.n*m.k)
	mat := kernels.Mat{Data: out, Rows: m.n, Cols: m.k, LD: m.k}
	if err := parallel(func(ith, nth int) error { return hostSet.GatherRows(m.host, nil, mat, ith, nth) }); err != nil {
		panic(err) // sizes were validated at construction
	}
	return out
}

// alignedBytes returns n zeroed bytes starting on a 64-byte boundary.
func alignedBytes(n int) []byte {
	buf := make([]byte, n+64)
	off := int((64 - uintptr(unsafe.Pointer(&buf[0]))%64) % 64)
	return buf[off : off+n : off+n]
}

// alignedFloats returns n zeroed floats starting on a 64-byte boundary (a cache line;
// the AVX-512 kernels load whole lines).
func alignedFloats(n int) []float32 {
	buf := make([]float32, n+16)
	off := int((64 - uintptr(unsafe.Pointer(&buf[0]))%64) % 64 / 4)
	return buf[off : off+n : off+n]
}
