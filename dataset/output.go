package dataset

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
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
// already in it.
func OpenOutput(path string, opt OutputOptions) (*Output, error) {
	if opt.Key == nil {
		opt.Key = KeyFields("id")
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("dataset: output %s: %w", path, err)
		}
	}
	o := &Output{path: path, opt: opt, done: map[string]bool{}}
	if err := o.recover(); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("dataset: open output: %w", err)
	}
	o.f = f
	return o, nil
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

// replaceFile atomically replaces path with data.
func replaceFile(path string, data []byte) error {
	return writeAtomic(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// writeAtomic writes path through a temporary file in the same folder, fsynced, then
// renamed over path, so a reader sees the old file or the new one, never half of one.
func writeAtomic(path string, fill func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("dataset: write %s: %w", path, err)
	}
	// CreateTemp makes the file 0600; a dataset file is for others to read too, and a
	// replaced file keeps the mode it had.
	mode := os.FileMode(0o644)
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	}
	bw := bufio.NewWriterSize(tmp, 1<<20)
	err = errors.Join(tmp.Chmod(mode), fill(bw))
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("dataset: write %s: %w", path, err)
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
	if err := o.f.Sync(); err != nil {
		return fmt.Errorf("dataset: sync %s: %w", o.path, err)
	}
	return nil
}

// Close syncs and closes the file.
func (o *Output) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	serr := o.f.Sync()
	cerr := o.f.Close()
	if err := errors.Join(serr, cerr); err != nil {
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
