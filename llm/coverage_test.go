package llm

import (
	"slices"
	"testing"
)

func TestCoverage(t *testing.T) {
	cases := []struct {
		keywords []string
		text     string
		want     float64
		missing  []string
	}{
		{[]string{"blue jeans", "cotton", "slim fit"}, "These slim-fit blue jeans are made of soft cotton.", 1, nil},
		{[]string{"blue jeans", "cotton", "slim fit"}, "Blue jeans with a relaxed fit.", 1.0 / 3, []string{"cotton", "slim fit"}},
		{[]string{"puff sleeves", "V-Neck", "dresses"}, "A dress with a puff sleeve and a v neck.", 1, nil},
		{[]string{"women's", "pockets", "boxes", "accessories"}, "Womens accessory with a pocket and a box.", 1, nil},
		{[]string{"100% cotton", "3/4 sleeves"}, "Made of 100 % cotton with 3/4 sleeves.", 1, nil},
		{[]string{"the", "and", "wool"}, "A cotton shirt.", 0, []string{"wool"}}, // stop-word keywords do not count
		{[]string{"denim"}, "Blue jeans.", 0, []string{"denim"}},
	}
	for _, c := range cases {
		got, missing, ok := Coverage(c.keywords, c.text)
		if !ok || got != c.want || !slices.Equal(missing, c.missing) {
			t.Errorf("Coverage(%q, %q) = %v, missing %q, ok %v; want %v, %q", c.keywords, c.text, got, missing, ok, c.want, c.missing)
		}
	}
	if _, _, ok := Coverage([]string{"the", " "}, "anything"); ok {
		t.Error("coverage defined without content words")
	}
	if _, _, ok := Coverage(nil, "anything"); ok {
		t.Error("coverage defined without keywords")
	}
}

func TestStemMapsPluralsTogether(t *testing.T) {
	for _, pair := range [][2]string{
		{"sleeves", "sleeve"}, {"pockets", "pocket"}, {"accessories", "accessory"}, {"boxes", "box"},
		{"watches", "watch"}, {"dresses", "dress"}, {"glass", "glass"}, {"status", "status"},
	} {
		if stem(pair[0]) != stem(pair[1]) {
			t.Errorf("stem(%q) = %q, stem(%q) = %q", pair[0], stem(pair[0]), pair[1], stem(pair[1]))
		}
	}
}
