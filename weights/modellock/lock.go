package modellock

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"synth/internal/filehash"
	"synth/internal/human"
)

// Sentinel errors callers branch on.
var (
	ErrMismatch = errors.New("files do not match the lock")            // Report.Err, Verify
	ErrUnlisted = errors.New("model files are not listed in the lock") // Verify
)

// Entry is one model file of a lock.
type Entry struct {
	Path   string // slash-separated; relative to the lock file's folder, or absolute
	Size   int64  // bytes
	SHA256 string // lowercase hex
}

// Lock is a parsed models.lock.
type Lock struct {
	File    string // the lock file, for messages
	Dir     string // the folder relative entry paths resolve against
	Entries []Entry
}

// Make hashes every regular file under paths (files or folders) into entries sorted by
// path. Paths are recorded as given, cleaned: relative ones stay relative to the working
// directory, which should be the folder the lock is written to.
func Make(paths ...string) ([]Entry, error) {
	if len(paths) == 0 {
		return nil, errors.New("modellock: no files or folders given")
	}
	seen := map[string]bool{}
	var files []string
	for _, root := range paths {
		found := 0
		err := walkFiles(root, func(p string) error {
			found++
			p = filepath.ToSlash(filepath.Clean(p))
			if strings.ContainsAny(p, "\r\n") {
				return fmt.Errorf("modellock: %q: a path with a line break cannot be written to a lock", p)
			}
			if !seen[p] {
				seen[p] = true
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if found == 0 {
			return nil, fmt.Errorf("modellock: %s: no files", root)
		}
	}
	sort.Strings(files)
	out := make([]Entry, 0, len(files))
	for _, f := range files {
		sum, size, err := filehash.FileSize(filepath.FromSlash(f))
		if err != nil {
			return nil, fmt.Errorf("modellock: %w", err)
		}
		out = append(out, Entry{Path: f, Size: size, SHA256: sum})
	}
	return out, nil
}

// walkFiles calls fn for root if it is a file, or for every file under it if it is a
// folder. A symlink to a file is a file; symlinked folders are not followed.
func walkFiles(root string, fn func(path string) error) error {
	st, err := os.Stat(root)
	if err != nil {
		return fmt.Errorf("modellock: %w", err)
	}
	if st.Mode().IsRegular() {
		return fn(root)
	}
	if !st.IsDir() {
		return fmt.Errorf("modellock: %s: not a file or folder", root)
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("modellock: %w", err)
		}
		switch {
		case d.Type().IsRegular():
			return fn(p)
		case d.Type()&fs.ModeSymlink != 0:
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				return fn(p)
			}
		}
		return nil
	})
}

const header = `# synth models.lock: the sha256, size in bytes and path of every model file.
# Relative paths are relative to this file's folder. Verify with: synth models check FILE
`

// Write writes entries in the lock format.
func Write(w io.Writer, entries []Entry) error {
	bw := bufio.NewWriter(w)
	bw.WriteString(header)
	for _, e := range entries {
		fmt.Fprintf(bw, "%s  %d  %s\n", e.SHA256, e.Size, e.Path)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("modellock: %w", err)
	}
	return nil
}

// Read parses the lock file at path; its relative entries resolve against its folder.
func Read(path string) (*Lock, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("modellock: %w", err)
	}
	defer f.Close()
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("modellock: %w", err)
	}
	return Parse(f, path, filepath.Dir(abs))
}

// Parse reads a lock from r; name is used in messages, dir resolves relative paths.
func Parse(r io.Reader, name, dir string) (*Lock, error) {
	l := &Lock{File: name, Dir: dir}
	seen := map[string]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSuffix(sc.Text(), "\r")
		if strings.TrimSpace(text) == "" || strings.HasPrefix(text, "#") {
			continue
		}
		e, err := parseEntry(text)
		if err != nil {
			return nil, fmt.Errorf("modellock: %s:%d: %v", name, line, err)
		}
		if first, dup := seen[e.Path]; dup {
			return nil, fmt.Errorf("modellock: %s:%d: %s is listed twice (first on line %d)", name, line, e.Path, first)
		}
		seen[e.Path] = line
		l.Entries = append(l.Entries, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("modellock: %s: %w", name, err)
	}
	if len(l.Entries) == 0 {
		return nil, fmt.Errorf("modellock: %s: no entries", name)
	}
	return l, nil
}

func parseEntry(line string) (Entry, error) {
	const want = `want "SHA256  SIZE  PATH" (two spaces between fields)`
	f := strings.SplitN(line, "  ", 3)
	if len(f) != 3 || f[2] == "" {
		return Entry{}, errors.New(want)
	}
	sum := strings.ToLower(f[0])
	if b, err := hex.DecodeString(sum); err != nil || len(b) != sha256.Size {
		return Entry{}, fmt.Errorf("%q is not a sha256 (64 hex digits); %s", f[0], want)
	}
	size, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil || size < 0 {
		return Entry{}, fmt.Errorf("%q is not a size in bytes; %s", f[1], want)
	}
	return Entry{Path: f[2], Size: size, SHA256: sum}, nil
}

