//go:build unix

// Package faults makes the failures that tests of file output need: a disk that fills up
// part way through a write. It is imported by tests only.
package faults

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// childEnv names the test a child process runs under a file-size limit.
const childEnv = "SYNTH_FAULTS_DISKFULL"

// DiskFull stands in for a full disk: every write that would grow a file past limit
// bytes fails part way (EFBIG, as RLIMIT_FSIZE does; Go ignores the SIGXFSZ that comes
// with it).
//
// The limit is per process and hits every file, the test framework's own log of the
// files a test opens included, so the test runs again in a child process (the test
// binary with -test.run naming this test) that sets the limit there. In the child,
// DiskFull sets it and returns inChild true: the test goes on, and restore lifts the
// limit sooner than the test's end. In the parent it waits for the child, fails the
// test with the child's output if the child failed, and returns inChild false: the test
// must return at once.
func DiskFull(t *testing.T, limit uint64) (restore func(), inChild bool) {
	t.Helper()
	if os.Getenv(childEnv) != t.Name() {
		parts := strings.Split(t.Name(), "/")
		for i, p := range parts {
			parts[i] = "^" + regexp.QuoteMeta(p) + "$"
		}
		cmd := exec.Command(os.Args[0], "-test.run", strings.Join(parts, "/"), "-test.count", "1", "-test.v")
		cmd.Env = append(os.Environ(), childEnv+"="+t.Name())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("under a full disk (child process): %v\n%s", err, out)
		}
		return func() {}, false
	}
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
	return restore, true
}
