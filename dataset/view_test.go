package dataset

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// chromium finds a headless-capable Chromium (Debian's package is "chromium"; .ci/run
// installs it) or skips the test with a message.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no chromium on PATH (Debian package chromium; .ci/run installs it): the viewer is not tested in a browser here")
	return ""
}

// runChromium loads a page in headless Chromium, lets its scripts run, and returns the
// DOM as the scripts left it (or takes a screenshot when shot is set).
func runChromium(t *testing.T, bin, url, shot string) string {
	t.Helper()
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
		"--user-data-dir=" + t.TempDir(), "--window-size=1280,1000", "--virtual-time-budget=20000"}
	if shot != "" {
		args = append(args, "--screenshot="+shot)
	} else {
		args = append(args, "--dump-dom")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(args, url)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %s: %v\n%s", url, err, stderr.String())
	}
	return string(out)
}

var statusRe = regexp.MustCompile(`id="(first|last|count|total|page|pages)">(\d+)<`)

// status reads the page's counters from the DOM.
func status(t *testing.T, dom string) map[string]int {
	t.Helper()
	s := map[string]int{}
	for _, m := range statusRe.FindAllStringSubmatch(dom, -1) {
		s[m[1]], _ = strconv.Atoi(m[2])
	}
	if len(s) != 6 {
		t.Fatalf("the page's status line was not rendered (scripts did not run?):\n%.2000s", dom)
	}
	return s
}

func writePNG(t *testing.T, path string, c color.Color) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 48, 64))
	for y := 0; y < 64; y++ {
		for x := 0; x < 48; x++ {
			if (x/8+y/8)%2 == 0 {
				img.Set(x, y, c)
			} else {
				img.Set(x, y, color.White)
			}
		}
	}
	os.MkdirAll(filepath.Dir(path), 0o755)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
}

func ptr[T any](v T) *T { return &v }

// viewDataset writes a published folder: source with n products, captioned with two
// images per product (scores spread over [0, 1), every fifth failed).
func viewDataset(t *testing.T, n int) (dir string, source, captioned []Row) {
	dir = t.TempDir()
	colors := []color.Color{color.RGBA{200, 30, 40, 255}, color.RGBA{30, 90, 200, 255}, color.RGBA{40, 160, 80, 255}}
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("p%03d", i)
		img := fmt.Sprintf("images/%s_0.png", id)
		writePNG(t, filepath.Join(dir, "source", img), colors[i%3])
		source = append(source, Row{FileName: img, Dataset: "source", ID: id, Image: img, Text: ptr(fmt.Sprintf("a %d cotton shirt with checks", i)),
			Score: ptr(0.3), Rank: ptr(int64(1))})
		for k := 0; k < 2; k++ {
			img := fmt.Sprintf("images/%s_%d.png", id, k)
			writePNG(t, filepath.Join(dir, "captioned", img), colors[(i+k)%3])
			r := Row{FileName: img, Dataset: "captioned", ID: id, Image: img}
			if j := 2*i + k; j%5 == 4 {
				r.Error = ptr("load: broken image")
			} else {
				r.Text = ptr(fmt.Sprintf("caption %d of %s: a shirt", k, id))
				r.Score = ptr(float64(j) / float64(2*n))
				r.Rank = ptr(int64(k + 1))
			}
			captioned = append(captioned, r)
		}
	}
	for name, rows := range map[string][]Row{"source": source, "captioned": captioned} {
		if err := WriteConfig(dir, name, rows); err != nil {
			t.Fatal(err)
		}
	}
	return dir, source, captioned
}

