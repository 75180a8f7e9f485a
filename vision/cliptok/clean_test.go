package cliptok

import "testing"

// Expected values were produced by CPython 3.11's html.unescape and str.lower/upper.
func TestPyUnescape(t *testing.T) {
	cases := map[string]string{
		"&amp": "&", "&amp;": "&", "&ampx": "&x", "&notin": "¬in", "&notit;": "¬it;",
		"&#65abc": "Aabc", "&#x41;": "A", "&#1;": "", "&#0;": "\uFFFD", "&#x80;": "€",
		"&#xD800;": "\uFFFD", "&#99999999999;": "\uFFFD", "&EACUTE;": "&EACUTE;",
		"&Eacute;": "É", "&eacute": "é", "&lt3": "<3", "&bogus;": "&bogus;", "&#": "&#",
		"&#x;": "&#x;", "&semi;": ";", "&NotNestedGreaterGreater;": "⪢̸",
		"&amp;amp;": "&amp;", "a & b": "a & b", "&szlig;&SZLIG;": "ß&SZLIG;",
		"&#13;": "\r", "&#xfffe;": "", "&AElig": "Æ", "&aeligx": "æx",
	}
	for in, want := range cases {
		if got := pyUnescape(in); got != want {
			t.Errorf("pyUnescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPyCase(t *testing.T) {
	if got := pyLower("ΟΔΟΣ Σ ΑΣ. σΣ İ"); got != "οδος σ ας. σς i̇" {
		t.Errorf("pyLower = %q", got)
	}
	if got := pyUpper("ß ﬀ"); got != "SS FF" {
		t.Errorf("pyUpper = %q", got)
	}
}

// ftfy behaviours that tokenizer.json does not exercise, from ftfy's documented examples
// and the rules in doc.go.
func TestFixText(t *testing.T) {
	cases := []struct{ in, want string }{
		// all-caps entity names of lowercase entities; numeric references via cp1252
		{"P&EACUTE;REZ &#x92;s &SZLIG;", "PÉREZ 's SS"},
		// only references ending in ';' are ftfy's business
		{"AT&T &amp R&D", "AT&T &amp R&D"},
		// '<' turns unescaping off for its line and every later one, not earlier ones
		{"a &amp; b\n<p> &amp;\nc &amp; d", "a & b\n<p> &amp;\nc &amp; d"},
		{"\x1b[31mred\x1b[0m and\x1b[1;4mbold", "red andbold"},
		{"C1 \u0085 \u0096 \u0081", "C1 … – \u0081"},
		{"line\r\nbreak\rmore\u2028end", "line\nbreak\nmore\nend"},
		{"ＬＯＵＤ　ＮＯＩＳＥＳ ｶﾀｶﾅ", "LOUD NOISES カタカナ"},
		{"e\u0301", "é"},
		// double mojibake, then the curly quote
		{"doesnÃ¢â‚¬â„¢t", "doesn't"},
		// Latin-1 mojibake of Korean; cp1251 mojibake of Russian (UTF-8 read as cp1251)
		{"ì\u0095\u0088ë\u0085\u0095", "안녕"},
		{"РїСЂРёРІРµС‚", "привет"},
		// a lost byte (0x1A / U+FFFD) in sloppy-1252 mojibake becomes one U+FFFD
		{"caf\u00c3\ufffd", "caf\ufffd"},
		// genuine Latin-1 text is not valid UTF-8 once encoded, so it stays
		{"Crème brûlée, naïve", "Crème brûlée, naïve"},
	}
	for _, c := range cases {
		if got := fixText(c.in); got != c.want {
			t.Errorf("fixText(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestCleanInvalidUTF8(t *testing.T) {
	if got := Clean("a\xffb"); got != "a\ufffdb" {
		t.Errorf("Clean of invalid UTF-8 = %q", got)
	}
}
