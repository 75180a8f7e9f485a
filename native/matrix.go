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
// weight dtype, ready for Ctx.Linear. It is packed once, at construction, into the
// panels the GEMM micro-kernel of this CPU's kernel variant reads (the same dtype and
// bytes, reordered: quantized blocks stay quantized and are dequantized inside the GEMM).
// A Matrix is immutable and safe to share between Ctxs and goroutines.
//
// Memory: the source bytes stay referenced (Dequantize, Gather and the reference
// kernels read them), so a Matrix costs its source plus a packed copy of the same size;
// mmap'd sources are not touched again after packing, so the OS may drop their pages.
type Matrix struct {
	dt   DType
	n, k int
	raw  []byte

	host *kernels.Weights // with the panels the host's variant wants

	mu    sync.Mutex
	other map[int]*kernels.Weights // by panel width, for other variants (tests, benchmarks)
}

// NewMatrixF32 makes a Matrix of w [n, k] row-major (not copied; do not modify it
// afterwards).
func NewMatrixF32(w []float32, n, k int) (*Matrix, error) {
	if n < 0 || k < 0 || len(w) != n*k {
		return nil, fmt.Errorf("native: F32 matrix [%d, %d] from %d values: %w", n, k, len(w), ErrShape)
	}
	var raw []byte
	if len(w) > 0 {
		raw = unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), 4*len(w))
	}
	return newMatrix(F32, raw, n, k)
}

// NewMatrix makes a Matrix of n rows of k values of dt from raw (row-major, ggml blocks
// for Q8_0/Q4_0; any alignment; used in place, not copied, so it may be mmap'd).
func NewMatrix(dt DType, raw []byte, n, k int) (*Matrix, error) {
	if dt > Q4_0 {
		return nil, fmt.Errorf("native: %s is not a weight dtype: %w", dt, ErrShape)
	}
	if n < 0 || k < 0 || k%dt.BlockSize() != 0 {
		return nil, fmt.Errorf("native: %s matrix [%d, %d]: K must be a multiple of %d: %w", dt, n, k, dt.BlockSize(), ErrShape)
	}
	if need := n * dt.RowBytes(k); len(raw) != need {
		return nil, fmt.Errorf("native: %s matrix [%d, %d] needs %d bytes, have %d: %w", dt, n, k, need, len(raw), ErrShape)
	}
	return newMatrix(dt, raw, n, k)
}

// QuantizeMatrix converts w [n, k] to dt (bit-exact with ggml's quantizers) and makes a
// Matrix of the result.
func QuantizeMatrix(w []float32, n, k int, dt DType) (*Matrix, error) {
	if dt > Q4_0 {
		return nil, fmt.Errorf("native: %s is not a weight dtype: %w", dt, ErrShape)
	}
	if n < 0 || k < 0 || len(w) != n*k || k%dt.BlockSize() != 0 {
		return nil, fmt.Errorf("native: quantize [%d, %d] (%d values) to %s: %w", n, k, len(w), dt, ErrShape)
	}
	raw := make([]byte, n*dt.RowBytes(k))
	rb := dt.RowBytes(k)
	for r := 0; r < n; r++ {
		if err := kernels.Quantize(kernels.DType(dt), w[r*k:(r+1)*k], raw[r*rb:(r+1)*rb]); err != nil {
			return nil, fmt.Errorf("native: quantize to %s: %w", dt, err)
		}
	}
	return newMatrix(dt, raw, n, k)
}

func newMatrix(dt DType, raw []byte, n, k int) (*Matrix, error) {
	m := &Matrix{dt: dt, n: n, k: k, raw: raw}
	w, err := m.pack(hostSet.PanelWidth(kernels.DType(dt)))
	if err != nil {
		return nil, err
	}
	m.host = w
	return m, nil
}

// pack returns the kernels' view of m with panels of nr rows (none when nr is 0).
func (m *Matrix) pack(nr int) (*kernels.Weights, error) {
	w := &kernels.Weights{DType: kernels.DType(m.dt), N: m.n, K: m.k, Raw: m.raw}
	if nr == 0 {
		return w, nil
	}
	w.Packed = alignedBytes(kernels.PackedBytes(kernels.DType(m.dt), m.n, m.k, nr))
	w.PanelNR = nr
	nth := runtime.GOMAXPROCS(0)
	errs := make([]error, nth)
	var wg sync.WaitGroup
	for i := 0; i < nth; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs[i] = kernels.Pack(kernels.DType(m.dt), m.raw, m.n, m.k, nr, w.Packed, i, nth)
		}(i)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("native: pack [%d, %d]: %w", m.n, m.k, err)
	}
	return w, nil
}

// weightsFor returns m as kernel set s reads it.
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
	w, err := m.pack(nr)
	if err != nil {
		panic(err) // the shape was validated at construction
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

// Dequantize returns W [N, K] as f32, row-major (a new slice; exact for every dtype).
func (m *Matrix) Dequantize() []float32 {
	out := make([]float32, m.n*m.k)
	m.dequantRows(0, m.n, out)
	return out
}

// dequantRows writes rows [r0, r1) of W as f32 into out.
func (m *Matrix) dequantRows(r0, r1 int, out []float32) {
	rb := m.dt.RowBytes(m.k)
	if err := kernels.Dequantize(kernels.DType(m.dt), m.raw[r0*rb:r1*rb], out[:(r1-r0)*m.k]); err != nil {
		panic(err) // sizes were validated at construction
	}
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
