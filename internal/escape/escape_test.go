package escape

import (
	"strings"
	"testing"
)

func TestControl(t *testing.T) {
	for in, want := range map[string]string{
		"model.layers.0.q_proj.weight": "model.layers.0.q_proj.weight",
		"파란 청바지 tensor":                "파란 청바지 tensor",
		"a\x1b[31mred\x1b[0m":          `a\x1b[31mred\x1b[0m`,
		"nul\x00byte":                  `nul\x00byte`,
		"line\nbreak\r\ttab":           `line\nbreak\r\ttab`,
		"bad\xffutf8":                  `bad\xffutf8`,
		"del\x7f":                      `del\x7f`,
		"c1\u0085 zero\u200bwidth":     `c1\u0085 zero\u200bwidth`,
		"":                             "",
	} {
		if got := Control(in); got != want {
			t.Errorf("Control(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBounded(t *testing.T) {
	if got := Bounded("short", 10); got != "short" {
		t.Errorf("short: %q", got)
	}
	long := strings.Repeat("é", 100) // 200 bytes
	got := Bounded(long, 15)
	if !strings.HasPrefix(got, strings.Repeat("é", 7)+"...") || !strings.HasSuffix(got, "(200 bytes)") {
		t.Errorf("long: %q", got)
	}
}
