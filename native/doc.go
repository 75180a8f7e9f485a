// Package native is synth's tensor runtime: Tensor (dtype, shape, storage, device), the
// Ctx that owns the worker pool and scratch arenas, the ops API the models call, backend
// selection (cpu, cuda) and memory-mapped weights.
//
// native is the only Go package that imports kernels. It must not import vision, llm,
// eval, dataset or cmd.
package native
