package native

import "errors"

// ErrNoCUDA is returned when a CUDA device is asked for in a build without CUDA support
// (built without the cuda tag) or on a machine without a usable GPU.
var ErrNoCUDA = errors.New("native: CUDA backend not available (build with the cuda tag on a machine with an NVIDIA GPU)")
