package weights

import (
	"fmt"
	"os"
	"syscall"
)

// releasePages drops the pages of mapping m wholly inside bytes [lo, hi) from the process
// (the part of a tensor that shares no page with its neighbours). m is a read-only
// MAP_SHARED file mapping starting on a page boundary (mapFile), never Go heap memory:
// MADV_DONTNEED unmaps the clean file pages, and a later read faults them back in from
// the page cache or the file.
func releasePages(m []byte, lo, hi int) error {
	ps := os.Getpagesize()
	lo = (lo + ps - 1) / ps * ps
	hi = hi / ps * ps
	if lo >= hi {
		return nil
	}
	if err := syscall.Madvise(m[lo:hi], syscall.MADV_DONTNEED); err != nil {
		return fmt.Errorf("madvise: %w", err)
	}
	return nil
}