// The viewer in a real browser: the page's scripts count every record, apply a dataset
// and a score filter, the failures filter and a sort, all read back from the DOM; a
// screenshot is left for a person to look at.
func TestViewInChromium(t *testing.T) {
	bin := chromium(t)
	dir, source, captioned := viewDataset(t, 12)
	path, n, err := WriteView(dir, "view test")
	if err != nil {
		t.Fatal(err)
	}
	if n != len(source)+len(captioned) {
		t.Fatalf("WriteView counted %d records, want %d", n, len(source)+len(captioned))
	}
	page, _ := os.ReadFile(path)
	if strings.Contains(string(page), "http://") || strings.Contains(string(page), "https://") {
		t.Error("the page refers to the network")
	}
	url := "file://" + path
	above, failed := 0, 0
	for _, r := range captioned {
		if r.Score != nil && *r.Score >= 0.5 {
			above++
		}
		if r.Error != nil {
			failed++
		}
	}
	for _, c := range []struct {
		hash  string
		count int
	}{
		{"", n},
		{"#dataset=captioned", len(captioned)},
		{"#dataset=captioned&min=0.5", above},
		{"#failures=1", failed},
		{"#q=caption%201", len(captioned)/2 - failedOf(captioned, 1)},
	} {
		s := status(t, runChromium(t, bin, url+c.hash, ""))
		if s["count"] != c.count || s["total"] != n {
			t.Errorf("%q: the page shows %d of %d records, want %d of %d", c.hash, s["count"], s["total"], c.count, n)
		}
	}
	dom := runChromium(t, bin, url+"#dataset=captioned&sort=score-desc", "")
	scores := regexp.MustCompile(`score (\d\.\d+)`).FindAllStringSubmatch(dom, -1)
	if len(scores) < 2 || scores[0][1] < scores[1][1] || scores[0][1] != fmt.Sprintf("%.3f", maxScore(captioned)) {
		t.Errorf("sorted by score, the first cards show %v, want the highest %.3f first", scores[:min(3, len(scores))], maxScore(captioned))
	}

	// A product's source text beside its captions.
	dom = runChromium(t, bin, url+"#detail=p004", "")
	panel := dom[strings.Index(dom, `id="detail"`):]
	panel = panel[:strings.Index(panel, "</aside>")]
	for _, want := range []string{"product p004", "a 4 cotton shirt with checks", "caption 0 of p004", "load: broken image"} {
		if !strings.Contains(panel, want) {
			t.Errorf("the compare panel of p004 lacks %q:\n%s", want, panel)
		}
	}

	shot := filepath.Join(os.TempDir(), "synth-view-test", "viewer.png")
	os.MkdirAll(filepath.Dir(shot), 0o755)
	os.Remove(shot)
	runChromium(t, bin, url+"#dataset=captioned&sort=score-desc&detail=p010", shot)
	if st, err := os.Stat(shot); err != nil || st.Size() < 10_000 {
		t.Fatalf("no screenshot at %s (%v)", shot, err)
	}
	t.Logf("screenshot of the viewer: %s", shot)
}

func failedOf(rows []Row, k int) int {
	n := 0
	for _, r := range rows {
		if r.Error != nil && strings.HasSuffix(r.Image, fmt.Sprintf("_%d.png", k)) {
			n++
		}
	}
	return n
}

func maxScore(rows []Row) float64 {
	m := -1.0
	for _, r := range rows {
		if r.Score != nil && *r.Score > m {
			m = *r.Score
		}
	}
	return m
}

// 100K records page by page: the page holds them all and draws one page of 100.
func TestViewPages100KRecords(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: 100K records in a browser take a few seconds")
	}
	bin := chromium(t)
	dir := t.TempDir()
	const total = 100_000
	rows := make([]Row, total)
	for i := range rows {
		img := fmt.Sprintf("images/%d.png", i%3)
		rows[i] = Row{FileName: img, Dataset: "captioned", ID: fmt.Sprintf("p%06d", i/2), Image: img,
			Text: ptr(fmt.Sprintf("caption %d", i)), Score: ptr(float64(i%1000) / 1000)}
	}
	for i := 0; i < 3; i++ {
		writePNG(t, filepath.Join(dir, "captioned", fmt.Sprintf("images/%d.png", i)), color.Black)
	}
	if err := WriteMetadata(filepath.Join(dir, "captioned"), rows); err != nil {
		t.Fatal(err)
	}
	path, n, err := WriteView(dir, "100K")
	if err != nil || n != total {
		t.Fatalf("WriteView: %d records, %v", n, err)
	}
	s := status(t, runChromium(t, bin, "file://"+path+"#page=1000", ""))
	if s["count"] != total || s["pages"] != total/viewPageSize || s["page"] != 1000 || s["first"] != total-viewPageSize+1 || s["last"] != total {
		t.Errorf("last page: %v", s)
	}
	s = status(t, runChromium(t, bin, "file://"+path+"#min=0.9", ""))
	if s["count"] != total/10 {
		t.Errorf("score >= 0.9: %d records, want %d", s["count"], total/10)
	}
}

// --serve serves the folder on loopback only.
func TestServeView(t *testing.T) {
	dir, _, _ := viewDataset(t, 2)
	if _, _, err := WriteView(dir, "serve"); err != nil {
		t.Fatal(err)
	}
	if err := ServeView(context.Background(), dir, "0.0.0.0:0", nil); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("a non-loopback address: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- ServeView(ctx, dir, "127.0.0.1:0", func(a string) { addr <- a }) }()
	resp, err := http.Get("http://" + <-addr + "/" + ViewFile)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `id="records"`) {
		t.Errorf("served page is not the viewer")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve ended with %v", err)
	}
}
