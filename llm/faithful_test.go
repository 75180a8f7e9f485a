package llm

import (
	"slices"
	"testing"
)

// Hand-written source/translation pairs: kept numbers, units in other spellings, kept
// brand names and codes, and each way of losing one.
func TestCheckFaithful(t *testing.T) {
	cases := []struct {
		name, src, out string
		latin          bool // the source language is written in Latin script
		required       int
		missing        []string
	}{
		{"all kept", "부드러운 기모 안감의 슬림핏 청바지입니다. 허리 32인치, 총장 101cm이며 면 98%, 스판덱스 2%.",
			"Slim fit jeans with a soft brushed fleece lining. Waist 32 inches, total length 101 cm, 98% cotton and 2% spandex.", false, 7, nil},
		{"dropped number", "허리 32인치, 총장 101cm", "Waist 32 inches.", false, 4, []string{"101", "cm"}},
		{"changed number", "허리 32인치", "Waist 23 inches.", false, 2, []string{"32"}},
		{"dropped unit", "총장 101cm", "Total length 101.", false, 2, []string{"cm"}},
		{"unit spellings", "무게 1.5키로, 길이 30센치, 2,000 ml, 20℃", "Weight 1.5 kg, length 30cm, 2000 milliliters, 20°C", false, 8, nil},
		{"thousands", "가격 12,500원", "Price: 12500 won", false, 1, nil},
		{"full-width", "면 １００％", "100% cotton", false, 2, nil},
		{"brand and size", "나이키 GORE-TEX 자켓 XL 사이즈", "Nike Gore-Tex jacket, size XL", false, 2, nil},
		{"brand lost", "H&M 니트, 모델 A123", "H and M knit, model A123", false, 2, []string{"H&M"}},
		{"word inside another is not kept", "XL 사이즈", "XXL size", false, 1, []string{"XL"}},
		{"inch needs a number", "32인치", "32, in a slim cut", false, 2, []string{"인치"}},
		{"metres are not minutes", "5m", "5 minutes", false, 2, []string{"m"}},
		// a Latin-script source keeps its numbers and units; its words are translated
		{"English source", "Waist 32 inches, 98% cotton, made by Levi's", "허리 32인치, 면 98%, 리바이스 제품", true, 4, nil},
		{"English source, lost unit", "Length 70 cm", "기장 70", true, 2, []string{"cm"}},
	}
	for _, c := range cases {
		f := CheckFaithful(c.src, c.out, c.latin)
		want := float64(c.required-len(c.missing)) / float64(c.required)
		if !f.OK || f.Required != c.required || !slices.Equal(f.Missing, c.missing) || f.Score != want {
			t.Errorf("%s: CheckFaithful(%q, %q) = %+v; want %d required, missing %q", c.name, c.src, c.out, f, c.required, c.missing)
		}
	}
	if f := CheckFaithful("부드러운 기모 청바지", "soft brushed fleece jeans", false); f.OK || f.Required != 0 {
		t.Errorf("nothing to check: %+v", f)
	}
}

func TestParseKeywordList(t *testing.T) {
	for _, c := range []struct {
		text string
		n    int
		want []string
	}{
		{"1. blue jeans\n2. 100% cotton\n3. slim fit", 3, []string{"blue jeans", "100% cotton", "slim fit"}},
		{"1) blue jeans\n\n- cotton\n* slim fit\n", 3, []string{"blue jeans", "cotton", "slim fit"}},
		{"blue jeans; cotton; slim fit", 3, []string{"blue jeans", "cotton", "slim fit"}},
		{"blue jeans, cotton", 2, []string{"blue jeans", "cotton"}},
		{"1. size 95", 1, []string{"size 95"}},
	} {
		got, err := ParseKeywordList(c.text, c.n)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("ParseKeywordList(%q, %d) = %q, %v; want %q", c.text, c.n, got, err, c.want)
		}
	}
	for _, c := range []struct {
		text string
		n    int
	}{{"1. blue jeans\n2. cotton", 3}, {"blue jeans, cotton, slim fit", 2}, {"", 1}} {
		if got, err := ParseKeywordList(c.text, c.n); err == nil {
			t.Errorf("ParseKeywordList(%q, %d) = %q, want an error", c.text, c.n, got)
		}
	}
}
