//go:build !cuda

package native

// CUDABuilt reports whether this binary was built with the CUDA backend.
func CUDABuilt() bool { return false }

// CUDADevices lists the CUDA devices the backend can use; without the cuda build tag
// there are none.
func CUDADevices() ([]string, error) { return nil, ErrNoCUDA }
