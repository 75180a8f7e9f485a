package llm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"synth/dataset"
	"synth/llm/llamacpp"
)

// The product fields a translation can translate.
const (
	FieldText     = "text"
	FieldTitle    = "title"
	FieldKeywords = "keywords"
	FieldCategory = "category"
)

// TranslateFields are the fields TranslateConfig.Fields may name; the first three are
// translated by default.
var TranslateFields = []string{FieldText, FieldTitle, FieldKeywords, FieldCategory}

// TranslateConfig is one translation run.
type TranslateConfig struct {
	From, To string   // language codes (LanguageCodes), e.g. "ko" and "en"
	Fields   []string // fields to translate (nil: text, title, keywords)
	// Glossary goes into the system turn, so its terms are translated as listed.
	Glossary *Glossary
	// System replaces the built-in instruction (the glossary is still appended).
	System    string
	DateLines bool // see PromptConfig
	Model     string
	Params    GenParams
	// Image maps an image path of the input manifest to the path the output records
	// (relative to the output's folder); nil keeps paths as they are.
	Image func(string) string
}

// TranslateParams are a translation record's parameters.
type TranslateParams struct {
	GenParams
	From     string   `json:"from"`
	To       string   `json:"to"`
	Fields   []string `json:"fields"`
	Shots    int      `json:"shots"` // built-in example translations in the prompt
	Glossary string   `json:"glossary,omitempty"`
	Terms    int      `json:"glossary_terms,omitempty"`
}

// FieldTranslation is what the record says about one translated field.
type FieldTranslation struct {
	ItemSeed     uint32   `json:"item_seed"`
	PromptTokens int      `json:"prompt_tokens"`
	GenTokens    int      `json:"gen_tokens"`
	MS           int64    `json:"ms"`
	FinishReason string   `json:"finish_reason,omitempty"`
	Attempts     int      `json:"attempts"`
	Faithfulness *float64 `json:"faithfulness,omitempty"` // absent when there was nothing to check
	Missing      []string `json:"missing,omitempty"`
	// LowFaithfulness: still below --min-faithful after the retry.
	LowFaithfulness bool   `json:"low_faithfulness,omitempty"`
	Error           string `json:"error,omitempty"`
}

// TranslationRecord is one line of `synth translate`'s output. It is a manifest line
// (dataset.Product: the translated fields replace the originals, lang is the target
// language, image paths are relative to the output's folder) followed by the originals
// as "<field>_<from>" (text_ko, keywords_ko, ...) and the run's details.
type TranslationRecord struct {
	dataset.Product
	From      string
	Originals map[string]any // field -> original value
	Fields    []string       // the originals' order
	Model     string
	Params    TranslateParams
	// Translation has one entry per field that was translated.
	Translation map[string]*FieldTranslation
	// Faithful: every field kept every number, unit and Latin-script word (and the
	// keyword list its length); Missing lists what was lost as "field: item".
	Faithful bool
	Missing  []string
	Note     string // e.g. why nothing was translated
	Error    string
}

