package native

import "synth/kernels"

// The K-quant weight dtypes (ggml's super-blocks of 256 values, used in place from GGUF
// files like Q8_0 and Q4_0; kernels.h has the layouts).
const (
	Q4_K DType = DType(kernels.Q4_K)
	Q5_K DType = DType(kernels.Q5_K)
	Q6_K DType = DType(kernels.Q6_K)
)

// isWeightDType reports whether a Matrix can hold dt: F32, F16, BF16, Q8_0, Q4_0, Q4_K,
// Q5_K, Q6_K (I32 is an index type).
func isWeightDType(dt DType) bool { return dt != I32 && kernels.DType(dt).Valid() }

// QuantizesX reports whether c's Linear on weights of dt with rows rows of x quantizes x
// to 8 bits (the integer-dot GEMM of the quantized types: on the cpu per 32 values,
// kernels.h synth_qgemm_ref; ggml quantizes x for its quantized types too, per block of
// the weight type), for tests and tolerances that must know which result to expect.
func (c *Ctx) QuantizesX(dt DType, rows int) bool {
	if s := c.kernelSet(); s != nil {
		return s.QuantizesX(kernels.DType(dt), rows)
	}
	return kernels.DType(dt).Quantized()
}
