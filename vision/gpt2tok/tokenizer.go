package gpt2tok

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"

	"synth/vision/bpe"
)

// Tokenizer is a GPT-2 byte-level BPE tokenizer. It is safe for concurrent use.
type Tokenizer struct {
	model   *bpe.Model
	toVocab []int32 // bpe symbol id -> vocabulary id, -1 when absent
	byteSym [256]int32
	tokens  map[int32]string // vocabulary id -> token (vocab.json and added tokens)

	added   []string         // added/special token texts, longest first, for splitting
	addedID map[string]int32 // their ids
	special map[int32]bool   // ids skipped by DecodeOptions.SkipSpecial

	bos, eos, unk, pad int32 // -1 when not configured
	addBOS             bool
	cleanUpSpaces      bool
}

// Config is what the optional configuration files add to vocab.json and merges.txt.
type Config struct {
	Added         map[string]int32 // added tokens (text -> id)
	Special       []string         // texts of special tokens (a subset of vocab or Added)
	BOS, EOS      string
	UNK, PAD      string
	AddBOS        bool // prepend BOS when adding special tokens
	CleanUpSpaces bool // decode's clean_up_tokenization_spaces default
}

// New builds a tokenizer from a vocabulary (token -> id), merges in rank order and cfg.
func New(vocab map[string]int32, merges [][2]string, cfg Config) (*Tokenizer, error) {
	t := &Tokenizer{model: bpe.New(0), tokens: map[int32]string{}, addedID: map[string]int32{},
		special: map[int32]bool{}, bos: -1, eos: -1, unk: -1, pad: -1, addBOS: cfg.AddBOS, cleanUpSpaces: cfg.CleanUpSpaces}
	for tok, id := range vocab {
		t.tokens[id] = tok
	}
	for b := 0; b < 256; b++ {
		t.byteSym[b] = t.model.Intern(string(bpe.ByteToUnicode[b]))
	}
	for rank, m := range merges {
		t.model.AddMerge(m[0], m[1], rank)
	}
	t.toVocab = make([]int32, t.model.NumSymbols())
	for s := range t.toVocab {
		id, ok := vocab[t.model.Symbol(int32(s))]
		if !ok {
			id = -1
		}
		t.toVocab[s] = id
	}
	idOf := func(tok string) (int32, bool) {
		if id, ok := cfg.Added[tok]; ok {
			return id, true
		}
		id, ok := vocab[tok]
		return id, ok
	}
	for tok, id := range cfg.Added {
		t.tokens[id] = tok
		t.addedID[tok] = id
	}
	for _, tok := range append([]string{cfg.BOS, cfg.EOS, cfg.UNK, cfg.PAD}, cfg.Special...) {
		if tok == "" {
			continue
		}
		id, ok := idOf(tok)
		if !ok {
			return nil, fmt.Errorf("gpt2tok: special token %q is not in the vocabulary", tok)
		}
		t.addedID[tok] = id
		t.special[id] = true
	}
	for tok := range t.addedID {
		t.added = append(t.added, tok)
	}
	// Longest first, so that a token containing another is found whole.
	sort.Slice(t.added, func(i, j int) bool {
		if len(t.added[i]) != len(t.added[j]) {
			return len(t.added[i]) > len(t.added[j])
		}
		return t.added[i] < t.added[j]
	})
	set := func(dst *int32, tok string) {
		if tok != "" {
			*dst = t.addedID[tok]
		}
	}
	set(&t.bos, cfg.BOS)
	set(&t.eos, cfg.EOS)
	set(&t.unk, cfg.UNK)
	set(&t.pad, cfg.PAD)
	if t.addBOS && t.bos < 0 {
		return nil, errors.New("gpt2tok: add_bos_token without a bos_token")
	}
	return t, nil
}

// BOS, EOS, UNK and PAD return the configured ids, -1 when absent.
func (t *Tokenizer) BOS() int32 { return t.bos }
func (t *Tokenizer) EOS() int32 { return t.eos }
func (t *Tokenizer) UNK() int32 { return t.unk }
func (t *Tokenizer) PAD() int32 { return t.pad }

// Encode tokenizes text; addSpecial prepends BOS when the configuration asks for it.
func (t *Tokenizer) Encode(text string, addSpecial bool) []int32 {
	var ids []int32
	if addSpecial && t.addBOS {
		ids = append(ids, t.bos)
	}
	for text != "" {
		at, tok := t.nextAdded(text)
		ids = t.appendBPE(ids, text[:at])
		if tok == "" {
			break
		}
		ids = append(ids, t.addedID[tok])
		text = text[at+len(tok):]
	}
	return ids
}