// MarshalJSON writes the manifest fields first, then "<field>_<from>" for each
// original, then the run's details, in a fixed order.
func (r TranslationRecord) MarshalJSON() ([]byte, error) {
	prod, err := json.Marshal(r.Product)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.Write(prod[:len(prod)-1])
	add := func(key string, v any) error {
		js, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(key)
		b.Write(k)
		b.WriteByte(':')
		b.Write(js)
		return nil
	}
	var errs []error
	for _, f := range r.Fields {
		if v, ok := r.Originals[f]; ok {
			errs = append(errs, add(f+"_"+r.From, v))
		}
	}
	errs = append(errs, add("model", r.Model), add("params", r.Params))
	if len(r.Translation) > 0 {
		errs = append(errs, add("translation", r.Translation))
	}
	if r.Error == "" {
		errs = append(errs, add("faithful", r.Faithful))
	}
	if len(r.Missing) > 0 {
		errs = append(errs, add("missing", r.Missing))
	}
	if r.Note != "" {
		errs = append(errs, add("note", r.Note))
	}
	if r.Error != "" {
		errs = append(errs, add("error", r.Error))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// translateSystem is the built-in instruction; %[1]s is the source language, %[2]s the
// target.
const translateSystem = "You translate %[1]s fashion product listings into %[2]s. " +
	"Translate the text after the label completely and faithfully: do not add, drop, summarise or explain anything. " +
	"Keep every number, size, measurement and percentage exactly as written, write units in their usual %[2]s form " +
	"(cm, mm, kg, inch, %%), and keep brand names, model names, codes and sizes written in Latin letters as they are. " +
	"When the message is a numbered list of keywords, reply with a numbered list of the same length, each line the " +
	"translation of the keyword with the same number. Reply with the translation only, without the label, quotes or comments."

// TranslationSystem is the system turn of a translation prompt: the instruction (cfg's
// or the built-in one) and the glossary.
func TranslationSystem(cfg TranslateConfig) string {
	s := cfg.System
	if strings.TrimSpace(s) == "" {
		s = fmt.Sprintf(translateSystem, LanguageName(cfg.From), LanguageName(cfg.To))
	}
	if cfg.Glossary.Len() > 0 {
		s += fmt.Sprintf("\n\nTranslate these fashion terms as listed (%s = %s):\n%s", LanguageName(cfg.From), LanguageName(cfg.To), cfg.Glossary.PromptLines())
	}
	return strings.TrimRight(s, "\n")
}

// fieldLabels start a translation's user turn, naming what follows.
var fieldLabels = map[string]string{
	FieldText: "Product description:", FieldTitle: "Product title:", FieldKeywords: "Keywords:", FieldCategory: "Product category:",
}

// TranslationTurn is the user turn asking for a field's translation.
func TranslationTurn(field, text string) string { return fieldLabels[field] + "\n" + text }

// KeywordList numbers keywords one a line, the form the prompt asks the answer in.
func KeywordList(kw []string) string {
	var b strings.Builder
	for i, k := range kw {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%d. %s", i+1, k)
	}
	return b.String()
}

// translationPair is a built-in example in both languages.
type translationPair struct{ field, ko, en string }

// shotsKoEn show the model the kept numbers, units, codes and brand names, the glossary
// style and the numbered keyword list.
var shotsKoEn = []translationPair{
	{FieldTitle, "나이키 에어 기모 조거 팬츠 XL", "Nike Air brushed fleece jogger pants XL"},
	{FieldText, "부드러운 기모 안감의 슬림핏 청바지입니다. 허리 32인치, 총장 101cm이며 면 98%, 스판덱스 2%로 신축성이 좋습니다.",
		"Slim fit jeans with a soft brushed fleece lining. Waist 32 inches, total length 101 cm, 98% cotton and 2% spandex for good stretch."},
	{FieldKeywords, KeywordList([]string{"파란색 청바지", "면 100%", "슬림핏", "GORE-TEX 안감"}),
		KeywordList([]string{"blue jeans", "100% cotton", "slim fit", "GORE-TEX lining"})},
}

// TranslationShots are the built-in examples for a language pair: Korean to English
// and back; none for other pairs.
func TranslationShots(from, to string) []Shot {
	var out []Shot
	for _, p := range shotsKoEn {
		switch {
		case from == "ko" && to == "en":
			out = append(out, Shot{User: TranslationTurn(p.field, p.ko), Assistant: p.en})
		case from == "en" && to == "ko":
			out = append(out, Shot{User: TranslationTurn(p.field, p.en), Assistant: p.ko})
		}
	}
	return out
}

// CheckFields checks a list of fields to translate.
func CheckFields(fields []string) error {
	if len(fields) == 0 {
		return errors.New("llm: translate: no field to translate")
	}
	for i, f := range fields {
		if !slices.Contains(TranslateFields, f) {
			return fmt.Errorf("llm: translate: unknown field %q (fields: %s)", f, strings.Join(TranslateFields, ", "))
		}
		if slices.Contains(fields[:i], f) {
			return fmt.Errorf("llm: translate: field %q given twice", f)
		}
	}
	return nil
}

// Translator turns products into translation tasks (one part per field present) and
// their results into TranslationRecords (a Recorder for RunJob).
type Translator struct {
	cfg         TranslateConfig
	params      TranslateParams
	p           *Prompter
	sourceLatin bool
}

// NewTranslator checks cfg and builds the prompt's shared prefix: the instruction, the
// glossary and the built-in examples.
func NewTranslator(m *llamacpp.Model, cfg TranslateConfig) (*Translator, error) {
	if LanguageName(cfg.From) == "" || LanguageName(cfg.To) == "" {
		return nil, fmt.Errorf("llm: translate %q to %q: languages are %s", cfg.From, cfg.To, strings.Join(LanguageCodes(), ", "))
	}
	if cfg.From == cfg.To {
		return nil, fmt.Errorf("llm: translate: source and target language are both %q", cfg.From)
	}
	if len(cfg.Fields) == 0 {
		cfg.Fields = TranslateFields[:3]
	}
	if err := CheckFields(cfg.Fields); err != nil {
		return nil, err
	}
	shots := TranslationShots(cfg.From, cfg.To)
	p, err := NewChatPrompter(m, TranslationSystem(cfg), shots, cfg.DateLines)
	if err != nil {
		return nil, err
	}
	params := TranslateParams{GenParams: cfg.Params, From: cfg.From, To: cfg.To, Fields: cfg.Fields, Shots: len(shots)}
	if cfg.Glossary != nil {
		params.Glossary, params.Terms = cfg.Glossary.Path, cfg.Glossary.Len()
	}
	return &Translator{cfg: cfg, params: params, p: p, sourceLatin: languages[cfg.From].latin}, nil
}

// Prefix is the shared prefix's tokens.
func (tr *Translator) Prefix() []llamacpp.Token { return tr.p.Prefix() }

// Params are the parameters the records carry.
func (tr *Translator) Params() TranslateParams { return tr.params }

// SetContext records the positions per product, known once the prefix is.
func (tr *Translator) SetContext(ctxPerSeq int) { tr.params.Ctx = ctxPerSeq }

// source is a field's original value: a string, or the keyword list.
func source(p dataset.Product, field string) (text string, list []string) {
	switch field {
	case FieldText:
		return strings.TrimSpace(p.Text), nil
	case FieldTitle:
		return strings.TrimSpace(p.Title), nil
	case FieldCategory:
		return strings.TrimSpace(p.Category), nil
	}
	kw := CleanKeywords(p.Keywords)
	return KeywordList(kw), kw
}

// Task is a product's translation: one part per configured field the product has. A
// product already in the target language, or with none of the fields, has no part and
// is recorded as it is.
func (tr *Translator) Task(p dataset.Product) *Task {
	t := &Task{ID: p.ID, Data: p}
	if p.Lang == tr.cfg.To {
		return t
	}
	for _, f := range tr.cfg.Fields {
		text, list := source(p, f)
		if text == "" || (f == FieldKeywords && len(list) == 0) {
			continue
		}
		suffix, err := tr.p.SuffixFor(TranslationTurn(f, text))
		if err != nil {
			t.Err = fmt.Errorf("%s: %w", f, err)
			t.Parts = nil
			return t
		}
		t.Parts = append(t.Parts, Part{Name: f, Suffix: suffix})
	}
	return t
}

// Score is the faithfulness of a field's translation; a keyword list that does not
// come back with one line per keyword scores 0.
func (tr *Translator) Score(t *Task, part int, text string) (float64, bool) {
	f := tr.check(t, part, text)
	return f.Score, f.OK
}

func (tr *Translator) check(t *Task, part int, text string) Faithfulness {
	field := t.Parts[part].Name
	src, list := source(t.Data.(dataset.Product), field)
	if field == FieldKeywords {
		got, err := ParseKeywordList(text, len(list))
		if err != nil {
			return Faithfulness{OK: true, Required: 1, Missing: []string{err.Error()}}
		}
		src, text = strings.Join(list, "\n"), strings.Join(got, "\n")
	}
	return CheckFaithful(src, text, tr.sourceLatin)
}

// listItemRE is a list line's marker: "1.", "1)", "-", "*" or "•".
var listItemRE = regexp.MustCompile(`^\s*(?:[0-9]+\s*[.)]|[-*•])\s*`)

// ParseKeywordList reads a translated keyword list: one keyword a line, numbered or
// bulleted; a single line of n comma- or semicolon-separated items is accepted too. It
// fails unless exactly n keywords come back.
func ParseKeywordList(text string, n int) ([]string, error) {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if line = strings.TrimSpace(listItemRE.ReplaceAllString(line, "")); line != "" {
			out = append(out, line)
		}
	}
	if len(out) == 1 && n > 1 {
		for _, sep := range []string{";", ","} {
			if parts := CleanKeywords(strings.Split(out[0], sep)); len(parts) == n {
				return parts, nil
			}
		}
	}
	if len(out) != n {
		return nil, fmt.Errorf("keyword list: %d keywords came back for %d", len(out), n)
	}
	return out, nil
}

// Record is the translated manifest line of a product whose fields all generated.
func (tr *Translator) Record(t *Task, parts []PartResult) (any, error) {
	rec := tr.record(t)
	out := &rec.Product
	rec.Faithful = true
	if len(parts) == 0 {
		if t.Data.(dataset.Product).Lang == tr.cfg.To {
			rec.Note = "already in " + tr.cfg.To
		} else {
			rec.Note = "nothing to translate"
		}
		return rec, nil
	}
	for i, pr := range parts {
		ft := tr.field(pr)
		rec.Translation[pr.Name] = ft
		f := tr.check(t, i, pr.Text)
		if f.OK {
			ft.Faithfulness = &f.Score
			ft.Missing = f.Missing
		}
		for _, m := range f.Missing {
			rec.Missing = append(rec.Missing, pr.Name+": "+m)
		}
		switch pr.Name {
		case FieldText:
			out.Text = pr.Text
		case FieldTitle:
			out.Title = pr.Text
		case FieldCategory:
			out.Category = pr.Text
		case FieldKeywords:
			_, list := source(t.Data.(dataset.Product), FieldKeywords)
			kw, err := ParseKeywordList(pr.Text, len(list))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", pr.Name, err)
			}
			out.Keywords = kw
		}
	}
	rec.Faithful = len(rec.Missing) == 0
	return rec, nil
}

