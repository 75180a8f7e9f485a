package dataset

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// The published layout (docs/dataset.md) is a folder that Hugging Face datasets loads as
// it stands: one folder per configuration (source, captioned, rewritten, translated),
// each holding its images and a metadata.jsonl whose file_name is relative to that
// folder, Parquet copies under parquet/, and the card README.md.

// ImageName is where an image of a manifest goes inside a configuration folder: under
// images/ at its manifest-relative path; a path that climbs out of the manifest's
// folder goes under images/_up<N>/ (N the levels it climbs), an absolute one under
// images/_abs/, so two different files of one manifest never share a name.
func ImageName(manifestImage string) string {
	p := filepath.ToSlash(manifestImage)
	if filepath.IsAbs(manifestImage) {
		return "images/_abs/" + strings.TrimLeft(path.Clean(p), "/")
	}
	p = path.Clean(p)
	up := 0
	for p == ".." || strings.HasPrefix(p, "../") {
		up++
		p = strings.TrimPrefix(strings.TrimPrefix(p, ".."), "/")
	}
	if up > 0 {
		return fmt.Sprintf("images/_up%d/%s", up, p)
	}
	return "images/" + p
}

// LinkImage puts the file src at dst: a hard link when src and dst share a file
// system, a copy otherwise. An existing dst with the same content is left alone.
func LinkImage(src, dst string) error {
	if st, err := os.Stat(dst); err == nil {
		if sst, err := os.Stat(src); err == nil && (os.SameFile(st, sst) || (st.Size() == sst.Size() && sameContent(src, dst))) {
			return nil
		}
		if err := os.Remove(dst); err != nil {
			return fmt.Errorf("dataset: replace %s: %w", dst, err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("dataset: %w", err)
	}
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("dataset: image %w", err)
	}
	defer in.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, in); err != nil {
		return fmt.Errorf("dataset: read %s: %w", src, err)
	}
	return replaceFile(dst, buf.Bytes())
}

func sameContent(a, b string) bool {
	x, err1 := os.ReadFile(a)
	y, err2 := os.ReadFile(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

// ImageExts are the file extensions ListImages takes from a folder.
var ImageExts = []string{".jpg", ".jpeg", ".png", ".gif", ".webp"}

// ImageItem is one image of a manifest or folder.
type ImageItem struct {
	ID    string // the product id (a folder's image: its path without extension)
	Image string // as the manifest writes it (a folder's image: relative to the folder)
	Path  string // the file
}

// ListImages lists the images of a manifest (every image of every product, in order)
// or of a folder (every file with an ImageExts extension below it), keeping the
// products of shard. The same (id, image) listed twice is kept once.
func ListImages(src string, shard Shard) ([]ImageItem, error) {
	st, err := os.Stat(src)
	if err != nil {
		return nil, fmt.Errorf("dataset: images: %w", err)
	}
	var items []ImageItem
	seen := map[string]bool{}
	add := func(it ImageItem) {
		if k := JoinKey(it.ID, it.Image); !seen[k] && shard.Has(it.ID) {
			seen[k] = true
			items = append(items, it)
		}
	}
	if !st.IsDir() {
		man, err := ReadManifest(src)
		if err != nil {
			return nil, err
		}
		for _, p := range man.Products {
			for _, img := range p.Images {
				add(ImageItem{ID: p.ID, Image: img, Path: man.ImagePath(img)})
			}
		}
		return items, nil
	}
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !slices.Contains(ImageExts, strings.ToLower(filepath.Ext(p))) {
			return nil
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		add(ImageItem{ID: strings.TrimSuffix(rel, filepath.Ext(rel)), Image: rel, Path: p})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("dataset: list %s: %w", src, err)
	}
	return items, nil
}

// PublishConfig writes configuration name of the published folder dir: LinkImages,
// then WriteConfig with the rows whose image exists.
func PublishConfig(dir, name string, rows []Row, src []string) (published, missing []Row, err error) {
	if published, missing, err = LinkImages(dir, name, rows, src); err != nil {
		return nil, nil, err
	}
	return published, missing, WriteConfig(dir, name, published)
}

// LinkImages puts the image of each row (the file src[i]) at dir/name/<row's FileName>.
// A row whose image is not a regular file cannot be loaded as an imagefolder record: it
// is returned in missing, the others in published. Images no row names any more (from an
// earlier run) stay.
func LinkImages(dir, name string, rows []Row, src []string) (published, missing []Row, err error) {
	for i, r := range rows {
		// a FIFO or a device is no image either (and copying one could block)
		if st, err := os.Stat(src[i]); errors.Is(err, fs.ErrNotExist) || (err == nil && !st.Mode().IsRegular()) {
			missing = append(missing, r)
			continue
		}
		if err := LinkImage(src[i], filepath.Join(dir, name, filepath.FromSlash(r.FileName))); err != nil {
			return nil, nil, err
		}
		published = append(published, r)
	}
	return published, missing, nil
}

// WriteConfig writes dir/name/metadata.jsonl and dir/parquet/name.parquet.
func WriteConfig(dir, name string, rows []Row) error {
	if err := WriteMetadata(filepath.Join(dir, name), rows); err != nil {
		return err
	}
	return WriteParquet(filepath.Join(dir, ParquetDir, name+".parquet"), name, rows)
}

// ParquetDir is the folder of the Parquet copies in the published folder.
const ParquetDir = "parquet"
