//go:build unix

// Package faults makes the failures that tests of file output need: a disk that fills up
// part way through a write. It is imported by tests only.
package faults

import (
	"syscall"
	"testing"
)

// DiskFull makes every write that would grow a file of this process past limit bytes
// fail (EFBIG, as RLIMIT_FSIZE does; Go ignores the SIGXFSZ that comes with it), until
// the test ends. It stands in for a full disk: the write fails part way, after some
// bytes reached the file. Tests using it must not run in parallel with others. The
// returned function ends it sooner.
func DiskFull(t testing.TB, limit uint64) (restore func()) {
	t.Helper()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Skipf("cannot read RLIMIT_FSIZE to simulate a full disk: %v", err)
	}
	lim := old
	lim.Cur = limit
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Skipf("cannot set RLIMIT_FSIZE to simulate a full disk: %v", err)
	}
	done := false
	restore = func() {
		if done {
			return
		}
		done = true
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
			t.Errorf("restore RLIMIT_FSIZE: %v", err)
		}
	}
	t.Cleanup(restore)
	return restore
}
