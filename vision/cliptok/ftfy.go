package cliptok

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/unicode/norm"
)

// fixText is the subset of ftfy 6.3.1's fix_text (default configuration) that we
// reproduce; doc.go lists what is covered and what is not.
//
// ftfy works on segments that end after each '\n'. HTML unescaping is on until a segment
// contains '<', and then stays off for that segment and every later one. Each segment is
// fixed by repeating the fixers below, in ftfy's order, until it stops changing.
func fixText(text string) string {
	unescape := true
	var out strings.Builder
	for text != "" {
		end := strings.IndexByte(text, '\n') + 1
		if end == 0 {
			end = len(text)
		}
		seg := text[:end]
		text = text[end:]
		if unescape && strings.Contains(seg, "<") {
			unescape = false
		}
		out.WriteString(fixSegment(seg, unescape))
	}
	return out.String()
}

func fixSegment(s string, unescape bool) string {
	for {
		orig := s
		if unescape {
			s = ftfyUnescape(s)
		}
		s = fixEncoding(s)
		s = fixC1Controls(s)
		s = mapRunes(s, latinLigature)
		s = mapRunes(s, characterWidth)
		s = mapRunes(s, uncurlQuote)
		s = fixLineBreaks(s)
		s = removeTerminalEscapes(s)
		s = mapRunes(s, removeControl)
		s = norm.NFC.String(s)
		if s == orig {
			return s
		}
	}
}

// mapRunes replaces each rune r by f(r) (which may be empty or several runes).
func mapRunes(s string, f func(r rune) (string, bool)) string {
	var b strings.Builder
	changed := false
	for i, r := range s {
		rep, ok := f(r)
		if !ok {
			if changed {
				b.WriteRune(r)
			}
			continue
		}
		if !changed {
			b.Grow(len(s))
			b.WriteString(s[:i])
			changed = true
		}
		b.WriteString(rep)
	}
	if !changed {
		return s
	}
	return b.String()
}

// latinLigature is ftfy's LIGATURES table: Latin typographic ligatures and the legacy
// digraphs, split into their letters (æ, œ and the like are kept: they are letters).
func latinLigature(r rune) (string, bool) {
	switch r {
	case 'Ĳ':
		return "IJ", true
	case 'ĳ':
		return "ij", true
	case 'ŉ':
		return "ʼn", true
	case 'Ǳ':
		return "DZ", true
	case 'ǲ':
		return "Dz", true
	case 'ǳ':
		return "dz", true
	case 'Ǆ':
		return "DŽ", true
	case 'ǅ':
		return "Dž", true
	case 'ǆ':
		return "dž", true
	case 'Ǉ':
		return "LJ", true
	case 'ǈ':
		return "Lj", true
	case 'ǉ':
		return "lj", true
	case 'Ǌ':
		return "NJ", true
	case 'ǋ':
		return "Nj", true
	case 'ǌ':
		return "nj", true
	case 'ﬀ':
		return "ff", true
	case 'ﬁ':
		return "fi", true
	case 'ﬂ':
		return "fl", true
	case 'ﬃ':
		return "ffi", true
	case 'ﬄ':
		return "ffl", true
	case 'ﬅ':
		return "ſt", true
	case 'ﬆ':
		return "st", true
	}
	return "", false
}

// characterWidth is ftfy's WIDTH_MAP: the ideographic space becomes a space, and every
// character of the Halfwidth and Fullwidth Forms block U+FF01..U+FFEF that NFKC changes
// becomes its NFKC form (ＡＢＣ -> ABC, half-width katakana -> full-width).
func characterWidth(r rune) (string, bool) {
	if r == 0x3000 {
		return " ", true
	}
	if 0xFF01 <= r && r <= 0xFFEF {
		if alt := norm.NFKC.String(string(r)); alt != string(r) {
			return alt, true
		}
	}
	return "", false
}

func uncurlQuote(r rune) (string, bool) {
	switch {
	case r == 0x02BC || 0x2018 <= r && r <= 0x201B:
		return "'", true
	case 0x201C <= r && r <= 0x201F:
		return `"`, true
	}
	return "", false
}

// removeControl is ftfy's CONTROL_CHARS: C0 controls other than \t \n \f \r, DEL, the
// deprecated format characters U+206A..U+206F, the BOM / zero-width no-break space and
// the interlinear annotation characters U+FFF9..U+FFFC.
func removeControl(r rune) (string, bool) {
	switch {
	case r <= 0x08, r == 0x0B, 0x0E <= r && r <= 0x1F, r == 0x7F,
		0x206A <= r && r <= 0x206F, r == 0xFEFF, 0xFFF9 <= r && r <= 0xFFFC:
		return "", true
	}
	return "", false
}

