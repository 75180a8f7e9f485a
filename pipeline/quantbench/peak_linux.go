package quantbench

import (
	"bufio"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// peakReset resets the process's peak resident memory (VmHWM) to the current resident
// size: writing 5 to /proc/self/clear_refs (Linux 4.0 and later). It reports whether it
// could.
func peakReset() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// peakRSS is VmHWM from /proc/self/status in bytes (0 when it cannot be read).
func peakRSS() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// freeOSMemory hands the collector's free pages back, so that what earlier levels left
// does not count toward the next one's resident memory.
func freeOSMemory() { debug.FreeOSMemory() }
