package llamacpp

// This file holds every callback from llama.cpp into Go (STYLE.md: callbacks through
// cgo.Handle in one file). llama.cpp and ggml log through one global callback; we route
// it to log/slog and keep the error lines of calls in flight, so that a failed load or
// decode returns an error that says what llama.cpp said.

/*
#include <stdint.h>
#include "shim.h"
*/
import "C"

import (
	"context"
	"log/slog"
	"runtime/cgo"
	"strings"
	"sync"
)

// ggml_log_level values (ggml.h).
const (
	ggmlLogDebug = 1
	ggmlLogInfo  = 2
	ggmlLogWarn  = 3
	ggmlLogError = 4
	ggmlLogCont  = 5 // continues the previous message
)

// logSink receives llama.cpp's log text. Messages arrive in pieces (a line can be split
// over several calls, CONT continues the previous level), so text is buffered up to the
// newline before it becomes one slog record.
type logSink struct {
	mu       sync.Mutex
	logger   *slog.Logger // nil: slog.Default() at the time of the message
	level    int          // level of the line being buffered
	line     strings.Builder
	captures map[*errorCapture]struct{}
	// warnings logged at Debug while a call of ours knows them to be noise
	demotions map[*demotion]struct{}
}

// errorCapture collects the error lines llama.cpp logs while a call of ours is running.
type errorCapture struct{ lines []string }

var (
	sink          = &logSink{captures: map[*errorCapture]struct{}{}, demotions: map[*demotion]struct{}{}}
	sinkInstalled sync.Once
)

// installLogSink points llama.cpp's logging at sink; called by BackendInit.
func installLogSink() {
	sinkInstalled.Do(func() {
		// The handle lives as long as the process: llama.cpp may log at any time.
		C.synth_llama_set_log(C.uintptr_t(cgo.NewHandle(sink)))
	})
}

// SetLogger sends llama.cpp's logs to l (nil: slog.Default()). llama.cpp's INFO lines
// (hundreds while loading a model) become Debug records; WARN and ERROR keep their level.
func SetLogger(l *slog.Logger) {
	sink.mu.Lock()
	sink.logger = l
	sink.mu.Unlock()
}

//export synthLlamaLog
func synthLlamaLog(level C.int, text *C.char, handle C.uintptr_t) {
	s := cgo.Handle(handle).Value().(*logSink)
	s.write(int(level), C.GoString(text))
}

func (s *logSink) write(level int, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if level != ggmlLogCont {
		if s.line.Len() > 0 {
			s.flushLocked()
		}
		s.level = level
	}
	for {
		nl := strings.IndexByte(text, '\n')
		if nl < 0 {
			s.line.WriteString(text)
			return
		}
		s.line.WriteString(text[:nl])
		s.flushLocked()
		text = text[nl+1:]
	}
}

func (s *logSink) flushLocked() {
	msg := strings.TrimSpace(s.line.String())
	s.line.Reset()
	if msg == "" {
		return
	}
	lvl := slog.LevelDebug
	switch s.level {
	case ggmlLogWarn:
		lvl = slog.LevelWarn
		for d := range s.demotions {
			if strings.Contains(msg, d.a) && strings.Contains(msg, d.b) {
				lvl = slog.LevelDebug
			}
		}
	case ggmlLogError:
		lvl = slog.LevelError
		// A call of ours is waiting for this reason and returns it in its error, so
		// logging it as an error as well would say it twice.
		for c := range s.captures {
			if len(c.lines) < 16 {
				c.lines = append(c.lines, msg)
			}
			lvl = slog.LevelDebug
		}
	}
	l := s.logger
	if l == nil {
		l = slog.Default()
	}
	l.Log(context.Background(), lvl, msg, "source", "llama.cpp")
}

// captureErrors starts collecting llama.cpp error lines; stop returns them joined.
func captureErrors() (stop func() string) {
	c := &errorCapture{}
	sink.mu.Lock()
	sink.captures[c] = struct{}{}
	sink.mu.Unlock()
	return func() string {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		if sink.line.Len() > 0 {
			sink.flushLocked()
		}
		delete(sink.captures, c)
		return strings.Join(c.lines, "; ")
	}
}

// demotion marks a warning (a line holding both a and b) as noise while a call runs.
type demotion struct{ a, b string }

// demoteWarnings logs warnings holding both a and b at Debug until undo is called.
func demoteWarnings(a, b string) (undo func()) {
	d := &demotion{a, b}
	sink.mu.Lock()
	sink.demotions[d] = struct{}{}
	sink.mu.Unlock()
	return func() {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		if sink.line.Len() > 0 {
			sink.flushLocked()
		}
		delete(sink.demotions, d)
	}
}
