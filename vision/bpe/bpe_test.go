package bpe

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode"
)

func TestByteToUnicodeIsABijectionOfVisibleRunes(t *testing.T) {
	seen := map[rune]bool{}
	for b, r := range ByteToUnicode {
		if seen[r] {
			t.Fatalf("rune %U used twice", r)
		}
		seen[r] = true
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			t.Errorf("byte %#x maps to invisible %U", b, r)
		}
		if UnicodeToByte[r] != byte(b) {
			t.Errorf("UnicodeToByte[%U] = %#x, want %#x", r, UnicodeToByte[r], b)
		}
	}
	// Fixed points from the table's definition: the 68 remapped bytes go to U+0100
	// upward in byte order, so byte 0 is U+0100, space (the 33rd) is U+0120 'Ġ', and
	// the soft hyphen 0xAD (the 68th) is U+0143 'Ń'.
	for b, want := range map[byte]rune{0: 0x100, ' ': 0x120, '\n': 0x10A, 0x7F: 0x121, 0xA0: 0x142, 0xAD: 0x143, 'a': 'a', 0xFF: 0xFF} {
		if ByteToUnicode[b] != want {
			t.Errorf("ByteToUnicode[%#x] = %U, want %U", b, ByteToUnicode[b], want)
		}
	}
	in := "héllo 한\n\x00"
	back, ok := Bytes(ByteString(in))
	if !ok || string(back) != in {
		t.Errorf("Bytes(ByteString(%q)) = %q, %v", in, back, ok)
	}
	if _, ok := Bytes("x\u4e00"); ok {
		t.Error("Bytes accepted a rune outside the table")
	}
}

// toy builds a model over single letters with merges in rank order.
func toy(merges ...string) *Model {
	m := New(0)
	for i, mg := range merges {
		a, b, _ := strings.Cut(mg, " ")
		m.AddMerge(a, b, i)
	}
	return m
}

func symbols(m *Model, word string) []int32 {
	var out []int32
	for _, r := range word {
		out = append(out, m.Intern(string(r)))
	}
	return out
}

func strs(m *Model, ids []int32) []string {
	var out []string
	for _, id := range ids {
		out = append(out, m.Symbol(id))
	}
	return out
}

func TestMergeOrderAndNonOverlap(t *testing.T) {
	cases := []struct {
		merges []string
		word   string
		want   []string
	}{
		// "a a" merges every occurrence left to right, without overlap: aaa -> aa a.
		{[]string{"a a"}, "aaa", []string{"aa", "a"}},
		// then "aa a" (rank 1) applies to the result.
		{[]string{"a a", "aa a"}, "aaa", []string{"aaa"}},
		// lowest rank first, wherever it is: "c d" (0) before "a b" (1); "ab cd" (2) last.
		{[]string{"c d", "a b", "ab cd"}, "abcd", []string{"abcd"}},
		// a pair without a rank stays split.
		{[]string{"a b"}, "abxab", []string{"ab", "x", "ab"}},
		{nil, "q", []string{"q"}},
	}
	for _, c := range cases {
		m := toy(c.merges...)
		got := strs(m, m.Merge(c.word, symbols(m, c.word)))
		if !slices.Equal(got, c.want) {
			t.Errorf("merges %v on %q: %v, want %v", c.merges, c.word, got, c.want)
		}
	}
}

func TestDuplicateMergeKeepsLastRank(t *testing.T) {
	// "b c" first has rank 0 (before "a b"), then is re-added with rank 2: the last wins,
	// so "a b" (rank 1) goes first on "abc".
	m := toy("b c", "a b")
	m.AddMerge("b", "c", 2)
	if got := strs(m, m.Merge("abc", symbols(m, "abc"))); !slices.Equal(got, []string{"ab", "c"}) {
		t.Errorf("got %v, want [ab c]", got)
	}
}

func TestMergeConcurrentAndCacheBounded(t *testing.T) {
	m := New(8)
	m.AddMerge("a", "b", 0)
	// Intern is build-time only: prepare every word before the goroutines start.
	words := map[string][]int32{}
	for i := 0; i < 50; i++ {
		w := fmt.Sprintf("ab%d", i)
		words[w] = symbols(m, w)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				w := fmt.Sprintf("ab%d", (g*200+i)%50)
				got := strs(m, m.Merge(w, words[w]))
				if got[0] != "ab" {
					t.Errorf("%q -> %v", w, got)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	m.mu.RLock()
	defer m.mu.RUnlock()
	if len(m.cache) > 8 {
		t.Errorf("cache holds %d entries, bound 8", len(m.cache))
	}
}

func TestByteOrder(t *testing.T) {
	// CLIP's vocabulary starts with '!' (id 0) and puts ',' at 11 (44 - 33); the first
	// remapped byte, 0x00, comes after the 188 printable ones.
	if ByteOrder[0] != '!' || ByteOrder[11] != ',' || ByteOrder[188] != 0 || ByteOrder[255] != 0xAD {
		t.Errorf("ByteOrder = %v", ByteOrder)
	}
	seen := map[byte]bool{}
	for _, b := range ByteOrder {
		seen[b] = true
	}
	if len(seen) != 256 {
		t.Errorf("ByteOrder holds %d distinct bytes", len(seen))
	}
}
