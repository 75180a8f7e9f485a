package llamacpp

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestLlamaCppLogsReachSlog(t *testing.T) {
	fm := fixtureModels(t)[0]
	var buf bytes.Buffer
	SetLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	defer SetLogger(nil)
	m, err := LoadModel(fm.m.Path(), ModelParams{})
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	out := buf.String()
	// The loader prints the GGUF's metadata at INFO, which arrives as Debug records, one
	// per line even when llama.cpp writes a line in pieces.
	if !strings.Contains(out, "level=DEBUG") || !strings.Contains(out, "general.architecture") || !strings.Contains(out, "source=llama.cpp") {
		t.Fatalf("log output lacks the loader's lines:\n%.2000s", out)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasPrefix(line, "time=") {
			t.Errorf("record split mid-line: %q", line)
		}
	}
}

func TestLogSinkJoinsPieces(t *testing.T) {
	var buf bytes.Buffer
	s := &logSink{logger: slog.New(slog.NewTextHandler(&buf, nil)), captures: map[*errorCapture]struct{}{}, demotions: map[*demotion]struct{}{}}
	s.write(ggmlLogWarn, "first ")
	s.write(ggmlLogCont, "half\nsecond line\n")
	s.write(ggmlLogInfo, "info goes to debug\n")
	out := buf.String()
	if !strings.Contains(out, `level=WARN msg="first half"`) || !strings.Contains(out, `level=WARN msg="second line"`) {
		t.Errorf("pieces not joined per line:\n%s", out)
	}
	if strings.Contains(out, "info goes to debug") {
		t.Errorf("llama.cpp INFO logged above Debug:\n%s", out)
	}
}

// The n_ctx_seq warnings are noise for a unified cache (total cells, shared) and real
// warnings for a per-sequence one.
func TestUnifiedContextWarningIsDemoted(t *testing.T) {
	fm := fixtureModels(t)[0]
	for _, tc := range []struct {
		nCtx    int
		unified bool
	}{{2 * fm.m.NCtxTrain(), true}, {2 * fm.m.NCtxTrain(), false}, {256, true}, {256, false}} {
		over, unified := tc.nCtx, tc.unified
		var buf bytes.Buffer
		SetLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn})))
		c, err := NewContext(fm.m, ContextParams{NCtx: over, NSeqMax: 1, Threads: 1, KVUnified: unified})
		SetLogger(nil)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		if warned := strings.Contains(buf.String(), "n_ctx_seq"); warned == unified {
			t.Errorf("unified=%v: n_ctx_seq warning shown=%v:\n%s", unified, warned, buf.String())
		}
	}
}
