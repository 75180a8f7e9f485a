// Package filehash computes the SHA-256 of files, read as a stream (model files are
// gigabytes), for provenance records and cache keys:
//
//	sum, err := filehash.File("LongCLIP-L.pt")     // hex, as sha256sum prints it
//	sum, err := filehash.Files(shard1, shard2)      // the concatenation, in order
//	sum, err := filehash.Tree("lora/")              // a folder: names and contents
//
// filehash imports the standard library only.
package filehash

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// File returns the hex SHA-256 of the file's content.
func File(path string) (string, error) { return Files(path) }

// FileSize returns the hex SHA-256 of the file's content and its length, read in one
// pass (a lock file records both).
func FileSize(path string) (sum string, size int64, err error) {
	h := sha256.New()
	if size, err = Add(h, path); err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), size, nil
}

// Files returns the hex SHA-256 of the files' contents concatenated in the order given
// (a sharded checkpoint as one stream).
func Files(paths ...string) (string, error) {
	h := sha256.New()
	for _, p := range paths {
		if _, err := Add(h, p); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Tree returns File(path) for a file; for a folder, the hex SHA-256 over its regular
// files (below it, in sorted order), each written as its path relative to the folder, a
// newline, then its content.
func Tree(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	if !st.IsDir() {
		return File(path)
	}
	var files []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	sort.Strings(files)
	h := sha256.New()
	for _, f := range files {
		rel, err := filepath.Rel(path, f)
		if err != nil {
			return "", fmt.Errorf("hash %s: %w", path, err)
		}
		fmt.Fprintf(h, "%s\n", rel)
		if _, err := Add(h, f); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Add streams the content of the file at path into h and returns its length.
func Add(h hash.Hash, path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("hash: %w", err)
	}
	defer f.Close()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, fmt.Errorf("hash %s: %w", path, err)
	}
	return n, nil
}
