// Package native is synth's tensor runtime: Tensor (f32 activations: shape, device,
// contiguous storage or a strided 2-D view), Matrix (a weight matrix W [N, K] in F32,
// F16, BF16, Q8_0 or Q4_0, packed once at load for the GEMM and then holding that one
// copy, not its source), the Ctx that owns the worker pool and the scratch arena, the
// ops API the models call (Linear with fused epilogues, LayerNorm, softmax, attention
// with an F32 or F16 KV cache, patch embedding, gather, argmax/top-k), backend
// selection (cpu, cuda) and CPU feature reporting.
//
// Conventions: activations are row-major; the "2-D form" of a tensor is [rows, last
// dim]; weights use nn.Linear's [out, in] layout; attention heads are contiguous column
// blocks. Shape mismatches inside a forward pass are bugs and panic with a message
// naming the op and the shapes; weights from outside are validated when a Matrix is
// made (errors wrapping ErrShape). Op results come from the Ctx's arena and live until
// Ctx.Reset.
//
// native is the only Go package that imports kernels. It must not import vision, llm,
// eval, dataset or cmd.
package native