var lineBreaks = strings.NewReplacer("\r\n", "\n", "\r", "\n", "\u2028", "\n", "\u2029", "\n", "\u0085", "\n")

func fixLineBreaks(s string) string {
	if !strings.ContainsAny(s, "\r\u2028\u2029\u0085") {
		return s
	}
	return lineBreaks.Replace(s)
}

// removeTerminalEscapes removes ANSI escapes matching \x1b\[((?:\d|;)*)([a-zA-Z]), where
// \d is any Unicode decimal digit as in Python's re on str.
func removeTerminalEscapes(s string) string {
	if !strings.Contains(s, "\x1b[") {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "\x1b[")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		j := i + 2
		for j < len(s) {
			r, n := utf8.DecodeRuneInString(s[j:])
			if r != ';' && !unicode.IsDigit(r) {
				break
			}
			j += n
		}
		if j < len(s) && ('a' <= s[j] && s[j] <= 'z' || 'A' <= s[j] && s[j] <= 'Z') {
			s = s[j+1:]
			continue
		}
		b.WriteByte(0x1b)
		s = s[i+1:]
	}
}

// fixC1Controls replaces C1 controls U+0080..U+009F by the Windows-1252 character of the
// same byte; the five bytes Windows-1252 leaves undefined stay.
func fixC1Controls(s string) string {
	return mapRunes(s, func(r rune) (string, bool) {
		if 0x80 <= r && r <= 0x9F {
			return string(cp1252C1[r-0x80]), true
		}
		return "", false
	})
}

// singleByte is one of the encodings ftfy tries when it re-decodes mojibake: a table from
// bytes 0x80..0xFF (and 0x1A, ftfy's stand-in for U+FFFD in "sloppy" codecs) to runes.
type singleByte struct {
	name   string
	high   [128]rune
	sloppy bool
	encode map[rune]byte
}

// charmapEncodings are ftfy's CHARMAP_ENCODINGS in the order it tries them. "sloppy"
// codecs decode the bytes a code page leaves undefined as the Latin-1 character of the
// same value and map U+FFFD to byte 0x1A.
var charmapEncodings = func() []*singleByte {
	mk := func(name string, cm *charmap.Charmap, sloppy bool) *singleByte {
		e := &singleByte{name: name, sloppy: sloppy, encode: map[rune]byte{}}
		for b := 0x80; b < 0x100; b++ {
			r := rune(b) // latin-1
			if cm != nil {
				r = cm.DecodeByte(byte(b))
				if r == utf8.RuneError {
					r = rune(b)
				}
			}
			e.high[b-0x80] = r
			e.encode[r] = byte(b)
		}
		if sloppy {
			e.encode[utf8.RuneError] = 0x1A
		}
		return e
	}
	return []*singleByte{
		mk("latin-1", nil, false),
		mk("sloppy-windows-1252", charmap.Windows1252, true),
		mk("sloppy-windows-1251", charmap.Windows1251, true),
		mk("sloppy-windows-1250", charmap.Windows1250, true),
		mk("sloppy-windows-1253", charmap.Windows1253, true),
		mk("sloppy-windows-1254", charmap.Windows1254, true),
		mk("sloppy-windows-1257", charmap.Windows1257, true),
		mk("iso-8859-2", charmap.ISO8859_2, false),
		mk("macroman", charmap.Macintosh, false),
		mk("cp437", charmap.CodePage437, false),
	}
}()

// encodeAll returns s encoded in e, or false when some character is not in e.
func (e *singleByte) encodeAll(s string) ([]byte, bool) {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		if r < 0x80 {
			out = append(out, byte(r))
			continue
		}
		b, ok := e.encode[r]
		if !ok {
			return nil, false
		}
		out = append(out, b)
	}
	return out, true
}

// fixEncoding is ftfy's fix_encoding: repeat one step until the text stops changing.
func fixEncoding(s string) string {
	for {
		next := fixEncodingStep(s)
		if next == s {
			return s
		}
		s = next
	}
}

