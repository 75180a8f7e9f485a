package llm

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"synth/llm/llamacpp"
)

// Example is one few-shot pair of the style file: keywords and a description in the
// target style.
type Example struct {
	Keywords []string
	Text     string
}

// ErrExamples marks a malformed examples file; the message names the file and line.
var ErrExamples = errors.New("malformed examples file")

// ReadExamples reads a JSONL style file, one {"keywords": [...] or "a, b", "text": "..."}
// a line (blank lines skipped). A keyword string is split at commas.
func ReadExamples(path string) ([]Example, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("llm: examples: %w", err)
	}
	var out []Example
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 1<<16), 16<<20)
	for lineNo := 1; sc.Scan(); lineNo++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var raw struct {
			Keywords json.RawMessage `json:"keywords"`
			Text     *string         `json:"text"`
		}
		dec := json.NewDecoder(bytes.NewReader(line))
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("llm: %w: %s:%d: %v", ErrExamples, path, lineNo, err)
		}
		if dec.More() {
			return nil, fmt.Errorf("llm: %w: %s:%d: more than one JSON value on the line", ErrExamples, path, lineNo)
		}
		kw, err := parseKeywords(raw.Keywords)
		if err != nil {
			return nil, fmt.Errorf("llm: %w: %s:%d: %v", ErrExamples, path, lineNo, err)
		}
		if raw.Text == nil || strings.TrimSpace(*raw.Text) == "" {
			return nil, fmt.Errorf("llm: %w: %s:%d: example has no \"text\"", ErrExamples, path, lineNo)
		}
		out = append(out, Example{Keywords: kw, Text: strings.TrimSpace(*raw.Text)})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("llm: examples %s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("llm: %w: %s holds no example", ErrExamples, path)
	}
	return out, nil
}

// parseKeywords accepts a JSON list of strings or one comma-separated string.
func parseKeywords(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, errors.New(`example has no "keywords"`)
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		var s string
		if err2 := json.Unmarshal(raw, &s); err2 != nil {
			return nil, errors.New(`"keywords" is neither a list of strings nor a string`)
		}
		list = strings.Split(s, ",")
	}
	kw := CleanKeywords(list)
	if len(kw) == 0 {
		return nil, errors.New(`"keywords" is empty`)
	}
	return kw, nil
}

// CleanKeywords trims keywords and drops empty ones.
func CleanKeywords(kw []string) []string {
	out := make([]string, 0, len(kw))
	for _, k := range kw {
		if k = strings.Join(strings.Fields(k), " "); k != "" {
			out = append(out, k)
		}
	}
	return out
}

// Item is what the prompt says about one product.
type Item struct {
	Keywords []string
	Category string
	Title    string
}

// UserTurn renders an item as the user's message of an English rewrite prompt;
// examples are rendered the same way, so the model sees one format throughout.
func UserTurn(it Item) string { return UserTurnIn("en", it) }

// UserTurnIn renders an item with the labels of lang ("en" or "ko").
func UserTurnIn(lang string, it Item) string {
	l := turnLabels[lang]
	if l.keywords == "" {
		l = turnLabels["en"]
	}
	var b strings.Builder
	if c := strings.TrimSpace(it.Category); c != "" {
		fmt.Fprintf(&b, "%s: %s\n", l.category, c)
	}
	if t := strings.TrimSpace(it.Title); t != "" {
		fmt.Fprintf(&b, "%s: %s\n", l.title, t)
	}
	fmt.Fprintf(&b, "%s: %s", l.keywords, strings.Join(CleanKeywords(it.Keywords), ", "))
	return b.String()
}

// PromptConfig is the shared part of every rewrite prompt.
type PromptConfig struct {
	System   string // instruction; "" means the built-in one of Lang
	Examples []Example
	// Lang is the language the descriptions are written in: "en" (default) or "ko". It
	// chooses the built-in instruction and the labels of the user turns.
	Lang string
	// DateLines prepends the "Cutting Knowledge Date / Today Date" lines that Llama 3.1's
	// Jinja template writes at the top of the system turn (HF transformers renders them;
	// llama.cpp's formatter does not), when the model's template has them.
	DateLines bool
}

// Shot is one few-shot pair of a chat prompt: a user turn and the assistant's answer.
type Shot struct{ User, Assistant string }

// Prompter builds the token sequence of each prompt as a shared prefix (system turn +
// few-shot pairs as user/assistant turns, decoded once) and a per-item suffix (the
// item's user turn and the assistant header). The rewrite and the translation prompts
// are both Prompters; they differ in their system turn, shots and user turns.
type Prompter struct {
	model      *llamacpp.Model
	lang       string // the rewrite's user-turn labels (Suffix, Messages)
	prefixMsgs []llamacpp.ChatMessage
	prefixText string
	prefix     []llamacpp.Token
}

