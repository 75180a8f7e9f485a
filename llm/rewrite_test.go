package llm

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"synth/dataset"
)

func TestReadGlossary(t *testing.T) {
	p := writeFile(t, "\uFEFF# fashion terms\n슬림핏\tslim fit\n\n기모\t brushed  fleece \n슬림 핏\tslim-fit\n기모\tbrushed fleece\n")
	g, err := ReadGlossary(p)
	if err != nil {
		t.Fatal(err)
	}
	if g.Len() != 3 || g.Path != p {
		t.Errorf("entries %+v", g.Entries)
	}
	if got := g.Lookup("슬림핏"); !slices.Equal(got, []string{"slim fit", "slim-fit"}) {
		t.Errorf("Lookup(슬림핏) = %q", got)
	}
	if got := g.Lookup("Brushed Fleece"); !slices.Equal(got, []string{"기모"}) {
		t.Errorf("Lookup(Brushed Fleece) = %q", got)
	}
	if g.Lookup("denim") != nil || (*Glossary)(nil).Lookup("기모") != nil {
		t.Error("lookup of an absent term")
	}
	if got := g.PromptLines(); got != "슬림핏 = slim fit\n기모 = brushed fleece\n슬림 핏 = slim-fit\n" {
		t.Errorf("PromptLines = %q", got)
	}
	for name, content := range map[string]string{
		"one column":    "슬림핏\tslim fit\n기모\n",
		"three columns": "슬림핏\tslim fit\n기모\tfleece\tx\n",
		"empty term":    "슬림핏\tslim fit\n \tfleece\n",
	} {
		p := writeFile(t, content)
		if _, err := ReadGlossary(p); !errors.Is(err, ErrGlossary) || !strings.Contains(err.Error(), p+":2") {
			t.Errorf("%s: %v, want ErrGlossary naming %s:2", name, err, p)
		}
	}
	if _, err := ReadGlossary(writeFile(t, "# nothing\n")); !errors.Is(err, ErrGlossary) {
		t.Errorf("empty glossary: %v", err)
	}
}

// The examples drawn from a dataset depend on the seed and the ids only: the same for a
// seed whatever the manifest order, different across seeds, always products with both
// a text and keywords.
func TestExamplesFromIsDeterministicPerSeed(t *testing.T) {
	var products []dataset.Product
	for i := 0; i < 40; i++ {
		p := dataset.Product{ID: fmt.Sprintf("src%02d", i), Text: fmt.Sprintf("설명 %d", i), Keywords: []string{"면", fmt.Sprint("키워드", i)}}
		switch i % 10 {
		case 3:
			p.Text = " "
		case 7:
			p.Keywords = []string{" "}
		}
		products = append(products, p)
	}
	reversed := slices.Clone(products)
	slices.Reverse(reversed)
	draws := map[uint64][]string{}
	for seed := uint64(0); seed < 5; seed++ {
		ex, ids, err := ExamplesFrom(products, 4, seed)
		if err != nil {
			t.Fatal(err)
		}
		_, again, _ := ExamplesFrom(reversed, 4, seed)
		if !slices.Equal(ids, again) {
			t.Errorf("seed %d: %v, and %v from the reversed manifest", seed, ids, again)
		}
		for i, id := range ids {
			var n int
			fmt.Sscanf(id, "src%d", &n)
			if n%10 == 3 || n%10 == 7 || ex[i].Text != fmt.Sprintf("설명 %d", n) || len(ex[i].Keywords) != 2 {
				t.Errorf("seed %d drew %s: %+v", seed, id, ex[i])
			}
		}
		for s, prev := range draws {
			if slices.Equal(prev, ids) {
				t.Errorf("seeds %d and %d drew the same examples %v", s, seed, ids)
			}
		}
		draws[seed] = ids
	}
	if _, _, err := ExamplesFrom(products, 33, 0); err == nil || !strings.Contains(err.Error(), "32 products") {
		t.Errorf("more shots than candidates: %v", err)
	}
}

func TestKoreanRewritePrompt(t *testing.T) {
	if got := UserTurnIn("ko", Item{Keywords: []string{"파란색 청바지", "면"}, Category: "바지", Title: "데님"}); got != "카테고리: 바지\n상품명: 데님\n키워드: 파란색 청바지, 면" {
		t.Errorf("Korean user turn %q", got)
	}
	m := tinyModel(t)
	p, err := NewPrompter(m, PromptConfig{Lang: "ko", Examples: DefaultExamples("ko")})
	if err != nil {
		t.Fatal(err)
	}
	full, err := m.ApplyChatTemplate("", p.Messages(Item{Keywords: []string{"울", "코트"}}), true)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(full, DefaultSystemKo) || !strings.Contains(full, "키워드: 파란색 청바지, 면, 슬림핏<|eot_id|>") ||
		!strings.HasSuffix(full, "키워드: 울, 코트<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n") {
		t.Errorf("Korean prompt:\n%s", full)
	}
	if _, err := NewPrompter(m, PromptConfig{Lang: "fr"}); err == nil {
		t.Error("rewrite language fr accepted")
	}
}
