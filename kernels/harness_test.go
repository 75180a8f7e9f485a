package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
	"unsafe"
)

// The parity harness: every op runs for every variant this host can run (ref included),
// at thread counts 1, 3 and 8, on seeded random inputs, with NaN guard bands around
// every output and the inputs checked unmodified afterwards. Each op's test states its
// tolerance and why.

var threadCounts = []int{1, 3, 8}

// testSeed is the run's seed: SYNTH_SEED when set (to replay a failure), else the clock.
var testSeed = func() uint64 {
	if s := os.Getenv("SYNTH_SEED"); s != "" {
		if v, err := strconv.ParseUint(s, 10, 64); err == nil {
			return v
		}
	}
	return uint64(time.Now().UnixNano())
}()

// newRand returns the test's generator, logging the seed that reproduces it.
func newRand(t testing.TB) *rand.Rand {
	t.Helper()
	t.Logf("seed %d (set SYNTH_SEED=%d to replay)", testSeed, testSeed)
	return rand.New(rand.NewPCG(testSeed, 0x5eed))
}

// variants is every variant family this binary has and this CPU runs, ref first; on a
// CPU with AVX512_VNNI both avx512 flavours (with and without vpdpbusd).
func variants(t testing.TB) []*Set {
	t.Helper()
	var out []*Set
	ref, err := For(ISARef)
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, ref)
	for _, isa := range compiled {
		if isa == ISARef {
			continue
		}
		s, err := For(isa)
		if err != nil {
			t.Logf("variant %s not tested: %v", isa, err)
			continue
		}
		out = append(out, s)
		if s.VNNI() {
			out = append(out, newSet(isa, false))
		} else if isa == ISAAVX512 {
			t.Logf("variant avx512 without AVX512_VNNI: its vpdpbusd kernels not tested")
		}
	}
	return out
}

// setName names a variant in test output: its family, +vnni for the VNNI flavour.
func setName(s *Set) string {
	if s.VNNI() {
		return string(s.ISA()) + "+vnni"
	}
	return string(s.ISA())
}

