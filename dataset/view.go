package dataset

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"text/template"
	"time"
)

// The viewer is one static index.html in the published folder: the records of every
// configuration inlined as JSON, the images referenced by their relative paths, no
// network, no server. It pages through the records (100 a page), sorts and filters them
// by score, coverage, failures, text and dataset, and shows a product's texts side by
// side. The page keeps its state in the URL fragment (e.g. #dataset=captioned&min=0.2),
// which is also how tests drive it.

//go:embed view.html
var viewHTML string

var viewTemplate = template.Must(template.New("view").Parse(viewHTML))

// ViewFile is the viewer's file name in the published folder.
const ViewFile = "index.html"

// viewPageSize is the records drawn per page: enough to scan, few enough that a page of
// 100K records draws at once.
const viewPageSize = 100

// viewRecord is a record as the page holds it, with short keys to keep 100K records small.
type viewRecord struct {
	D string   `json:"d"`
	I string   `json:"i"`
	F string   `json:"f"`
	T string   `json:"t,omitempty"`
	K []string `json:"k,omitempty"`
	S *float64 `json:"s,omitempty"`
	R *int64   `json:"r,omitempty"`
	C *float64 `json:"c,omitempty"`
	L bool     `json:"l,omitempty"`
	E string   `json:"e,omitempty"`
}

// configOrder puts the method's configurations first, in the order they are made.
var configOrder = []string{"source", "captioned", "rewritten", "translated"}

// Configs lists the configuration folders of a published dataset (those holding a
// metadata.jsonl): the method's in their order, then any other alphabetically.
func Configs(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	var names []string
	for _, e := range ents {
		if _, err := os.Stat(filepath.Join(dir, e.Name(), MetadataFile)); e.IsDir() && err == nil {
			names = append(names, e.Name())
		}
	}
	rank := func(n string) int {
		for i, c := range configOrder {
			if c == n {
				return i
			}
		}
		return len(configOrder)
	}
	sort.SliceStable(names, func(i, j int) bool {
		ri, rj := rank(names[i]), rank(names[j])
		if ri != rj {
			return ri < rj
		}
		return names[i] < names[j]
	})
	return names, nil
}

// WriteView writes dir/index.html from every configuration's metadata.jsonl and returns
// its path and the number of records it holds.
func WriteView(dir, title string) (string, int, error) {
	names, err := Configs(dir)
	if err != nil {
		return "", 0, err
	}
	if len(names) == 0 {
		return "", 0, fmt.Errorf("dataset: view: %s holds no configuration folder with a %s (run synth pipeline first)", dir, MetadataFile)
	}
	var recs []viewRecord
	for _, name := range names {
		rows, err := ReadMetadata(filepath.Join(dir, name, MetadataFile))
		if err != nil {
			return "", 0, err
		}
		for _, r := range rows {
			v := viewRecord{D: name, I: r.ID, F: r.FileName, T: deref(r.Text), K: r.Keywords, R: r.Rank, C: r.Coverage, E: deref(r.Error)}
			if r.Score != nil && !math.IsNaN(*r.Score) {
				v.S = r.Score
			}
			v.L = r.LowCoverage != nil && *r.LowCoverage
			recs = append(recs, v)
		}
	}
	js, err := json.Marshal(recs) // escapes <, > and &: safe inside <script>
	if err != nil {
		return "", 0, fmt.Errorf("dataset: view: %w", err)
	}
	var buf bytes.Buffer
	err = viewTemplate.Execute(&buf, struct {
		Title    string
		Records  string
		PageSize int
	}{html.EscapeString(title), string(js), viewPageSize})
	if err != nil {
		return "", 0, fmt.Errorf("dataset: view: %w", err)
	}
	path := filepath.Join(dir, ViewFile)
	return path, len(recs), writeIfChanged(path, buf.Bytes())
}

// ErrNotLoopback is returned by ServeView for an address other machines could reach.
var ErrNotLoopback = errors.New("not a loopback address")

// ServeView serves dir over HTTP on addr, which must be a loopback address (the data
// stays on this machine), until ctx ends. ready, when not nil, gets the address
// listened on.
func ServeView(ctx context.Context, dir, addr string, ready func(string)) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("dataset: serve %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("dataset: serve %q: %w (use 127.0.0.1:PORT or localhost:PORT)", addr, ErrNotLoopback)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("dataset: serve: %w", err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(dir)), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if ready != nil {
		ready(ln.Addr().String())
	}
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("dataset: serve: %w", err)
	}
	return nil
}
