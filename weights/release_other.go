//go:build !linux

package weights

// releasePages does nothing outside Linux: the standard library has no madvise there
// (and without mmap the data is a heap copy, which is never advised away). The pages
// stay resident until the OS needs them.
func releasePages(m []byte, lo, hi int) error { return nil }