func refSet(t testing.TB) *Set {
	s, err := For(ISARef)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// alignedFloats returns n floats starting on a 64-byte boundary.
func alignedFloats(n int) []float32 {
	buf := make([]float32, n+16)
	off := 0
	for uintptr(unsafe.Pointer(&buf[off]))%64 != 0 {
		off++
	}
	return buf[off : off+n : off+n]
}

// alignedBytes returns n bytes starting on a 64-byte boundary.
func alignedBytes(n int) []byte {
	buf := make([]byte, n+64)
	off := int((64 - uintptr(unsafe.Pointer(&buf[0]))%64) % 64)
	return buf[off : off+n : off+n]
}

// runShares runs f for ith = 0..nth-1 concurrently, each with its own scratch, like the
// worker pool does, and returns the first error.
func runShares(nth int, f func(ith int, scratch []float32) error) error {
	errs := make([]error, nth)
	var wg sync.WaitGroup
	for i := 0; i < nth; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs[i] = f(i, alignedFloats(ScratchFloats))
		}(i)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// guardNaN is the bit pattern kept in the guard bands: a NaN no kernel produces.
const guardNaN = 0x7fc0dead

const guardLen = 19 // floats on each side; odd so outputs are not always vector aligned

// guarded is an output matrix inside a buffer of guard NaNs: before it, after it and in
// the gap of every row (when ld > cols).
type guarded struct {
	buf            []float32
	rows, cols, ld int
}

func newGuarded(rows, cols, ld int) *guarded {
	g := &guarded{rows: rows, cols: cols, ld: ld}
	n := 0
	if rows > 0 {
		n = (rows-1)*ld + cols
	}
	g.buf = make([]float32, n+2*guardLen)
	for i := range g.buf {
		g.buf[i] = math.Float32frombits(guardNaN)
	}
	return g
}

func (g *guarded) mat() Mat {
	return Mat{Data: g.buf[guardLen : len(g.buf)-guardLen], Rows: g.rows, Cols: g.cols, LD: g.ld}
}

func (g *guarded) at(r, c int) float32 { return g.buf[guardLen+r*g.ld+c] }

// fill sets the matrix part to vals (row-major rows x cols), for in-place ops.
func (g *guarded) fill(vals []float32) {
	for r := 0; r < g.rows; r++ {
		copy(g.buf[guardLen+r*g.ld:guardLen+r*g.ld+g.cols], vals[r*g.cols:(r+1)*g.cols])
	}
}

// checkGuards fails when a kernel wrote outside the matrix.
func (g *guarded) checkGuards(t testing.TB, what string) {
	t.Helper()
	inside := func(i int) bool {
		i -= guardLen
		if i < 0 || g.rows == 0 || i >= (g.rows-1)*g.ld+g.cols {
			return false
		}
		return i%g.ld < g.cols
	}
	for i, v := range g.buf {
		if !inside(i) && math.Float32bits(v) != guardNaN {
			t.Fatalf("%s: wrote %v into the guard band at offset %d (matrix %dx%d, ld %d)", what, v, i-guardLen, g.rows, g.cols, g.ld)
		}
	}
}

// dense returns the matrix part row-major.
func (g *guarded) dense() []float32 {
	out := make([]float32, g.rows*g.cols)
	for r := 0; r < g.rows; r++ {
		for c := 0; c < g.cols; c++ {
			out[r*g.cols+c] = g.at(r, c)
		}
	}
	return out
}

// input is a random strided input matrix and a snapshot to check it is not modified.
type input struct {
	m    Mat
	orig []float32
}

func randMat(r *rand.Rand, rows, cols, ld int, scale float32) input {
	n := 0
	if rows > 0 {
		n = (rows-1)*ld + cols
	}
	data := make([]float32, n)
	for i := range data {
		data[i] = float32(r.NormFloat64()) * scale
	}
	return input{m: Mat{Data: data, Rows: rows, Cols: cols, LD: ld}, orig: append([]float32(nil), data...)}
}

func (in input) checkUnmodified(t testing.TB, what string) {
	t.Helper()
	for i := range in.orig {
		if math.Float32bits(in.orig[i]) != math.Float32bits(in.m.Data[i]) {
			t.Fatalf("%s: input modified at %d: %v -> %v", what, i, in.orig[i], in.m.Data[i])
		}
	}
}

func randSlice(r *rand.Rand, n int, scale float32) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64()) * scale
	}
	return s
}

// compare checks got against want elementwise: |got - want| <= tol * norm[i] (norm[i]
// is the error scale of element i, e.g. the sum of |terms| of a dot product), and that
// no element is NaN unless want is.
func compare(t testing.TB, what string, got, want, norm []float32, cols int, tol float64) {
	t.Helper()
	worst, wi := 0.0, -1
	for i := range want {
		if math.IsNaN(float64(want[i])) {
			if !math.IsNaN(float64(got[i])) {
				t.Fatalf("%s: [%d,%d] = %v, want NaN", what, i/cols, i%cols, got[i])
			}
			continue
		}
		if math.IsNaN(float64(got[i])) || math.IsInf(float64(got[i]), 0) != math.IsInf(float64(want[i]), 0) {
			t.Fatalf("%s: [%d,%d] = %v, want %v", what, i/cols, i%cols, got[i], want[i])
		}
		if math.IsInf(float64(want[i]), 0) {
			continue
		}
		e := math.Abs(float64(got[i])-float64(want[i])) / math.Max(float64(norm[i]), 1e-30)
		if e > worst {
			worst, wi = e, i
		}
	}
	if worst > tol {
		t.Fatalf("%s: [%d,%d] = %v, want %v: error %.3g of scale %v exceeds %g", what, wi/cols, wi%cols, got[wi], want[wi], worst, norm[wi], tol)
	}
}

func name(parts ...any) string {
	s := ""
	for i := 0; i+1 < len(parts); i += 2 {
		if s != "" {
			s += "/"
		}
		s += fmt.Sprintf("%v=%v", parts[i], parts[i+1])
	}
	return s
}

// sameBits requires got and want to hold the same bits (NaNs included).
func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s: element %d = %v, want %v (bit for bit)", what, i, got[i], want[i])
		}
	}
}
