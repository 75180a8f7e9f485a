package filelock

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary act as a second process that holds a lock until killed.
func TestMain(m *testing.M) {
	if p := os.Getenv("FILELOCK_TEST_HOLD"); p != "" {
		if _, err := Acquire(p); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("locked")
		time.Sleep(time.Hour)
	}
	os.Exit(m.Run())
}

func TestAcquireReleaseWritesPID(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out.jsonl.lock")
	l, err := Acquire(p)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	if strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Errorf("lock file holds %q, want our pid %d", b, os.Getpid())
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock file still there after Release: %v", err)
	}
	if err := l.Release(); err != nil {
		t.Errorf("second Release: %v", err)
	}
	l2, err := Acquire(p)
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	l2.Release()
}

func TestSecondHolderInProcessRefused(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.lock")
	l, err := Acquire(p)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	_, err = Acquire(p)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Errorf("second Acquire: %v, want ErrLocked naming pid %d", err, os.Getpid())
	}
}

// holdInChild starts a second process that takes the lock at p and waits to be killed.
func holdInChild(t *testing.T, p string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "FILELOCK_TEST_HOLD="+p)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "locked" {
		t.Fatalf("child: %q", line)
	}
	return cmd
}

// Another process holds the lock: refused, naming its pid. Killed with SIGKILL, it
// leaves its lock file behind, and the next Acquire takes it over at once.
func TestOtherProcessThenKill9(t *testing.T) {
	p := filepath.Join(t.TempDir(), "captioned.jsonl.lock")
	child := holdInChild(t, p)
	_, err := Acquire(p)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", child.Process.Pid)) {
		t.Fatalf("Acquire while the child holds it: %v, want ErrLocked naming pid %d", err, child.Process.Pid)
	}
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	if b, err := os.ReadFile(p); err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(child.Process.Pid) {
		t.Fatalf("stale lock file: %q, %v; want the dead child's pid", b, err)
	}
	l, err := Acquire(p)
	if err != nil {
		t.Fatalf("Acquire after the holder was killed: %v", err)
	}
	defer l.Release()
	if b, _ := os.ReadFile(p); strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Errorf("lock file holds %q after the takeover, want our pid", b)
	}
}

func TestMissingFolder(t *testing.T) {
	if _, err := Acquire(filepath.Join(t.TempDir(), "no", "x.lock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error %v, want not-exist", err)
	}
}