// nextAdded finds the earliest added token in s (longest at the same place).
func (t *Tokenizer) nextAdded(s string) (at int, tok string) {
	at = len(s)
	for _, a := range t.added {
		if i := strings.Index(s[:min(len(s), at+len(a))], a); i >= 0 && (i < at || (i == at && len(a) > len(tok))) {
			at, tok = i, a
		}
	}
	return at, tok
}

func (t *Tokenizer) appendBPE(ids []int32, text string) []int32 {
	var word []int32
	for _, piece := range pretokenize(text) {
		word = word[:0]
		for i := 0; i < len(piece); i++ {
			word = append(word, t.byteSym[piece[i]])
		}
		for _, s := range t.model.Merge(piece, word) {
			id := t.toVocab[s]
			if id < 0 {
				id = t.unk // HF: encoder.get(token, encoder.get(unk_token))
			}
			if id >= 0 {
				ids = append(ids, id)
			}
		}
	}
	return ids
}

// DecodeOptions are HF decode's switches.
type DecodeOptions struct {
	SkipSpecial bool // drop special tokens (BOS/EOS/PAD/UNK and additional specials)
	// CleanUpSpaces removes the space before . ? ! , and English contractions, as HF's
	// clean_up_tokenization; Tokenizer.CleanUpDefault is the configuration's choice.
	CleanUpSpaces bool
}

// CleanUpDefault is the clean_up_tokenization_spaces of the configuration (true when
// absent, HF's long-standing default).
func (t *Tokenizer) CleanUpDefault() bool { return t.cleanUpSpaces }

// Decode turns ids back into text: byte-level tokens become their bytes (invalid UTF-8
// replaced as Python's errors="replace" does), added tokens their text. Unknown ids are
// skipped.
func (t *Tokenizer) Decode(ids []int32, opt DecodeOptions) string {
	var out strings.Builder
	var pending []byte
	flush := func() {
		out.WriteString(replaceInvalid(pending))
		pending = pending[:0]
	}
	for _, id := range ids {
		if opt.SkipSpecial && t.special[id] {
			continue
		}
		tok, ok := t.tokens[id]
		if !ok {
			continue
		}
		if _, added := t.addedID[tok]; added {
			flush()
			out.WriteString(tok)
			continue
		}
		b, _ := bpe.Bytes(tok)
		pending = append(pending, b...)
	}
	flush()
	s := out.String()
	if opt.CleanUpSpaces {
		s = cleanUp.Replace(s)
	}
	return s
}

// cleanUp is HF's clean_up_tokenization.
var cleanUp = strings.NewReplacer(" .", ".", " ?", "?", " !", "!", " ,", ",", " ' ", "'",
	" n't", "n't", " 'm", "'m", " 's", "'s", " 've", "'ve", " 're", "'re")

// replaceInvalid decodes b as UTF-8 with Python's errors="replace": one U+FFFD for each
// maximal prefix of a valid sequence (a truncated sequence is one, not one per byte).
func replaceInvalid(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var out strings.Builder
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r != utf8.RuneError || n > 1 {
			out.WriteRune(r)
			b = b[n:]
			continue
		}
		out.WriteRune(utf8.RuneError)
		b = b[maximalSubpart(b):]
	}
	return out.String()
}

// maximalSubpart is the length of the invalid sequence at b[0] that Python replaces by
// one U+FFFD: a valid lead byte and the continuation bytes that may follow it (Unicode
// table 3-7), or 1.
func maximalSubpart(b []byte) int {
	c := b[0]
	var need int
	lo, hi := byte(0x80), byte(0xBF) // range of the second byte
	switch {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c == 0xED:
		need, hi = 2, 0x9F
	case c >= 0xE1 && c <= 0xEF:
		need = 2
	case c == 0xF0:
		need, lo = 3, 0x90
	case c == 0xF4:
		need, hi = 3, 0x8F
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	default:
		return 1
	}
	n := 1
	for k := 0; k < need && n < len(b); k++ {
		if k == 0 && (b[n] < lo || b[n] > hi) || k > 0 && (b[n] < 0x80 || b[n] > 0xBF) {
			break
		}
		n++
	}
	return n
}

