package dataset

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"synth/internal/atomicfile"
	"synth/internal/filelock"
)

// Output is a resumable JSONL output file: one record a line, each record identified by
// a key (by default its "id" field). Opening an existing file reads the keys already done,
// so a rerun skips them; a line torn by a kill (no trailing newline) is cut off at open.
// Each record is written with a single write call, so a killed run loses at most the
// records in flight and never leaves a partial line behind a complete one.
type Output struct {
	mu   sync.Mutex
	path string
	f    *os.File
	opt  OutputOptions
	lock *filelock.Lock
	done map[string]bool
	errs int // records with an "error" field
	// Dropped counts what open removed: a torn last line, error records when
	// RetryErrors is set, and what Drop chose.
	Dropped int
}

// OutputOptions configure OpenOutput.
type OutputOptions struct {
	// Key extracts a record's key; nil means the string field "id".
	Key func(rec map[string]json.RawMessage) (string, error)
	// RetryErrors drops records that carry an "error" field at open, so those items are
	// done again instead of skipped.
	RetryErrors bool
	// Drop, when set, removes the records it returns true for at open (e.g. records made
	// with other settings, when a rerun recomputes them).
	Drop func(rec map[string]json.RawMessage) bool
}

// KeyFields builds a Key function from string fields, e.g. KeyFields("id", "image") for
// one record per image.
func KeyFields(fields ...string) func(map[string]json.RawMessage) (string, error) {
	return func(rec map[string]json.RawMessage) (string, error) {
		parts := make([]string, len(fields))
		for i, f := range fields {
			raw, ok := rec[f]
			if !ok {
				return "", fmt.Errorf("record has no %q", f)
			}
			if err := json.Unmarshal(raw, &parts[i]); err != nil {
				return "", fmt.Errorf("field %q is not a string", f)
			}
		}
		return JoinKey(parts...), nil
	}
}

// JoinKey joins key parts the way KeyFields does, for callers checking Done.
func JoinKey(parts ...string) string { return strings.Join(parts, "\x1f") }

// ErrDuplicate is returned by Write for a key that is already in the output.
var ErrDuplicate = errors.New("duplicate record key")

// OpenOutput opens (creating if needed) a JSONL output at path and indexes the records
// already in it. It holds the output's lock (LockOutput) until Close, so a second run on
// the same output fails at once instead of writing every record twice.
func OpenOutput(path string, opt OutputOptions) (*Output, error) {
	if opt.Key == nil {
		opt.Key = KeyFields("id")
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("dataset: output %s: %w", path, err)
		}
	}
	lock, err := LockOutput(path)
	if err != nil {
		return nil, err
	}
	o := &Output{path: path, opt: opt, lock: lock, done: map[string]bool{}}
	if err := o.recover(); err != nil {
		lock.Release()
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		lock.Release()
		return nil, fmt.Errorf("dataset: open output: %w", err)
	}
	o.f = f
	return o, nil
}

// ErrOutputLocked is wrapped by LockOutput's (and OpenOutput's) error when another
// process is writing the output.
var ErrOutputLocked = filelock.ErrLocked

// LockOutput takes the lock of an output file or folder: "<path>.lock" beside a file,
// "<path>/.lock" inside a folder. The error names the process holding it; a lock left
// by a killed process is taken over. Release it when the output is complete.
func LockOutput(path string) (*filelock.Lock, error) {
	lockPath := path + ".lock"
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		lockPath = filepath.Join(path, ".lock")
	}
	l, err := filelock.Acquire(lockPath)
	if errors.Is(err, filelock.ErrLocked) {
		return nil, fmt.Errorf("dataset: output %s is being written by another synth run: %w; wait for it to finish or stop it", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("dataset: output %s: %w", path, err)
	}
	return l, nil
}

