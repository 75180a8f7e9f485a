//go:build unix

package filelock

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// ErrLocked is wrapped by Acquire's error when another holder has the lock.
var ErrLocked = errors.New("locked by another process")

// Lock is a held lock file.
type Lock struct {
	f    *os.File
	path string
}

// Acquire takes the lock file at path without waiting, creating it if needed, and writes
// this process's id into it. When another process (or another Lock of this process)
// holds it, the error wraps ErrLocked and names the holder's pid.
func Acquire(path string) (*Lock, error) {
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, fmt.Errorf("%s is %w%s", path, ErrLocked, holder(path))
			}
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		// A holder that released (and removed) the file between our open and our flock
		// leaves us locking a file no longer at path: open the new one instead.
		if same, err := samePath(f, path); err != nil || !same {
			f.Close()
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("lock %s: %w", path, err)
			}
			continue
		}
		if err := writePID(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		return &Lock{f: f, path: path}, nil
	}
}

// Path is the lock file.
func (l *Lock) Path() string { return l.path }

// Release removes the lock file and drops the lock. Calling it again is a no-op.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	// Removed while still held, so nobody can lock the old file and believe it current.
	rerr := os.Remove(l.path)
	if errors.Is(rerr, os.ErrNotExist) {
		rerr = nil
	}
	cerr := l.f.Close()
	l.f = nil
	if err := errors.Join(rerr, cerr); err != nil {
		return fmt.Errorf("release lock %s: %w", l.path, err)
	}
	return nil
}

func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

func samePath(f *os.File, path string) (bool, error) {
	held, err := f.Stat()
	if err != nil {
		return false, err
	}
	now, err := os.Stat(path)
	if err != nil {
		return false, err
	}
	return os.SameFile(held, now), nil
}

func writePID(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return err
}

// holder describes who holds the lock at path, from the pid it wrote.
func holder(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	switch {
	case err != nil:
		return " (holder's pid not written yet)"
	case pid == os.Getpid():
		return fmt.Sprintf(" (by this process, pid %d)", pid)
	}
	return fmt.Sprintf(" (pid %d)", pid)
}