// Failed is the record of a product that could not be translated: the originals, and
// none of the fields in the source language under their own names (so no command reads
// them as text in the target language).
func (tr *Translator) Failed(t *Task, parts []PartResult, err error) any {
	rec := tr.record(t)
	rec.Lang = t.Data.(dataset.Product).Lang
	for _, f := range rec.Fields {
		switch f {
		case FieldText:
			rec.Text = ""
		case FieldTitle:
			rec.Title = ""
		case FieldCategory:
			rec.Category = ""
		case FieldKeywords:
			rec.Keywords = nil
		}
	}
	for _, pr := range parts {
		if pr.Attempts > 0 {
			ft := tr.field(pr)
			if pr.Err != nil {
				ft.Error = pr.Err.Error()
			}
			rec.Translation[pr.Name] = ft
		}
	}
	rec.Error = err.Error()
	return rec
}

// record starts a product's record: the product in the target language with image
// paths for the output, and the originals of the fields to translate.
func (tr *Translator) record(t *Task) TranslationRecord {
	p := t.Data.(dataset.Product)
	rec := TranslationRecord{
		Product: p, From: tr.cfg.From, Originals: map[string]any{}, Model: tr.cfg.Model, Params: tr.params,
		Translation: map[string]*FieldTranslation{},
	}
	rec.Lang = tr.cfg.To
	rec.Images = nil
	for _, img := range p.Images {
		if tr.cfg.Image != nil {
			img = tr.cfg.Image(img)
		}
		rec.Images = append(rec.Images, img)
	}
	if p.Lang == tr.cfg.To {
		return rec
	}
	for _, f := range tr.cfg.Fields {
		text, list := source(p, f)
		switch {
		case f == FieldKeywords && len(list) > 0:
			rec.Originals[f] = list
		case f != FieldKeywords && text != "":
			rec.Originals[f] = text
		default:
			continue
		}
		rec.Fields = append(rec.Fields, f)
	}
	return rec
}

func (tr *Translator) field(pr PartResult) *FieldTranslation {
	return &FieldTranslation{
		ItemSeed: pr.Req.Seed, PromptTokens: pr.PromptTokens, GenTokens: len(pr.Tokens), MS: pr.Duration.Milliseconds(),
		FinishReason: pr.Finish, Attempts: pr.Attempts, LowFaithfulness: pr.Low,
	}
}
