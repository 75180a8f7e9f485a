package cliptok

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"unicode/utf8"

	"synth/vision/bpe"
)

// Upstream constants (Long-CLIP simple_tokenizer.py, model/longclip.py).
const (
	// NumMerges is how many lines of the merges file upstream reads after its header:
	// 49152 - 256 - 2 (the vocabulary of 49408 is 512 byte symbols + merges + 2 specials).
	NumMerges = 49152 - 256 - 2
	// VocabSize is 256 byte symbols, the same with "</w>", NumMerges merges, SOT and EOT:
	// the released vocabulary. A shorter merges file gives a smaller one (Tokenizer.VocabSize).
	VocabSize = 512 + NumMerges + 2
	SOT       = int32(VocabSize - 2) // <|startoftext|> of the released vocabulary, 49406
	EOT       = int32(VocabSize - 1) // <|endoftext|> of the released vocabulary, 49407
	// Context is Long-CLIP's text length (CLIP's was 77).
	Context = 248

	sotText = "<|startoftext|>"
	eotText = "<|endoftext|>"
	wordEnd = "</w>"
)

// Tokenizer is the CLIP byte-level BPE tokenizer. It is safe for concurrent use.
type Tokenizer struct {
	model   *bpe.Model
	toVocab []int32  // bpe symbol id -> vocabulary id (-1: not a vocabulary entry)
	pieces  []string // vocabulary id -> its string
	byteSym [256]int32
	byteEnd [256]int32 // byte symbol with "</w>"
	sot     int32      // <|startoftext|>: the second-last vocabulary id
	eot     int32      // <|endoftext|>: the last vocabulary id
}

// pretokenize is upstream's pattern. Go's \s is ASCII-only, but Clean has already turned
// every Unicode White_Space run into one ASCII space, so the classes agree; the IGNORECASE
// flag does not matter after lowercasing.
var pretokenize = regexp.MustCompile(`<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`)

// Load reads the merges file (bpe_simple_vocab_16e6.txt.gz, gzip or plain text). A file
// named .gz must be gzip, and plain text must be UTF-8 without NUL bytes: anything else
// (a truncated download, another compressor) used to give a vocabulary of the 514 base
// symbols, silently, and wrong ids for every text.
func Load(path string) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cliptok: %w", err)
	}
	var r io.Reader = bytes.NewReader(data)
	switch {
	case len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b:
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("cliptok: read %s: %w", path, err)
		}
		r = zr
	case strings.HasSuffix(strings.ToLower(path), ".gz"):
		return nil, fmt.Errorf("cliptok: %s is not gzip data (starts with % x): want the merges file bpe_simple_vocab_16e6.txt.gz", path, data[:min(len(data), 8)])
	case bytes.IndexByte(data, 0) >= 0 || !utf8.Valid(data):
		return nil, fmt.Errorf("cliptok: %s is neither gzip nor text: want the merges file bpe_simple_vocab_16e6.txt.gz", path)
	}
	t, err := Parse(r)
	if err != nil {
		return nil, fmt.Errorf("cliptok: read %s: %w", path, err)
	}
	return t, nil
}

// Parse builds the tokenizer from the merges text: a header line, then one merge a line
// ("a b"), of which the first NumMerges are used, as upstream. A file with fewer merges
// (a small vocabulary trained for tests or demos) gives a vocabulary of 512 + merges + 2
// with SOT and EOT last, which is what upstream's slice of the merge list does too.
func Parse(r io.Reader) (*Tokenizer, error) {
	t := &Tokenizer{model: bpe.New(0)}
	for _, b := range bpe.ByteOrder {
		t.pieces = append(t.pieces, string(bpe.ByteToUnicode[b]))
	}
	for _, b := range bpe.ByteOrder {
		t.pieces = append(t.pieces, string(bpe.ByteToUnicode[b])+wordEnd)
	}
	type pair struct{ a, b string }
	merges := make([]pair, 0, NumMerges)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	line := 0
	for sc.Scan() && len(merges) < NumMerges {
		line++
		if line == 1 {
			continue // header ("#version: 0.2")
		}
		// upstream splits on '\n' and then on whitespace; a line that is not two
		// symbols would make a broken vocabulary, so refuse it.
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			return nil, fmt.Errorf("line %d: want two symbols, got %q", line, sc.Text())
		}
		merges = append(merges, pair{f[0], f[1]})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(merges) == 0 {
		return nil, fmt.Errorf("no merges (%d lines): an empty or truncated merges file", line)
	}
	for _, m := range merges {
		t.pieces = append(t.pieces, m.a+m.b)
	}
	t.pieces = append(t.pieces, sotText, eotText)
	t.sot, t.eot = int32(len(t.pieces)-2), int32(len(t.pieces)-1)

	// Intern vocabulary pieces first, in order, so that a piece's symbol id maps to the
	// last vocabulary id holding that string (upstream's dict(zip(vocab, range(n))).
	vocabOf := map[string]int32{}
	for id, p := range t.pieces {
		t.model.Intern(p)
		vocabOf[p] = int32(id)
	}
	for rank, m := range merges {
		t.model.AddMerge(m.a, m.b, rank)
	}
	t.toVocab = make([]int32, t.model.NumSymbols())
	for id := range t.toVocab {
		v, ok := vocabOf[t.model.Symbol(int32(id))]
		if !ok {
			v = -1
		}
		t.toVocab[id] = v
	}
	for b := 0; b < 256; b++ {
		t.byteSym[b], _ = t.model.ID(string(bpe.ByteToUnicode[b]))
		t.byteEnd[b], _ = t.model.ID(string(bpe.ByteToUnicode[b]) + wordEnd)
	}
	return t, nil
}

