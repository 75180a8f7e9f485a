package demo

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"synth/dataset"
	"synth/dataset/imagefile"
	"synth/llm"
)

func TestWriteDataIsDeterministicAndReadable(t *testing.T) {
	sizes := Sizes{Source: 3, Unlabeled: 2, Foreign: 2, ImagesPerProduct: 2}
	a, b := t.TempDir(), t.TempDir()
	da, err := WriteData(a, sizes, 42)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WriteData(b, sizes, 42); err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{"source.jsonl", "source_ko.jsonl", "glossary.tsv", "foreign.jsonl", "img/src000_0.jpg", "img/src000_1.png"} {
		x, err1 := os.ReadFile(filepath.Join(a, rel))
		y, err2 := os.ReadFile(filepath.Join(b, rel))
		if err1 != nil || err2 != nil || string(x) != string(y) {
			t.Fatalf("%s differs between two runs with one seed (%v %v)", rel, err1, err2)
		}
	}
	src, err := dataset.ReadManifest(da.Source)
	if err != nil {
		t.Fatal(err)
	}
	if len(src.Products) != 3 || src.Products[0].Text == "" || len(src.Products[0].Images) != 2 {
		t.Fatalf("source products: %+v", src.Products)
	}
	for _, p := range src.Products {
		for _, img := range p.Images {
			im, err := imagefile.Decode(src.ImagePath(img), imagefile.Limits{})
			if err != nil {
				t.Fatalf("%s: %v", img, err)
			}
			if im.Bounds().Dx() < 224 {
				t.Fatalf("%s is %v", img, im.Bounds())
			}
		}
	}
	// The Korean descriptions are of the same products, with the same images.
	ko, err := dataset.ReadManifest(da.SourceKo)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range ko.Products {
		en := src.Products[i]
		if p.ID != en.ID || !slices.Equal(p.Images, en.Images) || p.Lang != "ko" || !strings.Contains(p.Text, "cm") || p.Text == en.Text || p.Category == en.Category {
			t.Errorf("Korean product %+v for %+v", p, en)
		}
	}
	g, err := llm.ReadGlossary(da.Glossary)
	if err != nil || !slices.Equal(g.Lookup("슬림핏"), []string{"slim fit"}) {
		t.Errorf("glossary: %v", err)
	}
	fr, err := dataset.ReadManifest(da.Foreign)
	if err != nil {
		t.Fatal(err)
	}
	if len(fr.Products[0].Keywords) < 4 || fr.Products[0].Title == "" {
		t.Fatalf("foreign product: %+v", fr.Products[0])
	}
	if _, err := os.Stat(da.Examples); err != nil {
		t.Fatal(err)
	}
}

// The Korean descriptions read as Korean: particles agree with the word before them.
func TestJosa(t *testing.T) {
	for _, c := range []struct{ word, consonant, vowel, want string }{
		{"재킷", "으로", "로", "으로"}, {"티셔츠", "으로", "로", "로"}, {"슬림핏", "으로", "로", "으로"},
		{"벨트 허리", "이", "가", "가"}, {"브이넥", "이", "가", "이"}, {"서울", "으로", "로", "로"}, {"XL", "이", "가", "가"},
	} {
		if got := josa(c.word, c.consonant, c.vowel); got != c.want {
			t.Errorf("josa(%q) = %q, want %q", c.word, got, c.want)
		}
	}
}
