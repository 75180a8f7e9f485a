//go:build !unix

package atomicfile

// isEINVAL: folders cannot be synced on these systems; os reports it as ErrInvalid.
func isEINVAL(error) bool { return true }
