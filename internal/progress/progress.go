// Package progress is synth's one progress reporter. Every long-running command reports
// through it, so they all behave alike: on a terminal a single bar redrawn in place with
// the count, rate and ETA; when stderr is a file or a pipe (or logs are JSON) a structured
// log line every few seconds; with --quiet nothing.
//
// A nil *Reporter and a nil *Task are valid and report nothing, so libraries can take
// one as an optional option.
//
// progress uses the standard library only.
package progress

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// Mode chooses how progress is shown.
type Mode int

const (
	// Log writes a structured log line (slog, Info) at most every Options.Every.
	Log Mode = iota
	// Bar redraws one line in place on a terminal.
	Bar
	// Quiet shows nothing.
	Quiet
)

// Options configure a Reporter.
type Options struct {
	Mode Mode
	// W is the terminal the bar is drawn on (Bar mode).
	W io.Writer
	// Logger receives the Log mode lines (default: slog.Default()).
	Logger *slog.Logger
	// Every is the interval between log lines (default 5 s) or bar redraws (default
	// 100 ms).
	Every time.Duration
	// Now is the clock (default time.Now); tests set it.
	Now func() time.Time
	// Width is the bar's width in cells (default 24).
	Width int
}

// Reporter hands out Tasks and serialises their output with the log lines written
// through LogWriter.
type Reporter struct {
	opt Options

	mu   sync.Mutex
	live *Task  // the task whose bar is on screen, if any
	line string // what the bar line shows now
}

