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
	d := t.F32()
	for i := range d {
		d[i] = float32(r.NormFloat64()) * scale
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

// testDevices are the devices the op tests run on: SYNTH_TEST_DEVICES (a comma list of
// device names, e.g. "cpu,ggml:CPU"), or every device this process has.
func testDevices(t testing.TB) []*Device {
	devs, err := DeviceList(os.Getenv("SYNTH_TEST_DEVICES"))
	if err != nil {
		t.Fatalf("SYNTH_TEST_DEVICES: %v", err)
	}
	return devs
}

// forEachCtx runs f with a Ctx of every runnable cpu kernel variant at 1, 3 and 8
// threads, and of every other test device (testDevices) at 1 and 2 threads (ggml's CPU threads spin while they wait: more threads than cores only slows them).
func forEachCtx(t *testing.T, f func(t *testing.T, c *Ctx)) {
	for _, dev := range testDevices(t) {
		if dev != CPU {
			for _, n := range []int{1, 2} {
				c, err := NewCtxOn(dev, n)
				if err != nil {
					t.Fatal(err)
				}
				t.Run("dev="+dev.Name()+"/nth="+strconv.Itoa(n), func(t *testing.T) { f(t, c) })
				c.Close()
			}
			continue
		}
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
}

// on is a copy of host tensor x on c's device (in its arena): every test input goes
// through it, so the same test runs on every device.
func on(c *Ctx, x Tensor) Tensor {
	if x.Empty() {
		return Tensor{}
	}
	return c.Upload(x.F32(), x.Shape()...)
}

// back is y's values on the host, as a tensor of y's 2-D shape.
func back(c *Ctx, y Tensor) Tensor {
	rows, cols := y.Dims2()
	return FromF32(c.ToHost(y), rows, cols)
}

// nearGEMM checks got (a Linear's output [m, n], after bias, act and residual) against
// want (the float64 oracle over the dequantized weights wd [n, k] and inputs x [m, k]).
// synth's kernels accumulate in f32 from the exact weights: 1e-5 relative at these
// small K. ggml's CPU device first rounds the activations to the weights' vec_dot_type:
// f16 for F16 weights (relative error 2^-11 per value), bf16 for BF16 (2^-8), q8_0
// blocks for Q8_0 and Q4_0 (error at most half a step, amax(block)/254), q8_K blocks of
// 256 for the K-quants. synth's kernels quantize x too for the quantized types (per 32
// values: kernels.QGEMMRef; Ctx.QuantizesX). So their bound is the sum over k of that
// error times |w|, times 1.2 for the activations' slopes, plus the f32 tolerance.
func nearGEMM(t *testing.T, c *Ctx, what string, got, want, x, wd []float32, m, n, k int, dt DType) {
	t.Helper()
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			bound := 1e-5 * (math.Abs(float64(want[i*n+j])) + 1)
			if c.Device() != CPU || c.QuantizesX(dt, m) { // x rounded to 8 bits (quantized weights) or to dt's precision
				xr, wr := x[i*k:(i+1)*k], wd[j*k:(j+1)*k]
				e, blk := 0.0, 32
				if c.Device() != CPU && dt.BlockSize() == 256 {
					blk = 256 // ggml's q8_K
				}
				for b0 := 0; b0 < k; b0 += blk {
					amax := 0.0
					for kk := b0; kk < min(b0+blk, k); kk++ {
						amax = math.Max(amax, math.Abs(float64(xr[kk])))
					}
					for kk := b0; kk < min(b0+blk, k); kk++ {
						ax, aw := math.Abs(float64(xr[kk])), math.Abs(float64(wr[kk]))
						switch dt {
						case F16:
							e += ax * aw * math.Pow(2, -11)
						case BF16:
							e += ax * aw * math.Pow(2, -8)
						case Q8_0, Q4_0, Q4_K, Q5_K, Q6_K:
							e += amax / 254 * aw
						}
					}
				}
				bound += 1.2 * e
			}
			if d := math.Abs(float64(got[i*n+j] - want[i*n+j])); !(d <= bound) {
				t.Fatalf("%s: [%d,%d] = %v, want %v (|diff| %.3g > %.3g)", what, i, j, got[i*n+j], want[i*n+j], d, bound)
			}
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
func dense(t Tensor) []float32 { return hostRows(t) }

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
