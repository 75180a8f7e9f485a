package llm

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "style.jsonl")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadExamples(t *testing.T) {
	p := writeFile(t, `{"keywords": ["blue jeans", " cotton ", ""], "text": " Slim blue jeans in cotton. "}

{"keywords": "wool, coat ,  double  breasted", "text": "A wool coat."}
`)
	ex, err := ReadExamples(p)
	if err != nil {
		t.Fatal(err)
	}
	want := []Example{
		{Keywords: []string{"blue jeans", "cotton"}, Text: "Slim blue jeans in cotton."},
		{Keywords: []string{"wool", "coat", "double breasted"}, Text: "A wool coat."},
	}
	if len(ex) != 2 || !slices.Equal(ex[0].Keywords, want[0].Keywords) || ex[0].Text != want[0].Text ||
		!slices.Equal(ex[1].Keywords, want[1].Keywords) || ex[1].Text != want[1].Text {
		t.Fatalf("examples %+v, want %+v", ex, want)
	}

	for name, content := range map[string]string{
		"bad json":    "{\"keywords\":\"a\",\"text\":\"b\"}\n{oops\n",
		"no text":     "{\"keywords\":\"a\",\"text\":\"b\"}\n{\"keywords\":\"a\"}\n",
		"no keywords": "{\"keywords\":\"a\",\"text\":\"b\"}\n{\"text\":\"b\"}\n",
		"number kw":   "{\"keywords\":\"a\",\"text\":\"b\"}\n{\"keywords\":3,\"text\":\"b\"}\n",
		"empty kw":    "{\"keywords\":\"a\",\"text\":\"b\"}\n{\"keywords\":[\" \"],\"text\":\"b\"}\n",
		"two values":  "{\"keywords\":\"a\",\"text\":\"b\"}\n{\"keywords\":\"a\",\"text\":\"b\"} {}\n",
	} {
		p := writeFile(t, content)
		if _, err := ReadExamples(p); !errors.Is(err, ErrExamples) || !strings.Contains(err.Error(), p+":2") {
			t.Errorf("%s: %v, want ErrExamples naming %s:2", name, err, p)
		}
	}
	if _, err := ReadExamples(writeFile(t, "\n\n")); !errors.Is(err, ErrExamples) {
		t.Errorf("empty file: %v", err)
	}
}

func TestUserTurn(t *testing.T) {
	got := UserTurn(Item{Keywords: []string{"red", " linen ", "midi dress"}, Category: "dress", Title: " Linen midi "})
	want := "Category: dress\nTitle: Linen midi\nKeywords: red, linen, midi dress"
	if got != want {
		t.Errorf("UserTurn = %q, want %q", got, want)
	}
	if got := UserTurn(Item{Keywords: []string{"wool"}}); got != "Keywords: wool" {
		t.Errorf("keywords only: %q", got)
	}
}

func TestPrompterSplitsAtTheSharedPrefix(t *testing.T) {
	fx := loadGreedyFixtures(t)[0]
	m := fx.model
	if got := DateLines(m.ChatTemplate()); got != "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n" {
		t.Errorf("DateLines = %q", got)
	}
	if DateLines("{{ messages }}") != "" {
		t.Error("DateLines found dates in a template without them")
	}
	examples := []Example{
		{Keywords: []string{"blue jeans", "cotton", "slim fit"}, Text: "These slim-fit blue jeans are made of soft cotton."},
		{Keywords: []string{"wool", "coat"}, Text: "A warm wool coat."},
	}
	for _, dates := range []bool{false, true} {
		p, err := NewPrompter(m, PromptConfig{Examples: examples, DateLines: dates})
		if err != nil {
			t.Fatal(err)
		}
		it := Item{Keywords: []string{"red", "linen", "midi dress"}, Category: "dress"}
		suffix, err := p.Suffix(it)
		if err != nil {
			t.Fatal(err)
		}
		full, err := m.ApplyChatTemplate("", p.Messages(it), true)
		if err != nil {
			t.Fatal(err)
		}
		all, _ := m.Tokenize(full, true, true)
		if !slices.Equal(append(p.Prefix(), suffix...), all) {
			t.Errorf("dates=%v: prefix + suffix is not the prompt's tokenization", dates)
		}
		// system, then each example as a user and an assistant turn, then the product.
		wantTurns := []string{"system", "user", "assistant", "user", "assistant", "user", "assistant"}
		var turns []string
		for _, part := range strings.Split(full, "<|start_header_id|>")[1:] {
			turns = append(turns, part[:strings.Index(part, "<|end_header_id|>")])
		}
		if !slices.Equal(turns, wantTurns) {
			t.Errorf("turns %v, want %v", turns, wantTurns)
		}
		if !strings.Contains(full, DefaultSystem) || !strings.Contains(full, "Keywords: blue jeans, cotton, slim fit<|eot_id|>") ||
			!strings.HasSuffix(full, "Category: dress\nKeywords: red, linen, midi dress<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n") {
			t.Errorf("prompt text:\n%s", full)
		}
		if strings.Contains(full, "Cutting Knowledge Date") != dates {
			t.Errorf("dates=%v, prompt:\n%s", dates, full)
		}
		if p.Prefix()[0] != m.BOS() {
			t.Error("prefix does not start with BOS")
		}
		if _, err := p.Suffix(Item{Keywords: []string{" "}}); err == nil {
			t.Error("product without keywords accepted")
		}
	}
	if _, err := NewPrompter(m, PromptConfig{System: "Be brief.", Examples: examples}); err != nil {
		t.Fatal(err)
	}
}
