package dataset

import (
	"os"
	"path/filepath"
	"testing"
)

// A record written into another folder keeps finding its images.
func TestImagePathFrom(t *testing.T) {
	root := t.TempDir()
	man := filepath.Join(root, "data", "m.jsonl")
	if err := os.MkdirAll(filepath.Dir(man), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(man, []byte(`{"id": "a", "images": ["img/a.jpg", "/abs/b.jpg"]}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := ReadManifest(man)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ img, dir, want string }{
		{"img/a.jpg", filepath.Join(root, "data"), "img/a.jpg"},
		{"img/a.jpg", filepath.Join(root, "out", "en"), "../../data/img/a.jpg"},
		{"img/a.jpg", root, "data/img/a.jpg"},
		{"/abs/b.jpg", root, "/abs/b.jpg"},
	} {
		if got := m.ImagePathFrom(c.img, c.dir); got != c.want {
			t.Errorf("ImagePathFrom(%q, %q) = %q, want %q", c.img, c.dir, got, c.want)
		}
		if got := m.ImagePathFrom(c.img, c.dir); !filepath.IsAbs(got) && filepath.Join(c.dir, got) != m.ImagePath(c.img) {
			t.Errorf("%q from %q does not resolve to %q", got, c.dir, m.ImagePath(c.img))
		}
	}
}