// Resolve is the file an entry names.
func (l *Lock) Resolve(e Entry) string {
	p := filepath.FromSlash(e.Path)
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(l.Dir, p)
}

// Problem is one entry that does not match its file.
type Problem struct {
	Path   string // as the lock lists it
	Detail string // "missing", "size 10, want 12", "content differs (sha256 ...)", or the error
}

// Report is what Check found.
type Report struct {
	File     string
	Files    int   // entries checked
	Bytes    int64 // their total size in the lock
	Problems []Problem
}

// Check verifies every entry: the file exists, has the size and the SHA-256 the lock
// gives. A file of the wrong size is not hashed.
func (l *Lock) Check() *Report {
	r := &Report{File: l.File, Files: len(l.Entries)}
	for _, e := range l.Entries {
		r.Bytes += e.Size
		p := l.Resolve(e)
		st, err := os.Stat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			r.Problems = append(r.Problems, Problem{e.Path, "missing"})
			continue
		case err != nil:
			r.Problems = append(r.Problems, Problem{e.Path, err.Error()})
			continue
		case !st.Mode().IsRegular():
			r.Problems = append(r.Problems, Problem{e.Path, "not a regular file"})
			continue
		case st.Size() != e.Size:
			r.Problems = append(r.Problems, Problem{e.Path, fmt.Sprintf("size %d, want %d", st.Size(), e.Size)})
			continue
		}
		sum, size, err := filehash.FileSize(p)
		switch {
		case err != nil:
			r.Problems = append(r.Problems, Problem{e.Path, err.Error()})
		case size != e.Size:
			r.Problems = append(r.Problems, Problem{e.Path, fmt.Sprintf("size %d, want %d", size, e.Size)})
		case sum != e.SHA256:
			r.Problems = append(r.Problems, Problem{e.Path, fmt.Sprintf("content differs (sha256 %s..., want %s...)", sum[:12], e.SHA256[:12])})
		}
	}
	return r
}

// OK reports whether every entry matched.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// maxNamed is how many problems the one-line report names before counting the rest.
const maxNamed = 5

// String is the one-line report: what matched, or what is missing or differs.
func (r *Report) String() string {
	if r.OK() {
		return fmt.Sprintf("%s: %d files (%s) match", r.File, r.Files, human.Bytes(r.Bytes))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d of %d files do not match: ", r.File, len(r.Problems), r.Files)
	for i, p := range r.Problems {
		if i == maxNamed {
			fmt.Fprintf(&b, "; and %d more", len(r.Problems)-maxNamed)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s %s", p.Path, p.Detail)
	}
	return b.String()
}

// Err is nil when every entry matched, else the one-line report, which is ErrMismatch.
func (r *Report) Err() error {
	if r.OK() {
		return nil
	}
	return mismatchError{r}
}

type mismatchError struct{ r *Report }

func (e mismatchError) Error() string { return "modellock: " + e.r.String() }
func (e mismatchError) Unwrap() error { return ErrMismatch }

// Uncovered lists the files under paths (files or folders) that the lock does not list;
// a path that does not exist is listed itself. Paths are compared after resolving
// symlinks, so a folder reached through a link still matches its entries.
func (l *Lock) Uncovered(paths ...string) ([]string, error) {
	listed := map[string]bool{}
	for _, e := range l.Entries {
		listed[canonical(l.Resolve(e))] = true
	}
	var out []string
	for _, root := range paths {
		if _, err := os.Stat(root); errors.Is(err, fs.ErrNotExist) {
			out = append(out, root)
			continue
		}
		err := walkFiles(root, func(p string) error {
			if !listed[canonical(p)] {
				out = append(out, p)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Verify is what a run checks before it starts: every file under the models it will
// read (files or folders) is listed, and every listed file matches. Coverage is checked
// first, as it reads no file content. The error is one line naming what is wrong.
func (l *Lock) Verify(models ...string) (*Report, error) {
	unlisted, err := l.Uncovered(models...)
	if err != nil {
		return nil, err
	}
	if len(unlisted) > 0 {
		named := unlisted
		if len(named) > maxNamed {
			named = named[:maxNamed]
		}
		more := ""
		if len(unlisted) > maxNamed {
			more = fmt.Sprintf(" and %d more", len(unlisted)-maxNamed)
		}
		return nil, fmt.Errorf("modellock: %s does not list %s%s: %w", l.File, strings.Join(named, ", "), more, ErrUnlisted)
	}
	r := l.Check()
	return r, r.Err()
}

// canonical is p absolute with symlinks resolved where it exists.
func canonical(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	if real, err := filepath.EvalSymlinks(p); err == nil {
		return real
	}
	return filepath.Clean(p)
}
