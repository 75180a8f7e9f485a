//go:build !linux

package quantbench

import "runtime/debug"

// peakReset cannot reset the peak resident memory outside Linux.
func peakReset() bool { return false }

// peakRSS is unknown outside Linux.
func peakRSS() uint64 { return 0 }

func freeOSMemory() { debug.FreeOSMemory() }
