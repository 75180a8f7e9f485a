package cliptok

import (
	"html"
	"math/big"
	"strings"
)

// html5Entity returns the value of an HTML5 named character reference, as Python's
// html.entities.html5[name]: name is without '&' and keeps its ';' when it has one
// (the table holds "amp;" and the legacy "amp" as two entries).
//
// Go's html package holds the same WHATWG table but does not export it, so we ask
// html.UnescapeString and tell an exact hit from its fallback: on a miss Go decodes the
// longest legacy prefix and leaves the rest of the name in the output.
func html5Entity(name string) (string, bool) {
	body, semi := strings.CutSuffix(name, ";")
	if body == "" || !isASCIIAlnum(body) {
		return "", false // every entity name is ASCII letters and digits
	}
	if semi {
		out := html.UnescapeString("&" + name)
		// A fallback leaves the name's tail, which ends in ';'; only &semi; is ';' itself.
		if out == "&"+name || (strings.HasSuffix(out, ";") && name != "semi;") {
			return "", false
		}
		return out, true
	}
	// \x01 ends Go's name scan, so the whole body is looked up first.
	out := strings.TrimSuffix(html.UnescapeString("&"+name+"\x01"), "\x01")
	if out == "&"+name {
		return "", false
	}
	// Legacy (semicolon-less) values are never ASCII letters or digits; a fallback leaves
	// some of them at the end.
	if last := out[len(out)-1]; last < 0x80 && isASCIIAlnum(string(last)) {
		return "", false
	}
	return out, true
}

func isASCIIAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// cp1252C1 is Windows-1252 for bytes 0x80..0x9F; the five undefined bytes map to
// themselves (the C1 control of the same value), as Python's html module and ftfy's
// "sloppy" codec do.
var cp1252C1 = [32]rune{
	0x20AC, 0x81, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
	0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8D, 0x017D, 0x8F,
	0x90, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
	0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D, 0x017E, 0x0178,
}

// pyUnescape is Python's html.unescape: numeric references with or without ';' (with the
// HTML5 replacements for NUL, CR, 0x80..0x9F, surrogates, and the code points it drops),
// and named references, also without ';', matched by the longest known prefix.
func pyUnescape(s string) string {
	if !strings.Contains(s, "&") {
		return s
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '&')
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		s = s[i:]
		rep, n := charref(s)
		if n == 0 {
			b.WriteByte('&')
			s = s[1:]
			continue
		}
		b.WriteString(rep)
		s = s[n:]
	}
}

// charref matches Python's pattern &(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)
// at the start of s ("&..."); n = 0 when it does not match.
func charref(s string) (rep string, n int) {
	if len(s) >= 2 && s[1] == '#' {
		i := 2
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		if i > 2 {
			end := i
			if end < len(s) && s[end] == ';' {
				end++
			}
			return numericRef(s[2:i], 10), end
		}
		if len(s) >= 3 && (s[2] == 'x' || s[2] == 'X') {
			i = 3
			for i < len(s) && isHex(s[i]) {
				i++
			}
			if i > 3 {
				end := i
				if end < len(s) && s[end] == ';' {
					end++
				}
				return numericRef(s[3:i], 16), end
			}
		}
		return "", 0
	}
	// Named: up to 32 code points other than \t \n \f space < & # ;, then an optional ';'.
	end, count := 1, 0
	for _, r := range s[1:] {
		if count == 32 || r == '\t' || r == '\n' || r == '\f' || r == ' ' || r == '<' || r == '&' || r == '#' || r == ';' {
			break
		}
		end += len(string(r))
		count++
	}
	if count == 0 {
		return "", 0
	}
	if end < len(s) && s[end] == ';' {
		end++
	}
	name := s[1:end]
	if v, ok := html5Entity(name); ok {
		return v, end
	}
	// The longest prefix of at least 2 code points that is an entity.
	runes := []rune(name)
	for x := len(runes) - 1; x > 1; x-- {
		if v, ok := html5Entity(string(runes[:x])); ok {
			return v + string(runes[x:]), end
		}
	}
	return "&" + name, end
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func numericRef(digits string, base int) string {
	v, ok := new(big.Int).SetString(digits, base)
	if !ok || !v.IsInt64() || v.Int64() > 0x10FFFF {
		return "\uFFFD"
	}
	num := v.Int64()
	switch {
	case num == 0:
		return "\uFFFD"
	case num == 0x0D:
		return "\r"
	case 0x80 <= num && num <= 0x9F:
		return string(cp1252C1[num-0x80])
	case 0xD800 <= num && num <= 0xDFFF:
		return "\uFFFD"
	case 0x01 <= num && num <= 0x08, num == 0x0B, 0x0E <= num && num <= 0x1F, num == 0x7F,
		0xFDD0 <= num && num <= 0xFDEF, num&0xFFFE == 0xFFFE:
		return "" // Python's _invalid_codepoints
	}
	return string(rune(num))
}

// ftfyUnescape is ftfy's unescape_html: only references matching &#?[0-9A-Za-z]{1,24};
// are decoded. Named ones come from the HTML5 table (with ';'), plus the all-caps forms
// of lowercase names (&EACUTE; -> É) when Python's html.unescape would leave them alone;
// numeric ones decode only when html.unescape consumes the ';'.
func ftfyUnescape(s string) string {
	if !strings.Contains(s, "&") {
		return s
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '&')
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		s = s[i:]
		j := 1
		if j < len(s) && s[j] == '#' {
			j++
		}
		k := j
		for k < len(s) && k-j < 24 && isASCIIAlnum(s[k:k+1]) {
			k++
		}
		if k == j || k >= len(s) || s[k] != ';' {
			b.WriteByte('&')
			s = s[1:]
			continue
		}
		ref := s[:k+1]
		b.WriteString(ftfyEntity(ref))
		s = s[k+1:]
	}
}

func ftfyEntity(ref string) string {
	name := ref[1:]
	if v, ok := html5Entity(name); ok {
		return v
	}
	if strings.HasPrefix(ref, "&#") {
		if out := pyUnescape(ref); !strings.Contains(out, ";") {
			return out
		}
		return ref
	}
	body := strings.TrimSuffix(name, ";")
	if lower := strings.ToLower(body); lower != body && strings.ToUpper(lower) == body {
		if v, ok := html5Entity(lower + ";"); ok && pyUnescape(ref) == ref {
			return pyUpper(v)
		}
	}
	return ref
}
