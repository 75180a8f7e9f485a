// Package escape makes strings from files safe to print on a terminal or in a one-line
// message: names read from checkpoints (pickle globals, GGUF keys, tensor names) may hold
// escape sequences, NUL bytes or invalid UTF-8.
//
//	fmt.Fprintf(w, "tensor %s\n", escape.Control(name))
//
// escape imports the standard library only.
package escape

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Control returns s with control characters, other non-printing runes and invalid UTF-8
// bytes written as Go escapes (\x1b, \n, \u200b, \xff); printable text, spaces included,
// is left as it is. A string that needs no escaping is returned unchanged.
func Control(s string) string {
	if clean(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x80 && !unicode.IsPrint(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case r != ' ' && !unicode.IsPrint(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// Bounded is Control(s) cut to about max bytes, saying how long s was: for values that
// come from a file and go into an error message.
func Bounded(s string, max int) string {
	if len(s) <= max {
		return Control(s)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s... (%d bytes)", Control(s[:cut]), len(s))
}

func clean(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || (r != ' ' && !unicode.IsPrint(r)) {
			return false
		}
	}
	return true
}