// New makes a Reporter.
func New(opt Options) *Reporter {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.Every <= 0 {
		opt.Every = 5 * time.Second
		if opt.Mode == Bar {
			opt.Every = 100 * time.Millisecond
		}
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Width <= 0 {
		opt.Width = 24
	}
	if opt.W == nil {
		opt.W = io.Discard
	}
	return &Reporter{opt: opt}
}

// Auto picks the mode for a writer: Quiet when quiet, Bar when w is a terminal and logs
// are text, Log otherwise (a bar's carriage returns would be noise in a file, and JSON
// logs are read by programs).
func Auto(w io.Writer, quiet, jsonLogs bool) Mode {
	switch {
	case quiet:
		return Quiet
	case !jsonLogs && IsTerminal(w):
		return Bar
	}
	return Log
}

// IsTerminal reports whether w is a character device (a terminal), not a file or pipe.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Mode is the reporter's mode (Quiet for a nil Reporter).
func (r *Reporter) Mode() Mode {
	if r == nil {
		return Quiet
	}
	return r.opt.Mode
}

// LogWriter wraps the writer a log handler writes to, so that a log line printed while a
// bar is on screen clears the bar first and redraws it after: the two never share a line.
func (r *Reporter) LogWriter(w io.Writer) io.Writer {
	if r == nil || r.opt.Mode != Bar {
		return w
	}
	return logWriter{r: r, w: w}
}

type logWriter struct {
	r *Reporter
	w io.Writer
}

func (l logWriter) Write(p []byte) (int, error) {
	l.r.mu.Lock()
	defer l.r.mu.Unlock()
	if l.r.line != "" {
		fmt.Fprint(l.r.opt.W, "\r\x1b[K")
	}
	n, err := l.w.Write(p)
	if l.r.line != "" {
		fmt.Fprint(l.r.opt.W, l.r.line)
	}
	return n, err
}

// Task is one counted piece of work.
type Task struct {
	r           *Reporter
	what, unit  string
	total       int
	done, fail  int
	note        string
	start, last time.Time
	ended       bool
}

// Start begins a task of total items (0: unknown) named what, counting unit (e.g.
// "images"). Only one task shows at a time; starting one ends the bar of the previous.
func (r *Reporter) Start(what, unit string, total int) *Task {
	if r == nil {
		return nil
	}
	now := r.opt.Now()
	t := &Task{r: r, what: what, unit: unit, total: total, start: now, last: now}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.live != nil {
		r.endLine()
	}
	if r.opt.Mode == Bar {
		r.live = t
		t.draw(now)
	}
	return t
}

// Add counts n items done.
func (t *Task) Add(n int) { t.update(n, 0, nil) }

// Fail counts n items done that failed.
func (t *Task) Fail(n int) { t.update(n, n, nil) }

// Note sets a short status text shown beside the counts (e.g. the op being measured).
func (t *Task) Note(s string) { t.update(0, 0, &s) }

// SetTotal changes the total (e.g. once it is known).
func (t *Task) SetTotal(n int) {
	if t == nil {
		return
	}
	t.r.mu.Lock()
	t.total = n
	t.r.mu.Unlock()
}

// Counts returns the items done and failed so far.
func (t *Task) Counts() (done, failed int) {
	if t == nil {
		return 0, 0
	}
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	return t.done, t.fail
}

func (t *Task) update(n, failed int, note *string) {
	if t == nil {
		return
	}
	r := t.r
	r.mu.Lock()
	defer r.mu.Unlock()
	t.done += n
	t.fail += failed
	if note != nil {
		t.note = *note
	}
	if t.ended || r.opt.Mode == Quiet {
		return
	}
	now := r.opt.Now()
	if now.Sub(t.last) < r.opt.Every {
		return
	}
	t.last = now
	switch r.opt.Mode {
	case Bar:
		if r.live == t {
			t.draw(now)
		}
	case Log:
		r.opt.Logger.Info(t.what, t.attrs(now)...)
	}
}

// End finishes the task: the bar is drawn complete and the line ended; in Log mode a
// last line says how many items were done in how long.
func (t *Task) End() {
	if t == nil {
		return
	}
	r := t.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if t.ended {
		return
	}
	t.ended = true
	now := r.opt.Now()
	switch r.opt.Mode {
	case Bar:
		if r.live == t {
			t.draw(now)
			r.endLine()
		}
	case Log:
		attrs := []any{"done", t.count(), "failed", t.fail, "took", now.Sub(t.start).Round(time.Millisecond)}
		if rate := t.rate(now); rate > 0 {
			attrs = append(attrs, "rate", fmt.Sprintf("%.3g %s/s", rate, t.unit))
		}
		r.opt.Logger.Info(t.what+" finished", attrs...)
	}
}

// endLine leaves the bar on screen as it is and moves to the next line. r.mu is held.
func (r *Reporter) endLine() {
	if r.line != "" {
		fmt.Fprint(r.opt.W, "\n")
	}
	r.line, r.live = "", nil
}

func (t *Task) count() string {
	if t.total > 0 {
		return fmt.Sprintf("%d/%d", t.done, t.total)
	}
	return fmt.Sprint(t.done)
}

func (t *Task) rate(now time.Time) float64 {
	s := now.Sub(t.start).Seconds()
	if s <= 0 {
		return 0
	}
	return float64(t.done) / s
}

// eta is the time left at the rate so far ("" when unknown).
func (t *Task) eta(now time.Time) string {
	rate := t.rate(now)
	if t.total <= 0 || rate <= 0 || t.done >= t.total {
		return ""
	}
	return (time.Duration(float64(t.total-t.done)/rate) * time.Second).Round(time.Second).String()
}

func (t *Task) attrs(now time.Time) []any {
	a := []any{"done", t.count(), "failed", t.fail, "rate", fmt.Sprintf("%.3g %s/s", t.rate(now), t.unit)}
	if e := t.eta(now); e != "" {
		a = append(a, "eta", e)
	}
	if t.note != "" {
		a = append(a, "note", t.note)
	}
	return a
}

// draw renders the bar line. r.mu is held.
func (t *Task) draw(now time.Time) {
	r := t.r
	var b strings.Builder
	b.WriteString(t.what)
	if t.total > 0 {
		w := r.opt.Width
		fill := min(w, w*t.done/t.total)
		fmt.Fprintf(&b, " [%s%s] %s %3d%%", strings.Repeat("#", fill), strings.Repeat(".", w-fill), t.count(), 100*t.done/t.total)
	} else {
		fmt.Fprintf(&b, " %s", t.count())
	}
	if rate := t.rate(now); rate > 0 {
		fmt.Fprintf(&b, "  %.3g %s/s", rate, t.unit)
	}
	if e := t.eta(now); e != "" {
		fmt.Fprintf(&b, "  ETA %s", e)
	}
	if t.fail > 0 {
		fmt.Fprintf(&b, "  %d failed", t.fail)
	}
	if t.note != "" {
		fmt.Fprintf(&b, "  %s", t.note)
	}
	r.line = b.String()
	fmt.Fprint(r.opt.W, "\r\x1b[K"+r.line)
}