// Encode tokenizes text as upstream tokenize(text, context_length=context, truncate=True)
// without the zero padding: SOT, the BPE tokens of Clean(text), EOT. When that is longer
// than context it keeps the first context ids and puts EOT last; truncated says so.
// context <= 0 means no limit.
func (t *Tokenizer) Encode(text string, context int) (ids []int32, truncated bool) {
	ids = append(ids, t.sot)
	ids = t.appendTokens(ids, Clean(text))
	ids = append(ids, t.eot)
	if context > 0 && len(ids) > context {
		ids = ids[:context]
		ids[context-1] = t.eot
		truncated = true
	}
	return ids, truncated
}

// Tokens is the BPE of an already cleaned text, without SOT/EOT.
func (t *Tokenizer) Tokens(cleaned string) []int32 { return t.appendTokens(nil, cleaned) }

func (t *Tokenizer) appendTokens(ids []int32, cleaned string) []int32 {
	var word []int32
	for _, tok := range pretokenize.FindAllString(cleaned, -1) {
		switch tok {
		case sotText:
			ids = append(ids, t.sot)
			continue
		case eotText:
			ids = append(ids, t.eot)
			continue
		}
		word = word[:0]
		for i := 0; i < len(tok); i++ {
			if i == len(tok)-1 {
				word = append(word, t.byteEnd[tok[i]])
			} else {
				word = append(word, t.byteSym[tok[i]])
			}
		}
		for _, s := range t.model.Merge(tok, word) {
			// Every merge result is a vocabulary entry by construction.
			ids = append(ids, t.toVocab[s])
		}
	}
	return ids
}

// Fingerprint identifies the vocabulary (sha256 of its pieces in id order), for caches
// keyed by what produced an embedding.
func (t *Tokenizer) Fingerprint() string {
	h := sha256.New()
	for _, p := range t.pieces {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// VocabSize is the number of token ids: 512 byte symbols, the merges, SOT and EOT (49408
// for the released merges file). A model's token embedding must have this many rows.
func (t *Tokenizer) VocabSize() int { return len(t.pieces) }

// SOT is the <|startoftext|> id (49406 for the released merges file).
func (t *Tokenizer) SOT() int32 { return t.sot }

// EOT is the <|endoftext|> id (49407 for the released merges file): the largest id, which
// pooling finds by argmax.
func (t *Tokenizer) EOT() int32 { return t.eot }

// Pad returns ids followed by zeros up to context (the model's input row).
func Pad(ids []int32, context int) []int32 {
	row := make([]int32, max(context, len(ids)))
	copy(row, ids)
	return row
}

// EOTIndex is the position upstream pools: the first maximum of the row, which is the
// first EOT (a literal "<|endoftext|>" in the text pools early).
func EOTIndex(ids []int32) int {
	best := 0
	for i, v := range ids {
		if v > ids[best] {
			best = i
		}
	}
	return best
}

// Piece returns the vocabulary string of id (byte-level characters, "</w>" ending words).
func (t *Tokenizer) Piece(id int32) string {
	if id < 0 || int(id) >= len(t.pieces) {
		return ""
	}
	return t.pieces[id]
}

// Decode turns ids back into text as upstream's decode: pieces joined, bytes restored,
// "</w>" read as a space. SOT and EOT are skipped when skipSpecial.
func (t *Tokenizer) Decode(ids []int32, skipSpecial bool) string {
	var b []byte
	for _, id := range ids {
		if skipSpecial && (id == t.sot || id == t.eot) {
			continue
		}
		p := t.Piece(id)
		if id == t.sot || id == t.eot {
			b = append(b, p...)
			continue
		}
		raw, _ := bpe.Bytes(strings.ReplaceAll(p, wordEnd, " "))
		b = append(b, raw...)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}
