package native

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"synth/kernels"
	"synth/native/ggml"
	"synth/weights"
)

// Codec is the weights.Codec synth convert uses: ggml's converters and quantizers
// (native/ggml.Codec, ggml_quantize_chunk), except F16 and Q8_0, which go through the
// kernels' vector quantizers: the same bytes (tested against ggml_quantize_chunk), several
// times faster than ggml's scalar reference for Q8_0. Work is split by rows over Threads
// goroutines (<= 0: GOMAXPROCS).
type Codec struct {
	Threads int
}

var _ weights.Codec = Codec{}

// vectorQuant are the types kernels.Quantize writes with vectors, ggml's bytes.
var vectorQuant = map[weights.DType]kernels.DType{weights.F16: kernels.F16, weights.Q8_0: kernels.Q8_0}

func (c Codec) ggml() ggml.Codec { return ggml.Codec{Threads: c.Threads} }

// ToF32 is ggml's decoding (F16 and BF16 with the CPU backend's vector conversions).
func (c Codec) ToF32(d weights.DType, data []byte, n int) ([]float32, error) {
	return c.ggml().ToF32(d, data, n)
}

// Quantize encodes rows x cols values of src as d (ggml's bytes).
func (c Codec) Quantize(d weights.DType, src []float32, rows, cols int) ([]byte, error) {
	kd, ok := vectorQuant[d]
	if !ok {
		return c.ggml().Quantize(d, src, rows, cols)
	}
	if rows < 0 || cols < 0 || rows*cols != len(src) || cols%kd.BlockSize() != 0 {
		return nil, fmt.Errorf("native: quantize %d values as %d rows of %d to %s", len(src), rows, cols, d)
	}
	rb := kernels.RowBytes(kd, cols)
	out := make([]byte, rows*rb)
	if rows == 0 || cols == 0 {
		return out, nil
	}
	threads := c.Threads
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	parts := max(1, min(threads, rows*cols/(1<<16)))
	errs := make([]error, parts)
	var wg sync.WaitGroup
	for p := range parts {
		lo, hi := rows*p/parts, rows*(p+1)/parts
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[p] = kernels.Quantize(kd, src[lo*cols:hi*cols], out[lo*rb:hi*rb])
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// quantizeRows writes the rows of k values of w as dt into out: the kernels'
// quantizers, or ggml's for the K-quants (ggml's bytes either way).
func quantizeRows(dt DType, w []float32, k int, out []byte) error {
	if dt.BlockSize() != 256 {
		return kernels.Quantize(kernels.DType(dt), w, out)
	}
	wd, err := weights.ParseDType(dt.String())
	if err != nil {
		return fmt.Errorf("native: %w", err)
	}
	return ggml.Codec{Threads: 1}.QuantizeInto(wd, w, len(w)/k, k, out)
}
