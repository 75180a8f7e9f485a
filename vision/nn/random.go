package nn

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"strings"
	"sync"

	"synth/weights"
)

// RandomOptions shape the made-up weights of RandomWeights.
type RandomOptions struct {
	// Linear is the dtype 2-D (and convolution) weights are stored in: F32 (the zero
	// value), F16, BF16 or a quantized type; a row that does not fill whole blocks stays
	// F32. Everything else is F32.
	Linear weights.DType
	// Shared gives every tensor of one role and shape the same values, drawn once: a
	// model at real size (billions of values) is then made in seconds and its source
	// holds one layer's worth. Speed does not depend on the values.
	Shared bool
}

// RandomWeights makes up weights for weights.Synthetic: random models in tests,
// benchmarks and the demo take their tensor names and shapes from the model's own
// loader, and their values from here, at scales that keep activations finite and
// varied through any depth. The role of a tensor comes from the checkpoint naming
// conventions the loaders read:
//
//   - a scalar logit_scale: log(100) (CLIP's learned value); other scalars 0;
//   - biases: N(0, 0.02);
//   - LayerNorm weights (1-D, "norm" or "ln_" in the name): 1 + N(0, 0.1);
//   - embeddings, positions, class and query tokens: N(0, 0.1);
//   - other tensors of rank >= 2 (Linear and conv weights, projections): N(0, 1/fan_in)
//     with fan_in the product of all dims but the first.
//
// RandomOptions.Linear applies to every tensor multiplied as a matrix (matrixLike).
//
// Values are a pure function of (seed, name, shape), or with Shared of (seed, role,
// shape), as weights.Synthetic requires.
func RandomWeights(seed uint64, o RandomOptions) weights.Generator {
	var mu sync.Mutex
	shared := map[string][]byte{}
	return func(name string, dims []int) (weights.Tensor, error) {
		role, scale, offset := randomRole(name, dims)
		dt := weights.F32
		if matrixLike(name, dims) && o.Linear != weights.F32 && o.Linear != 0 {
			dt = o.Linear
			if dt.IsQuantized() && dims[len(dims)-1]%dt.BlockSize() != 0 {
				dt = weights.F32
			}
		}
		key := name
		if o.Shared {
			key = fmt.Sprint(role, dims, dt)
			mu.Lock()
			data, ok := shared[key]
			mu.Unlock()
			if ok {
				return weights.Tensor{DType: dt, Shape: dims, Data: data}, nil
			}
		}
		h := fnv.New64a()
		h.Write([]byte(key))
		r := rand.New(rand.NewPCG(seed, h.Sum64()))
		n := 1
		for _, d := range dims {
			n *= d
		}
		vals := make([]float32, n)
		for i := range vals {
			vals[i] = offset + scale*float32(r.NormFloat64())
		}
		if role == "scalar" {
			vals[0] = offset
		}
		var data []byte
		if dt == weights.F32 {
			data = make([]byte, 4*n)
			for i, v := range vals {
				binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(v))
			}
		} else {
			var err error
			if data, err = weights.Quantize(dt, vals); err != nil {
				return weights.Tensor{}, err
			}
		}
		if o.Shared {
			mu.Lock()
			shared[key] = data
			mu.Unlock()
		}
		return weights.Tensor{DType: dt, Shape: dims, Data: data}, nil
	}
}

// matrixLike reports whether a tensor is multiplied as a matrix (Linear and conv
// weights, token embeddings that double as an LM head): what RandomOptions.Linear
// stores in its dtype. Position tables and learned tokens are added, not multiplied.
func matrixLike(name string, dims []int) bool {
	lower := strings.ToLower(name)
	return len(dims) >= 2 && !strings.Contains(lower, "position") && !strings.Contains(lower, "query_tokens") && !strings.Contains(lower, "class")
}

// randomRole classifies a tensor by its name and shape: its role, the scale of its
// values and their offset.
func randomRole(name string, dims []int) (role string, scale, offset float32) {
	base := name[strings.LastIndex(name, ".")+1:]
	lower := strings.ToLower(name)
	switch {
	case len(dims) == 0:
		if base == "logit_scale" {
			return "scalar", 0, float32(math.Log(100))
		}
		return "scalar", 0, 0
	case strings.HasSuffix(base, "bias"):
		return "bias", 0.02, 0
	case len(dims) == 1 && (strings.Contains(lower, "norm") || strings.Contains(lower, "ln_")):
		return "norm", 0.1, 1
	case strings.Contains(lower, "embed") || strings.Contains(lower, "position") || strings.Contains(lower, "query_tokens") || len(dims) == 1:
		return "table", 0.1, 0
	}
	fanIn := 1
	for _, d := range dims[1:] {
		fanIn *= d
	}
	return "matrix", float32(1 / math.Sqrt(float64(fanIn))), 0
}
