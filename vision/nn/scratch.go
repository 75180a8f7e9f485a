package nn

import "synth/native"

// Scratch holds buffers that forward passes reuse from call to call: the tensors that
// must live outside a Ctx's arena (a residual stream kept across the per-layer arena
// resets of a deep model, an output the caller reads after the pass). Reusing them keeps
// a long run from producing garbage at every pass, which the Go collector would let pile
// up in proportion to the live heap. The zero value is ready; a nil *Scratch allocates a
// new tensor at every call.
type Scratch struct {
	bufs map[string]native.Tensor
}

// Tensor returns the buffer named name as a [rows, cols] tensor, growing it when needed.
// Its contents are whatever the last user left. Two names never share storage.
func (s *Scratch) Tensor(name string, rows, cols int) native.Tensor {
	if s == nil {
		return native.NewTensor(rows, cols)
	}
	if s.bufs == nil {
		s.bufs = map[string]native.Tensor{}
	}
	t, ok := s.bufs[name]
	if !ok || t.Numel() < rows*cols {
		t = native.NewTensor(rows * cols)
		s.bufs[name] = t
	}
	return native.FromF32(t.F32()[:rows*cols], rows, cols)
}
