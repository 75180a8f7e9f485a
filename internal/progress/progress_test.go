package progress

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// On a terminal the bar is one line redrawn in place: every redraw starts with a
// carriage return and clears the line, and only End moves to a new line.
func TestBarRedrawsOneLine(t *testing.T) {
	var term bytes.Buffer
	clk := &clock{t: time.Unix(0, 0)}
	r := New(Options{Mode: Bar, W: &term, Now: clk.now, Every: time.Second, Width: 10})
	task := r.Start("caption", "images", 10)
	for i := 0; i < 10; i++ {
		clk.t = clk.t.Add(time.Second)
		if i == 3 {
			task.Fail(1)
			continue
		}
		task.Add(1)
	}
	task.End()
	out := term.String()
	if n := strings.Count(out, "\n"); n != 1 {
		t.Fatalf("%d newlines in the bar output, want 1 (at End):\n%q", n, out)
	}
	draws := strings.Split(out, "\r\x1b[K")
	if len(draws) < 10 {
		t.Fatalf("%d redraws for 10 updates a second apart:\n%q", len(draws)-1, out)
	}
	mid := draws[5]
	for _, want := range []string{"caption [####......] 4/10  40%", "1 images/s", "ETA 6s", "1 failed"} {
		if !strings.Contains(mid, want) {
			t.Errorf("redraw %q lacks %q", mid, want)
		}
	}
	last := strings.TrimSpace(draws[len(draws)-1])
	if !strings.Contains(last, "10/10 100%") || strings.Contains(last, "ETA") {
		t.Errorf("final bar %q: want 10/10 100%% and no ETA", last)
	}
}

// A log line written while the bar is up clears the bar and redraws it after itself.
func TestLogWriterKeepsBarOffLogLines(t *testing.T) {
	var term bytes.Buffer
	r := New(Options{Mode: Bar, W: &term, Every: time.Nanosecond})
	log := slog.New(slog.NewTextHandler(r.LogWriter(&term), nil))
	task := r.Start("rewrite", "products", 4)
	task.Add(1)
	log.Info("a message")
	task.End()
	out := term.String()
	i := strings.Index(out, "time=")
	if i < 0 || !strings.HasSuffix(out[:i], "\r\x1b[K") {
		t.Fatalf("log line does not start on a cleared line:\n%q", out)
	}
	if !strings.HasPrefix(out[i+strings.Index(out[i:], "\n")+1:], "rewrite [") {
		t.Errorf("bar not redrawn after the log line:\n%q", out)
	}
}

// Without a terminal: structured lines at most every Every, each with the count, rate
// and ETA, and a final line.
func TestLogModeStructuredLines(t *testing.T) {
	var logs bytes.Buffer
	clk := &clock{t: time.Unix(0, 0)}
	r := New(Options{Mode: Log, Logger: slog.New(slog.NewJSONHandler(&logs, nil)), Now: clk.now, Every: 5 * time.Second})
	task := r.Start("embed", "images", 100)
	for i := 0; i < 100; i++ {
		clk.t = clk.t.Add(time.Second)
		task.Add(1)
	}
	task.End()
	var recs []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", l, err)
		}
		recs = append(recs, m)
	}
	// 100 s of work, a line every 5 s: 20 periodic lines and the final one.
	if len(recs) != 21 {
		t.Fatalf("%d log lines, want 21:\n%s", len(recs), logs.String())
	}
	if recs[0]["msg"] != "embed" || recs[0]["done"] != "5/100" || recs[0]["eta"] != "1m35s" || recs[0]["rate"] != "1 images/s" {
		t.Errorf("first line %v", recs[0])
	}
	if last := recs[len(recs)-1]; last["msg"] != "embed finished" || last["done"] != "100/100" {
		t.Errorf("final line %v", last)
	}
}

func TestQuietAndNil(t *testing.T) {
	var out bytes.Buffer
	r := New(Options{Mode: Quiet, W: &out, Logger: slog.New(slog.NewTextHandler(&out, nil)), Every: time.Nanosecond})
	task := r.Start("x", "items", 3)
	task.Add(3)
	task.End()
	if out.Len() != 0 {
		t.Errorf("quiet reporter wrote %q", out.String())
	}
	var nilR *Reporter
	nt := nilR.Start("x", "items", 1)
	nt.Add(1)
	nt.Note("n")
	nt.End()
	if d, f := nt.Counts(); d != 0 || f != 0 {
		t.Errorf("nil task counted %d, %d", d, f)
	}
}

func TestAuto(t *testing.T) {
	var b bytes.Buffer
	if m := Auto(&b, false, false); m != Log {
		t.Errorf("a buffer is not a terminal: mode %v", m)
	}
	if m := Auto(&b, true, false); m != Quiet {
		t.Errorf("quiet: mode %v", m)
	}
}