// fixEncodingStep: text that can be encoded in one of the single-byte encodings, in ftfy's
// order, and whose bytes then decode as UTF-8 (or ftfy's utf-8-variants: CESU-8
// surrogate pairs and the Java NUL C0 80) was UTF-8 read in that encoding: decode it.
// Otherwise, text that Latin-1 covers but Windows-1252 does not has C1 controls, which
// become their Windows-1252 characters (fixC1Controls gives the same result).
//
// ftfy first asks its "badness" heuristic whether the text looks like mojibake and skips
// the re-decoding when not; we re-decode whenever the bytes are valid UTF-8, which for
// text that is not mojibake needs every non-ASCII character to pair up into valid UTF-8
// lead and continuation bytes (see doc.go).
func fixEncodingStep(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return s
	}
	for _, e := range charmapEncodings {
		b, ok := e.encodeAll(s)
		if !ok {
			continue
		}
		if e.sloppy {
			b = replaceLossySequences(b)
		}
		if out, ok := decodeUTF8Variants(b); ok {
			return out
		}
	}
	return s
}

// decodeUTF8Variants decodes strict UTF-8, plus CESU-8 surrogate pairs and C0 80 as NUL.
func decodeUTF8Variants(b []byte) (string, bool) {
	if utf8.Valid(b) {
		return string(b), true
	}
	var out strings.Builder
	for len(b) > 0 {
		if len(b) >= 6 && b[0] == 0xED && b[1]&0xF0 == 0xA0 && b[2]&0xC0 == 0x80 &&
			b[3] == 0xED && b[4]&0xF0 == 0xB0 && b[5]&0xC0 == 0x80 {
			hi := 0xD000 | rune(b[1]&0x3F)<<6 | rune(b[2]&0x3F)
			lo := 0xD000 | rune(b[4]&0x3F)<<6 | rune(b[5]&0x3F)
			out.WriteRune(0x10000 + (hi-0xD800)<<10 + (lo - 0xDC00))
			b = b[6:]
			continue
		}
		if len(b) >= 2 && b[0] == 0xC0 && b[1] == 0x80 {
			out.WriteByte(0)
			b = b[2:]
			continue
		}
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n <= 1 {
			return "", false
		}
		out.WriteRune(r)
		b = b[n:]
	}
	return out.String(), true
}

// lossyPatterns are the alternatives of ftfy's LOSSY_UTF8_RE in order: UTF-8 (and CESU-8)
// sequences in which some bytes were lost, as 0x1A (a byte that had become U+FFFD) or at
// most one '?'. Each is a list of byte sets, one per byte.
var lossyPatterns = func() [][]func(byte) bool {
	in := func(lo, hi byte) func(byte) bool { return func(c byte) bool { return lo <= c && c <= hi } }
	is := func(v byte) func(byte) bool { return func(c byte) bool { return c == v } }
	lostOrQ := func(c byte) bool { return c == 0x1A || c == '?' }
	lostOrCont := func(c byte) bool { return c == 0x1A || 0x80 <= c && c <= 0xBF }
	any3 := func(c byte) bool { return c == 0x1A || c == '?' || 0x80 <= c && c <= 0xBF }
	return [][]func(byte) bool{
		{in(0xC2, 0xDF), is(0x1A)},
		{in(0xC2, 0xC3), is('?')},
		{is(0xED), in(0xA0, 0xAF), lostOrQ, is(0xED), in(0xB0, 0xBF), any3},
		{is(0xED), in(0xA0, 0xAF), any3, is(0xED), in(0xB0, 0xBF), lostOrQ},
		{in(0xE0, 0xEF), lostOrQ, lostOrCont},
		{in(0xE0, 0xEF), lostOrCont, lostOrQ},
		{in(0xF0, 0xF4), lostOrQ, lostOrCont, lostOrCont},
		{in(0xF0, 0xF4), lostOrCont, lostOrQ, lostOrCont},
		{in(0xF0, 0xF4), lostOrCont, lostOrCont, lostOrQ},
		{is(0x1A)},
	}
}()

// replaceLossySequences is ftfy's replace_lossy_sequences: each match of LOSSY_UTF8_RE
// becomes the UTF-8 bytes of U+FFFD.
func replaceLossySequences(b []byte) []byte {
	var out []byte
	for i := 0; i < len(b); {
		n := 0
		for _, p := range lossyPatterns {
			if i+len(p) > len(b) {
				continue
			}
			ok := true
			for k, f := range p {
				if !f(b[i+k]) {
					ok = false
					break
				}
			}
			if ok {
				n = len(p)
				break
			}
		}
		if n == 0 {
			out = append(out, b[i])
			i++
			continue
		}
		out = append(out, "\uFFFD"...)
		i += n
	}
	return out
}
