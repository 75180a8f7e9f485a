package llm

import (
	"strings"
	"testing"
)

func TestTranslationPrompt(t *testing.T) {
	g := NewGlossary([]GlossaryEntry{{"슬림핏", "slim fit"}, {"기모", "brushed fleece"}})
	sys := TranslationSystem(TranslateConfig{From: "ko", To: "en", Glossary: g})
	if !strings.HasPrefix(sys, "You translate Korean fashion product listings into English.") ||
		!strings.HasSuffix(sys, "(Korean = English):\n슬림핏 = slim fit\n기모 = brushed fleece") {
		t.Errorf("system turn:\n%s", sys)
	}
	if got := TranslationSystem(TranslateConfig{From: "ko", To: "en", System: "Translate.", Glossary: g}); !strings.HasPrefix(got, "Translate.\n\nTranslate these fashion terms") {
		t.Errorf("own instruction with the glossary:\n%s", got)
	}
	ko, en := TranslationShots("ko", "en"), TranslationShots("en", "ko")
	if len(ko) != 3 || len(en) != 3 || ko[1].Assistant != strings.TrimPrefix(en[1].User, fieldLabels[FieldText]+"\n") || len(TranslationShots("ko", "ja")) != 0 {
		t.Errorf("shots ko->en %q, en->ko %q", ko, en)
	}
	// The built-in examples are faithful by the check the records get.
	for _, s := range ko {
		src := s.User[strings.Index(s.User, "\n")+1:]
		if f := CheckFaithful(src, s.Assistant, false); f.OK && len(f.Missing) > 0 {
			t.Errorf("example %q loses %q", s.User, f.Missing)
		}
	}
	m := tinyModel(t)
	for _, cfg := range []TranslateConfig{{From: "ko", To: "xx"}, {From: "ko", To: "ko"}, {From: "ko", To: "en", Fields: []string{"text", "colour"}}, {From: "ko", To: "en", Fields: []string{"text", "text"}}} {
		if _, err := NewTranslator(m, cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}
