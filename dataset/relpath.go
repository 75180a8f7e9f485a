package dataset

import "path/filepath"

// ImagePathFrom rewrites an image path of the manifest for a file written in dir, so a
// record copied into another manifest still finds its image: relative to dir when the
// two share a root, absolute otherwise. Absolute paths stay as they are.
func (m *Manifest) ImagePathFrom(img, dir string) string {
	if filepath.IsAbs(img) {
		return img
	}
	abs := m.ImagePath(img)
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return abs
	}
	rel, err := filepath.Rel(absDir, abs)
	if err != nil {
		return abs
	}
	return filepath.ToSlash(rel)
}
