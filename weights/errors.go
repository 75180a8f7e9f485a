package weights

import "errors"

// Sentinel errors for what callers branch on; every error that carries one wraps it
// (errors.Is) and names the file and tensor at fault.
var (
	// ErrMissing: a tensor (or file) a loader asked for is not in the checkpoint.
	ErrMissing = errors.New("missing tensor")
	// ErrShape: a tensor's shape differs from what the loader expects.
	ErrShape = errors.New("shape mismatch")
	// ErrDType: a tensor's dtype is not of the family the caller expects, or cannot be
	// converted as asked.
	ErrDType = errors.New("unsupported dtype")
	// ErrUnused: Scope.Finish found checkpoint tensors that no loader used or skipped.
	ErrUnused = errors.New("unused tensors")
	// ErrFormat: a file is malformed, or valid but in a variant synth does not read.
	ErrFormat = errors.New("invalid or unsupported checkpoint")
	// ErrUnsafe: a pickle asked for a global outside the state-dict allow-list.
	ErrUnsafe = errors.New("pickle global not allowed")
)
