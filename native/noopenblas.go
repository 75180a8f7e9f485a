//go:build !openblas

package native

// newOpenBLAS: this build has no OpenBLAS (build with -tags openblas for the anchor).
func newOpenBLAS(int) (blasAnchor, error) { return nil, ErrNoOpenBLAS }
