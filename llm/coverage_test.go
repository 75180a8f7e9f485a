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

// Korean keywords against Korean text: particles and endings attached to the words,
// stems of adjectives, compounds with and without spaces, and words that merely start
// like a keyword (false friends), which must stay misses.
func TestCoverageKorean(t *testing.T) {
	decomposed := "\u110E\u1165\u11BC\u1107\u1161\u110C\u1175\u1102\u1173\u11AB" // 청바지는 typed as conjoining jamo
	cases := []struct {
		name     string
		keywords []string
		text     string
		missing  []string
	}{
		// hits
		{"issue example", []string{"파란색 청바지", "면", "슬림핏"}, "이 파란색 청바지는 면으로 만든 슬림핏 바지입니다.", nil},
		{"particle chains", []string{"코트", "니트", "셔츠"}, "코트에서는 니트이며 셔츠들도 함께", nil},
		{"compound written apart", []string{"슬림핏"}, "슬림 핏으로 떨어지는 실루엣", nil},
		{"keyword written apart", []string{"슬림 핏"}, "슬림핏 청바지", nil},
		{"compound head", []string{"청바지"}, "파란색청바지를 소개합니다", nil},
		{"hada adjective", []string{"따뜻한 기모"}, "기모 안감이 있어 따뜻하고 포근합니다", nil},
		{"b-irregular vowel", []string{"부드러운"}, "촉감이 부드러워서 좋아요", nil},
		{"b-irregular consonant", []string{"부드러운"}, "부드럽고 가벼운 소재", nil},
		{"consonant stem", []string{"짧은 소매"}, "소매가 짧고 시원합니다", nil},
		{"l-irregular", []string{"긴 소매"}, "소매가 길어서 따뜻합니다", nil},
		{"numbers and Latin", []string{"면 100%", "XL"}, "면 100%로 만든 XL 사이즈", nil},
		{"conjoining jamo", []string{"청바지"}, decomposed, nil},
		// misses
		{"absent", []string{"울", "셔츠"}, "면으로 만든 셔츠", []string{"울"}},
		{"other colour", []string{"파란색 청바지"}, "빨간색 청바지", []string{"파란색 청바지"}},
		{"comma splits a compound", []string{"슬림핏"}, "슬림, 핏이 좋은", []string{"슬림핏"}},
		// false friends
		{"one syllable inside a word", []string{"면"}, "양면으로 입을 수 있는 측면 포켓", []string{"면"}},
		{"one syllable starting another word", []string{"면"}, "면접에 어울리는 셔츠", []string{"면"}},
		{"negating prefix", []string{"가죽"}, "인조가죽 소재의 가방", []string{"가죽"}},
		{"longer noun", []string{"바지", "울", "핏", "니트"}, "바지락 울타리 핏줄 니트릴 장갑", []string{"바지", "울", "핏", "니트"}},
		{"stem is not a prefix", []string{"긴"}, "기모 안감", []string{"긴"}},
	}
	for _, c := range cases {
		r := CoverageWith(c.keywords, c.text, nil)
		want := float64(len(c.keywords)-len(c.missing)) / float64(len(c.keywords))
		if !r.OK || r.Frac != want || !slices.Equal(r.Missing, c.missing) || r.Glossary != nil {
			t.Errorf("%s: Coverage(%q, %q) = %v, missing %q, glossary %q; want %v, missing %q", c.name, c.keywords, c.text, r.Frac, r.Missing, r.Glossary, want, c.missing)
		}
	}
}

// Across languages, keywords are found through the glossary, and the result says so.
func TestCoverageThroughGlossary(t *testing.T) {
	g := NewGlossary([]GlossaryEntry{{"슬림핏", "slim fit"}, {"기모", "brushed fleece"}, {"청바지", "jeans"}, {"파란색", "blue"}})
	cases := []struct {
		keywords []string
		text     string
		missing  []string
		notes    []string
	}{
		{[]string{"slim fit"}, "슬림핏 청바지", nil, []string{"slim fit = 슬림핏"}},
		{[]string{"슬림핏", "면"}, "Slim-fit jeans in cotton.", []string{"면"}, []string{"슬림핏 = slim fit"}},
		{[]string{"파란색 청바지"}, "Blue jeans.", nil, []string{"파란색 청바지: 파란색 = blue, 청바지 = jeans"}},
		{[]string{"파란색 청바지"}, "파란색 jeans", nil, []string{"파란색 청바지: 청바지 = jeans"}},
		{[]string{"기모"}, "A brushed cotton shirt.", []string{"기모"}, nil}, // half a translation is no match
		{[]string{"슬림핏"}, "슬림핏 청바지", nil, nil},                           // found as written: no note
	}
	for _, c := range cases {
		r := CoverageWith(c.keywords, c.text, g)
		want := float64(len(c.keywords)-len(c.missing)) / float64(len(c.keywords))
		if !r.OK || r.Frac != want || !slices.Equal(r.Missing, c.missing) || !slices.Equal(r.Glossary, c.notes) {
			t.Errorf("Coverage(%q, %q) = %v, missing %q, notes %q; want %v, %q, %q", c.keywords, c.text, r.Frac, r.Missing, r.Glossary, want, c.missing, c.notes)
		}
	}
	if r := CoverageWith([]string{"slim fit"}, "슬림핏 청바지", nil); r.Frac != 0 {
		t.Errorf("without a glossary an English keyword matched Korean text: %+v", r)
	}
}