// NewPrompter formats and tokenizes the shared prefix of the rewrite prompt with the
// model's chat template.
func NewPrompter(m *llamacpp.Model, cfg PromptConfig) (*Prompter, error) {
	lang, err := rewriteLang(cfg.Lang)
	if err != nil {
		return nil, err
	}
	system := cfg.System
	if strings.TrimSpace(system) == "" {
		system = SystemPrompt(lang)
	}
	shots := make([]Shot, len(cfg.Examples))
	for i, ex := range cfg.Examples {
		shots[i] = Shot{User: UserTurnIn(lang, Item{Keywords: ex.Keywords}), Assistant: ex.Text}
	}
	p, err := NewChatPrompter(m, system, shots, cfg.DateLines)
	if err != nil {
		return nil, err
	}
	p.lang = lang
	return p, nil
}

// NewChatPrompter formats and tokenizes the shared prefix of any chat prompt: the system
// turn (with the template's date lines first when dateLines is set) and the shots.
func NewChatPrompter(m *llamacpp.Model, system string, shots []Shot, dateLines bool) (*Prompter, error) {
	if dateLines {
		system = DateLines(m.ChatTemplate()) + system
	}
	msgs := []llamacpp.ChatMessage{{Role: "system", Content: system}}
	for _, s := range shots {
		msgs = append(msgs,
			llamacpp.ChatMessage{Role: "user", Content: s.User},
			llamacpp.ChatMessage{Role: "assistant", Content: s.Assistant})
	}
	text, err := m.ApplyChatTemplate("", msgs, false)
	if err != nil {
		return nil, fmt.Errorf("llm: prompt: %w", err)
	}
	toks, err := m.Tokenize(text, true, true)
	if err != nil {
		return nil, fmt.Errorf("llm: prompt: %w", err)
	}
	return &Prompter{model: m, lang: "en", prefixMsgs: msgs, prefixText: text, prefix: toks}, nil
}

// Prefix is the shared prefix's tokens (BOS, system turn, examples).
func (p *Prompter) Prefix() []llamacpp.Token { return slices.Clone(p.prefix) }

// Messages is the whole rewrite chat for an item, as the model sees it.
func (p *Prompter) Messages(it Item) []llamacpp.ChatMessage {
	return p.MessagesFor(UserTurnIn(p.lang, it))
}

// MessagesFor is the whole chat for a user turn.
func (p *Prompter) MessagesFor(user string) []llamacpp.ChatMessage {
	return append(slices.Clone(p.prefixMsgs), llamacpp.ChatMessage{Role: "user", Content: user})
}

// ErrPrefix means that a product's full prompt does not start with the shared prefix's
// tokens, so the prefix cannot be reused for it (a chat template whose turns are not
// separated by special tokens could do this).
var ErrPrefix = errors.New("prompt does not extend the shared prefix")

// Suffix returns the tokens that follow the shared prefix in the rewrite prompt of an
// item (see SuffixFor).
func (p *Prompter) Suffix(it Item) ([]llamacpp.Token, error) {
	if len(CleanKeywords(it.Keywords)) == 0 {
		return nil, errors.New("llm: prompt: product has no keywords")
	}
	return p.SuffixFor(UserTurnIn(p.lang, it))
}

// SuffixFor returns the tokens that follow the shared prefix in the prompt whose last
// user turn is user. It checks that prefix + suffix is exactly the tokenization of the
// whole formatted prompt.
func (p *Prompter) SuffixFor(user string) ([]llamacpp.Token, error) {
	full, err := p.model.ApplyChatTemplate("", p.MessagesFor(user), true)
	if err != nil {
		return nil, fmt.Errorf("llm: prompt: %w", err)
	}
	if !strings.HasPrefix(full, p.prefixText) {
		return nil, fmt.Errorf("llm: %w: formatted text differs", ErrPrefix)
	}
	all, err := p.model.Tokenize(full, true, true)
	if err != nil {
		return nil, fmt.Errorf("llm: prompt: %w", err)
	}
	if len(all) <= len(p.prefix) || !slices.Equal(all[:len(p.prefix)], p.prefix) {
		return nil, fmt.Errorf("llm: %w: tokens differ", ErrPrefix)
	}
	return all[len(p.prefix):], nil
}

var (
	knowledgeDateRE = regexp.MustCompile(`Cutting Knowledge Date: ([^"\\]+)\\n`)
	todayDateRE     = regexp.MustCompile(`set date_string = "([^"]+)"`)
)

// DateLines returns the lines Llama 3.1's template puts before the system message
// ("Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"), read from the
// template text, or "" when the template has none.
func DateLines(tmpl string) string {
	k := knowledgeDateRE.FindStringSubmatch(tmpl)
	d := todayDateRE.FindStringSubmatch(tmpl)
	if k == nil || d == nil {
		return ""
	}
	return "Cutting Knowledge Date: " + k[1] + "\nToday Date: " + d[1] + "\n\n"
}
