package dataset

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
)

func scored(scores ...float64) []Row {
	rows := make([]Row, len(scores))
	for i, s := range scores {
		rows[i] = Row{ID: string(rune('a' + i)), Image: "x.png"}
		if !math.IsNaN(s) {
			rows[i].Score = ptr(s)
		}
	}
	return rows
}

func ids(rows []Row) string {
	var b strings.Builder
	for _, r := range rows {
		b.WriteString(r.ID)
	}
	return b.String()
}

func TestFilterRows(t *testing.T) {
	nan := math.NaN()
	rows := scored(0.5, 0.1, nan, 0.3, 0.3, 0.9)
	kept, res := FilterRows("c", rows, FilterOptions{MinScore: ptr(0.3)})
	if ids(kept) != "adef" || res.Low != 1 || res.Unscored != 1 || res.Threshold != 0.3 {
		t.Errorf("min-score 0.3: kept %s, %+v", ids(kept), res)
	}
	// 5 scored rows, the bottom 40% is 2 rows: b (0.1) and the first of the tied 0.3s.
	kept, res = FilterRows("c", rows, FilterOptions{DropBottom: ptr(40.0)})
	if ids(kept) != "aef" || res.Low != 2 || res.Unscored != 1 {
		t.Errorf("drop-bottom 40%%: kept %s, %+v", ids(kept), res)
	}
	kept, _ = FilterRows("c", rows, FilterOptions{DropBottom: ptr(0.0)})
	if ids(kept) != "abdef" {
		t.Errorf("drop-bottom 0: kept %s", ids(kept))
	}
	for _, o := range []FilterOptions{{}, {MinScore: ptr(1.0), DropBottom: ptr(1.0)}, {DropBottom: ptr(100.0)}, {DropBottom: ptr(-1.0)}} {
		if o.Validate() == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}

// synth filter's result is a published folder like its input: the kept rows with their
// images, Parquet, a card that says what was dropped, the viewer; source copied whole.
func TestFilterWritesADataset(t *testing.T) {
	src, source, captioned := viewDataset(t, 10)
	if _, err := WriteCard(src, &Card{Title: "t", License: "mit", Configs: []CardConfig{{Name: "source", Rows: source}, {Name: "captioned", Rows: captioned}}}); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "filtered")
	res, err := Filter(src, dst, FilterOptions{MinScore: ptr(0.5)}, "test")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := FilterRows("captioned", captioned, FilterOptions{MinScore: ptr(0.5)})
	for _, r := range res {
		rows, err := ReadMetadata(filepath.Join(dst, r.Config, MetadataFile))
		if err != nil {
			t.Fatal(err)
		}
		if r.Config == "source" && (r.Filtered || len(rows) != len(source)) {
			t.Errorf("source: %+v, %d rows; want it copied whole", r, len(rows))
		}
		if r.Config == "captioned" && (len(rows) != len(want) || r.Kept != len(want) || r.Low+r.Unscored+r.Kept != len(captioned)) {
			t.Errorf("captioned: %d rows, %+v; want %d", len(rows), r, len(want))
		}
		for _, row := range rows {
			if _, err := os.Stat(filepath.Join(dst, r.Config, row.FileName)); err != nil {
				t.Errorf("%s: image %s missing: %v", r.Config, row.FileName, err)
			}
			if r.Config == "captioned" && (row.Score == nil || *row.Score < 0.5) {
				t.Errorf("kept a row scoring %v", row.Score)
			}
		}
		if _, err := ReadParquet(filepath.Join(dst, ParquetDir, r.Config+".parquet")); err != nil {
			t.Error(err)
		}
	}
	card, _ := os.ReadFile(filepath.Join(dst, "README.md"))
	for _, s := range []string{"license: mit", "Long-CLIP score of at least 0.5", "captioned: kept"} {
		if !strings.Contains(string(card), s) {
			t.Errorf("card lacks %q", s)
		}
	}
	if _, err := os.Stat(filepath.Join(dst, ViewFile)); err != nil {
		t.Error(err)
	}
	if _, err := Filter(src, dst, FilterOptions{MinScore: ptr(0.5)}, "test"); err == nil {
		t.Error("filtering into a non-empty folder: no error")
	}
}

// Parquet files have the one schema whatever the rows hold: a file whose rows are all
// null in a column has the column with its type.
func TestParquetSchemaIsFixed(t *testing.T) {
	dir := t.TempDir()
	full := Row{FileName: "a.png", Dataset: "c", ID: "p", Image: "a.png", Text: ptr("t"), Keywords: []string{"k"},
		Params: ptr(`{"a":1}`), Tokens: ptr(int64(3)), MS: ptr(1.5), Coverage: ptr(0.5), LowCoverage: ptr(true), Score: ptr(0.2), Rank: ptr(int64(1))}
	empty := Row{FileName: "b.png", Dataset: "d", ID: "q", Image: "b.png"}
	if err := WriteParquet(filepath.Join(dir, "a.parquet"), "c", []Row{full}); err != nil {
		t.Fatal(err)
	}
	if err := WriteParquet(filepath.Join(dir, "b.parquet"), "d", []Row{empty}); err != nil {
		t.Fatal(err)
	}
	a, err := ReadParquet(filepath.Join(dir, "a.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := ReadParquet(filepath.Join(dir, "b.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	if *a[0].Tokens != 3 || *a[0].MS != 1.5 || a[0].FileName != "c/a.png" || len(a[0].Keywords) != 1 || *a[0].Params != `{"a":1}` {
		t.Errorf("read back %+v", a[0])
	}
	if b[0].Tokens != nil || b[0].Score != nil || b[0].Text != nil || len(b[0].Keywords) != 0 {
		t.Errorf("nulls read back as %+v", b[0])
	}
	for _, name := range []string{"a.parquet", "b.parquet"} {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		st, _ := f.Stat()
		pf, err := parquet.OpenFile(f, st.Size())
		if err != nil {
			t.Fatal(err)
		}
		if got, want := pf.Schema().String(), ParquetSchema().String(); got != want {
			t.Errorf("%s schema:\n%s\nwant:\n%s", name, got, want)
		}
		f.Close()
	}
	st1, _ := os.Stat(filepath.Join(dir, "a.parquet"))
	if st1.Mode().Perm() != 0o644 {
		t.Errorf("parquet file mode %v, want 0644", st1.Mode().Perm())
	}
}

func TestImageName(t *testing.T) {
	for in, want := range map[string]string{
		"img/a.jpg":         "images/img/a.jpg",
		"./img/../b.png":    "images/b.png",
		"../data/img/a.jpg": "images/_up1/data/img/a.jpg",
		"../../x/a.jpg":     "images/_up2/x/a.jpg",
		"/srv/photos/a.jpg": "images/_abs/srv/photos/a.jpg",
	} {
		if got := ImageName(in); got != want {
			t.Errorf("ImageName(%q) = %q, want %q", in, got, want)
		}
	}
}
