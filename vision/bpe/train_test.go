package bpe

import "testing"

func TestTrainMergesMostFrequentPairsFirst(t *testing.T) {
	words := map[string][]string{}
	counts := map[string]int{"low": 5, "lower": 2, "newest": 6, "widest": 3}
	for w := range counts {
		words[w] = Symbols(w, "</w>")
	}
	got := Train(words, counts, 4)
	// pair counts: "s t</w>" 9 (newest 6 + widest 3) = "e s" 9; tie broken by text:
	// "e s" < "s t</w>". Then "es t</w>" 9, then "l o" 7, then a three-way tie at 6
	// (n e, e w, w est</w> in newest) goes to the smallest text, "e w".
	want := [][2]string{{"e", "s"}, {"es", "t</w>"}, {"l", "o"}, {"e", "w"}}
	if len(got) != len(want) {
		t.Fatalf("merges %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("merge %d = %v, want %v (all %v)", i, got[i], want[i], got)
		}
	}
	// Training stops when every word is a single symbol.
	all := Train(map[string][]string{"ab": Symbols("ab", "")}, nil, 10)
	if len(all) != 1 || all[0] != [2]string{"a", "b"} {
		t.Fatalf("single word: %v", all)
	}
	if s := Symbols(" \n", ""); s[0] != "Ġ" || s[1] != "Ċ" {
		t.Fatalf("byte symbols %q", s)
	}
}
