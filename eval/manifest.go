package eval

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"synth/dataset"
)

// manifest is a dataset manifest and the hash of its bytes, which the report records.
type manifest struct {
	*dataset.Manifest
	sha256 string
}

// readManifest hashes and parses a manifest (dataset.ReadManifest: errors name the file
// and line, ids are unique).
func readManifest(path string) (*manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	h := sha256.New()
	_, err = io.Copy(h, f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("eval: hash manifest %s: %w", path, err)
	}
	m, err := dataset.ReadManifest(path)
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	return &manifest{Manifest: m, sha256: hex.EncodeToString(h.Sum(nil))}, nil
}
