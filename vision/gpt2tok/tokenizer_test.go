package gpt2tok

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"synth/vision/bpe"
)

// The test vocabulary: OPT's four specials at 0..3, the 256 byte symbols at 4 + their
// byte value, and six merges whose results are ids 300..305. Expected ids below are
// derived by hand from these rules.
const (
	idGt    = 300 // "Ġt"  = merge 0: Ġ t
	idHe    = 301 // "he"  = merge 1: h e
	idGthe  = 302 // "Ġthe" = merge 2: Ġt he
	idLo    = 303 // "lo"  = merge 3: l o
	idAn2   = 304 // first two bytes of 안 (EC 95)
	idAn    = 305 // 안 (EC 95 88)
	idBOS   = 2   // "</s>", OPT's BOS and EOS
	idUNK   = 3
	idSpace = 4 + ' '
)

func b(c byte) int32 { return 4 + int32(c) }

func testVocab() (map[string]int32, [][2]string) {
	vocab := map[string]int32{"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
	for c := 0; c < 256; c++ {
		vocab[string(bpe.ByteToUnicode[c])] = b(byte(c))
	}
	an := "안"
	merges := [][2]string{
		{"Ġ", "t"}, {"h", "e"}, {"Ġt", "he"}, {"l", "o"},
		{bpe.ByteString(an[:1]), bpe.ByteString(an[1:2])},
		{bpe.ByteString(an[:2]), bpe.ByteString(an[2:3])},
	}
	for i, m := range merges {
		vocab[m[0]+m[1]] = int32(300 + i)
	}
	return vocab, merges
}

func testTokenizer(t *testing.T) *Tokenizer {
	t.Helper()
	vocab, merges := testVocab()
	tok, err := New(vocab, merges, Config{BOS: "</s>", EOS: "</s>", UNK: "<unk>", PAD: "<pad>", AddBOS: true, CleanUpSpaces: true})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestPretokenize(t *testing.T) {
	cases := map[string][]string{
		// \s+(?!\S) leaves the last space of a run to the word that follows
		"a\n\nb  c ": {"a", "\n", "\n", "b", " ", " c", " "},
		"it's 2024!": {"it", "'s", " 2024", "!"},
		// contractions are case-sensitive and ASCII-only; curly quotes are punctuation
		"IT'S we’re": {"IT", "'", "S", " we", "’", "re"},
		"한글 상품\t설명":  {"한글", " 상품", "\t", "설명"},
		" ...?!  ":   {" ...?!", "  "},
		"x\u00a0y":   {"x", "\u00a0", "y"},
	}
	for in, want := range cases {
		if got := pretokenize(in); !slices.Equal(got, want) {
			t.Errorf("pretokenize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEncodeHandChecked(t *testing.T) {
	tok := testTokenizer(t)
	cases := []struct {
		text string
		want []int32
	}{
		// h e merges (rank 1); "t" has no space so "Ġt he" cannot apply
		{"the", []int32{b('t'), idHe}},
		// Ġ t (0), then h e (1), then Ġt he (2)
		{" the", []int32{idGthe}},
		// "hello": h e (1) first, then l o (3): he l lo; " world" has no merges
		{"hello world", []int32{idHe, b('l'), idLo, idSpace, b('w'), b('o'), b('r'), b('l'), b('d')}},
		{"a\n\nb  c ", []int32{b('a'), b('\n'), b('\n'), b('b'), idSpace, idSpace, b('c'), idSpace}},
		// 안 = EC 95 88 merges whole; 녕 = EB 85 95 stays three bytes
		{"안녕", []int32{idAn, b(0xEB), b(0x85), b(0x95)}},
		// special tokens in the text are found before BPE
		{"a</s>the", []int32{b('a'), idBOS, b('t'), idHe}},
	}
	for _, c := range cases {
		if got := tok.Encode(c.text, false); !slices.Equal(got, c.want) {
			t.Errorf("Encode(%q) = %v, want %v", c.text, got, c.want)
		}
	}
	if got := tok.Encode(" the", true); !slices.Equal(got, []int32{idBOS, idGthe}) {
		t.Errorf("with special tokens: %v, want BOS first", got)
	}
}

func TestDecode(t *testing.T) {
	tok := testTokenizer(t)
	for _, s := range []string{"hello world", "a\n\nb  c ", "안녕 the", "it's 2024!"} {
		if got := tok.Decode(tok.Encode(s, false), DecodeOptions{}); got != s {
			t.Errorf("round trip %q -> %q", s, got)
		}
	}
	ids := tok.Encode("a</s>b", true)
	if got := tok.Decode(ids, DecodeOptions{}); got != "</s>a</s>b" {
		t.Errorf("keep special: %q", got)
	}
	if got := tok.Decode(ids, DecodeOptions{SkipSpecial: true}); got != "ab" {
		t.Errorf("skip special: %q", got)
	}
	// EC 95 is a truncated 3-byte sequence: one U+FFFD, as Python's errors="replace"
	if got := tok.Decode([]int32{idAn2, b('A')}, DecodeOptions{}); got != "\uFFFDA" {
		t.Errorf("partial UTF-8: %q", got)
	}
	if got := tok.Decode([]int32{b(0xFF), b(0x80)}, DecodeOptions{}); got != "\uFFFD\uFFFD" {
		t.Errorf("invalid bytes: %q", got)
	}
	if got := tok.Decode(tok.Encode("it 's fine , right ?", false), DecodeOptions{CleanUpSpaces: true}); got != "it's fine, right?" {
		t.Errorf("clean up: %q", got)
	}
}

func TestLoadFolder(t *testing.T) {
	vocab, merges := testVocab()
	dir := t.TempDir()
	write := func(name string, v any) {
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("vocab.json", vocab)
	var m strings.Builder
	m.WriteString("#version: 0.2\n")
	for _, p := range merges {
		m.WriteString(p[0] + " " + p[1] + "\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "merges.txt"), []byte(m.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	// OPT's files: specials as objects in special_tokens_map.json, strings in the config.
	write("special_tokens_map.json", map[string]any{
		"bos_token": map[string]any{"content": "</s>"}, "eos_token": "</s>", "unk_token": "</s>", "pad_token": "<pad>"})
	write("tokenizer_config.json", map[string]any{"add_bos_token": true, "bos_token": "</s>", "errors": "replace"})
	write("added_tokens.json", map[string]int32{"<image>": 400})
	tok, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := tok.Encode("<image> the", true); !slices.Equal(got, []int32{idBOS, 400, idGthe}) {
		t.Errorf("Load: Encode = %v", got)
	}
	if tok.BOS() != idBOS || tok.PAD() != 1 || !tok.CleanUpDefault() {
		t.Errorf("Load: bos %d pad %d cleanup %v", tok.BOS(), tok.PAD(), tok.CleanUpDefault())
	}
	if err := os.WriteFile(filepath.Join(dir, "merges.txt"), []byte("#v\na b c\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("bad merges line: %v", err)
	}
	if _, err := Load(t.TempDir()); err == nil {
		t.Error("empty folder: no error")
	}
}
