package eval

import (
	"fmt"

	"synth/dataset"
	"synth/internal/filehash"
)

// manifest is a dataset manifest and the hash of its bytes, which the report records.
type manifest struct {
	*dataset.Manifest
	sha256 string
}

// readManifest hashes and parses a manifest (dataset.ReadManifest: errors name the file
// and line, ids are unique).
func readManifest(path string) (*manifest, error) {
	sum, err := filehash.File(path)
	if err != nil {
		return nil, fmt.Errorf("eval: manifest: %w", err)
	}
	m, err := dataset.ReadManifest(path)
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	return &manifest{Manifest: m, sha256: sum}, nil
}
