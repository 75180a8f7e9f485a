package native

import (
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"
)

// The kernels package holds the parity harness of every kernel and variant; these tests
// check the ops API on top: shapes, views, fusion paths, the cache, the arena and pool.

var seed = func() uint64 {
	if s := os.Getenv("SYNTH_SEED"); s != "" {
		if v, err := strconv.ParseUint(s, 10, 64); err == nil {
			return v
		}
	}
	return uint64(time.Now().UnixNano())
}()

func newRand(t testing.TB) *rand.Rand {
	t.Helper()
	t.Logf("seed %d (set SYNTH_SEED=%d to replay)", seed, seed)
	return rand.New(rand.NewPCG(seed, 0xa11))
}

func randTensor(r *rand.Rand, scale float32, shape ...int) Tensor {
	t := NewTensor(shape...)
	for i := range t.data {
		t.data[i] = float32(r.NormFloat64()) * scale
	}
	return t
}

func randFloats(r *rand.Rand, n int, scale float32) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64()) * scale
	}
	return s
}

// forEachCtx runs f with a Ctx of every runnable variant at 1, 3 and 8 threads.
func forEachCtx(t *testing.T, f func(t *testing.T, c *Ctx)) {
	for _, v := range Variants() {
		for _, n := range []int{1, 3, 8} {
			c, err := NewCtxVariant(n, v)
			if err != nil {
				t.Fatal(err)
			}
			t.Run("isa="+v+"/nth="+strconv.Itoa(n), func(t *testing.T) { f(t, c) })
			c.Close()
		}
	}
}

// near fails unless |got - want| <= tol * (|want| + floor) for every element.
func near(t *testing.T, what string, got, want []float32, tol, floor float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range want {
		if d := math.Abs(float64(got[i] - want[i])); !(d <= tol*(math.Abs(float64(want[i]))+floor)) {
			t.Fatalf("%s: [%d] = %v, want %v", what, i, got[i], want[i])
		}
	}
}

// dense copies t's 2-D form row-major (views included).
func dense(t Tensor) []float32 {
	rows, cols := t.Dims2()
	out := make([]float32, 0, rows*cols)
	for r := 0; r < rows; r++ {
		out = append(out, t.Row(r)...)
	}
	return out
}

// linearOracle is y = act(x W^T + b) + res in float64.
func linearOracle(x []float32, w []float32, b []float32, act Epilogue, res []float32, m, n, k int) []float32 {
	y := make([]float32, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			s := 0.0
			for kk := 0; kk < k; kk++ {
				s += float64(x[i*k+kk]) * float64(w[j*k+kk])
			}
			if b != nil {
				s += float64(b[j])
			}
			switch act {
			case GELU:
				s = 0.5 * s * (1 + math.Erf(s/math.Sqrt2))
			case QuickGELU:
				s = s / (1 + math.Exp(-1.702*s))
			case ReLU:
				s = math.Max(s, 0)
			}
			if res != nil {
				s += float64(res[i*n+j])
			}
			y[i*n+j] = float32(s)
		}
	}
	return y
}
