package atomicfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// DefaultMode is the mode of the files Write and WriteFile make: readable by all, like a
// file made with os.Create under the usual umask (os.CreateTemp alone would give 0600).
const DefaultMode fs.FileMode = 0o644

// WriteFile replaces path with data, atomically, mode DefaultMode.
func WriteFile(path string, data []byte) error {
	return WriteMode(path, DefaultMode, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// Write replaces path with what fill writes, atomically, mode DefaultMode. fill's writes
// are buffered; an error from fill leaves path as it was.
func Write(path string, fill func(w io.Writer) error) error {
	return WriteMode(path, DefaultMode, fill)
}

// WriteMode is Write with the file's mode given (e.g. the mode of the file it replaces).
func WriteMode(path string, mode fs.FileMode, fill func(w io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			err = fmt.Errorf("write %s: %w", path, err)
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if err := fill(bw); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := tmp.Chmod(mode.Perm()); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable. File systems that cannot sync a folder (some
// network and FUSE mounts say EINVAL) have nothing more to offer; that is not an error.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	serr := d.Sync()
	cerr := d.Close()
	if serr != nil && !errors.Is(serr, os.ErrInvalid) && !isEINVAL(serr) {
		return serr
	}
	return cerr
}