// Load reads a tokenizer folder: vocab.json and merges.txt, and when present
// added_tokens.json, special_tokens_map.json and tokenizer_config.json.
func Load(dir string) (*Tokenizer, error) {
	var vocab map[string]int32
	if err := readJSON(filepath.Join(dir, "vocab.json"), &vocab, true); err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(filepath.Join(dir, "merges.txt"))
	if err != nil {
		return nil, fmt.Errorf("gpt2tok: %w", err)
	}
	merges, err := parseMerges(string(raw))
	if err != nil {
		return nil, fmt.Errorf("gpt2tok: %s: %w", filepath.Join(dir, "merges.txt"), err)
	}
	cfg := Config{Added: map[string]int32{}, AddBOS: true, CleanUpSpaces: true}
	if err := readJSON(filepath.Join(dir, "added_tokens.json"), &cfg.Added, false); err != nil {
		return nil, err
	}
	var smap map[string]json.RawMessage
	if err := readJSON(filepath.Join(dir, "special_tokens_map.json"), &smap, false); err != nil {
		return nil, err
	}
	var tcfg map[string]json.RawMessage
	if err := readJSON(filepath.Join(dir, "tokenizer_config.json"), &tcfg, false); err != nil {
		return nil, err
	}
	for _, m := range []map[string]json.RawMessage{smap, tcfg} { // the config wins
		for key, dst := range map[string]*string{"bos_token": &cfg.BOS, "eos_token": &cfg.EOS, "unk_token": &cfg.UNK, "pad_token": &cfg.PAD} {
			if v, ok := m[key]; ok {
				if s := tokenContent(v); s != "" {
					*dst = s
				}
			}
		}
		if v, ok := m["additional_special_tokens"]; ok {
			var list []json.RawMessage
			if json.Unmarshal(v, &list) == nil {
				for _, e := range list {
					if s := tokenContent(e); s != "" {
						cfg.Special = append(cfg.Special, s)
					}
				}
			}
		}
	}
	if v, ok := tcfg["add_bos_token"]; ok {
		if err := json.Unmarshal(v, &cfg.AddBOS); err != nil {
			return nil, fmt.Errorf("gpt2tok: tokenizer_config.json: add_bos_token: %w", err)
		}
	}
	if v, ok := tcfg["clean_up_tokenization_spaces"]; ok {
		if err := json.Unmarshal(v, &cfg.CleanUpSpaces); err != nil {
			return nil, fmt.Errorf("gpt2tok: tokenizer_config.json: clean_up_tokenization_spaces: %w", err)
		}
	}
	if v, ok := tcfg["added_tokens_decoder"]; ok {
		var dec map[string]struct {
			Content string `json:"content"`
			Special bool   `json:"special"`
		}
		if err := json.Unmarshal(v, &dec); err != nil {
			return nil, fmt.Errorf("gpt2tok: tokenizer_config.json: added_tokens_decoder: %w", err)
		}
		for idText, e := range dec {
			var id int32
			if _, err := fmt.Sscan(idText, &id); err != nil || e.Content == "" {
				return nil, fmt.Errorf("gpt2tok: tokenizer_config.json: added_tokens_decoder entry %q", idText)
			}
			cfg.Added[e.Content] = id
			if e.Special {
				cfg.Special = append(cfg.Special, e.Content)
			}
		}
	}
	if cfg.BOS == "" {
		cfg.AddBOS = false
	}
	t, err := New(vocab, merges, cfg)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, dir)
	}
	return t, nil
}

// parseMerges reads merges.txt as HF does: the first line is a header, then "a b" per
// line; empty lines are skipped.
func parseMerges(s string) ([][2]string, error) {
	lines := strings.Split(s, "\n")
	var out [][2]string
	for i, line := range lines {
		if i == 0 && strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimRight(line, "\r")
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("line %d: want two symbols, got %q", i+1, line)
		}
		out = append(out, [2]string{f[0], f[1]})
	}
	return out, nil
}

// tokenContent reads a special token written as a string or as {"content": ...}.
func tokenContent(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	var obj struct {
		Content string `json:"content"`
	}
	if json.Unmarshal(v, &obj) == nil {
		return obj.Content
	}
	return ""
}

func readJSON(path string, dst any, required bool) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		if !required && errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("gpt2tok: %w", err)
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return fmt.Errorf("gpt2tok: %s: %w", path, err)
	}
	return nil
}