// recover reads the existing file, indexes its keys, and rewrites it when a torn tail or
// error records must go.
func (o *Output) recover() error {
	data, err := os.ReadFile(o.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("dataset: read output: %w", err)
	}
	var keep bytes.Buffer
	rewrite := false
	lineNo := 0
	for len(data) > 0 {
		lineNo++
		nl := bytes.IndexByte(data, '\n')
		if nl < 0 {
			// A torn last record from a killed run: it was never complete, drop it.
			o.Dropped++
			rewrite = true
			break
		}
		line := data[:nl+1]
		data = data[nl+1:]
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var rec map[string]json.RawMessage
		if err := json.Unmarshal(line, &rec); err != nil {
			return fmt.Errorf("dataset: output %s:%d is not a JSON object (%v); move the file away to start over", o.path, lineNo, err)
		}
		_, failed := rec["error"]
		if (failed && o.opt.RetryErrors) || (o.opt.Drop != nil && o.opt.Drop(rec)) {
			o.Dropped++
			rewrite = true
			continue
		}
		key, err := o.opt.Key(rec)
		if err != nil {
			return fmt.Errorf("dataset: output %s:%d: %v", o.path, lineNo, err)
		}
		if o.done[key] {
			return fmt.Errorf("dataset: output %s:%d: %w %q", o.path, lineNo, ErrDuplicate, key)
		}
		o.done[key] = true
		if failed {
			o.errs++
		}
		keep.Write(line)
	}
	if rewrite {
		return replaceFile(o.path, keep.Bytes())
	}
	return nil
}

// replaceFile atomically replaces path with data (writeAtomic).
func replaceFile(path string, data []byte) error {
	return writeAtomic(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// writeAtomic replaces path with what fill writes, atomically (internal/atomicfile),
// keeping the mode of the file it replaces (a resumed output stays as readable as it
// was).
func writeAtomic(path string, fill func(io.Writer) error) error {
	mode := atomicfile.DefaultMode
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	}
	if err := atomicfile.WriteMode(path, mode, fill); err != nil {
		return fmt.Errorf("dataset: %w", err)
	}
	return nil
}

// Done reports whether a record with key is already in the output.
func (o *Output) Done(key string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.done[key]
}

// Len is the number of records in the output.
func (o *Output) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.done)
}

// Errors is the number of records in the output that carry an "error" field.
func (o *Output) Errors() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.errs
}

// Write appends rec (marshalled as one JSON line) under key.
func (o *Output) Write(key string, rec any) error {
	line, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("dataset: encode record %q: %w", key, err)
	}
	line = append(line, '\n')
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.f == nil {
		return fmt.Errorf("dataset: write %s: %w", o.path, os.ErrClosed)
	}
	if o.done[key] {
		return fmt.Errorf("dataset: output %s: %w %q", o.path, ErrDuplicate, key)
	}
	if _, err := o.f.Write(line); err != nil {
		return fmt.Errorf("dataset: write %s: %w", o.path, err)
	}
	o.done[key] = true
	var probe struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(line, &probe) == nil && len(probe.Error) > 0 {
		o.errs++
	}
	return nil
}

// Sync flushes written records to stable storage.
func (o *Output) Sync() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.f == nil {
		return fmt.Errorf("dataset: sync %s: %w", o.path, os.ErrClosed)
	}
	if err := o.f.Sync(); err != nil {
		return fmt.Errorf("dataset: sync %s: %w", o.path, err)
	}
	return nil
}

// Close syncs and closes the file and releases the lock. Calling it again is a no-op.
func (o *Output) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.f == nil {
		return nil
	}
	serr := o.f.Sync()
	cerr := o.f.Close()
	o.f = nil
	lerr := o.lock.Release()
	if err := errors.Join(serr, cerr, lerr); err != nil {
		return fmt.Errorf("dataset: close %s: %w", o.path, err)
	}
	return nil
}

// ReadRecords reads every complete record of a JSONL output file in order, ignoring a
// torn last line. fn gets the 1-based line number and the raw record.
func ReadRecords(path string, fn func(lineNo int, rec json.RawMessage) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("dataset: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("dataset: read %s: %w", path, err)
	}
	lineNo := 0
	for len(data) > 0 {
		lineNo++
		nl := bytes.IndexByte(data, '\n')
		if nl < 0 {
			break
		}
		line := bytes.TrimSpace(data[:nl])
		data = data[nl+1:]
		if len(line) == 0 {
			continue
		}
		if !json.Valid(line) {
			return fmt.Errorf("dataset: %s:%d is not valid JSON", path, lineNo)
		}
		if err := fn(lineNo, json.RawMessage(line)); err != nil {
			return err
		}
	}
	return nil
}
