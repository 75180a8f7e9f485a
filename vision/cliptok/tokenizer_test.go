package cliptok

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"synth/internal/fixtures"
)

type fixtureCase struct {
	Text              string   `json:"text"`
	IDs               []int32  `json:"ids"`
	Length            int      `json:"length"`
	Truncated         bool     `json:"truncated"`
	UntruncatedLength int      `json:"untruncated_length"`
	EOTIndex          int      `json:"eot_index"`
	Cleaned           string   `json:"cleaned"`
	Pieces            []string `json:"pieces"`
}

type fixtureFile struct {
	Meta struct {
		Context   int    `json:"context_length"`
		VocabFile string `json:"vocab_file"`
	} `json:"meta"`
	Cases []fixtureCase `json:"cases"`
}

func loadFixture(t testing.TB) (*Tokenizer, fixtureFile) {
	t.Helper()
	dir := fixtures.Dir(t, "longclip")
	raw, err := os.ReadFile(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		t.Skipf("no tokenizer fixture: %v", err)
	}
	var f fixtureFile
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatalf("tokenizer.json: %v", err)
	}
	if len(f.Cases) == 0 {
		t.Fatal("tokenizer.json has no cases")
	}
	tok, err := Load(filepath.Join(dir, f.Meta.VocabFile))
	if err != nil {
		t.Fatal(err)
	}
	return tok, f
}

// TestFixtureParity checks every case of tokenizer.json: the cleaned text, the ids, the
// pieces, truncation and the pooled EOT position.
func TestFixtureParity(t *testing.T) {
	tok, f := loadFixture(t)
	for i, c := range f.Cases {
		if got := Clean(c.Text); got != c.Cleaned {
			t.Errorf("case %d %q: cleaned %q, want %q", i, c.Text, got, c.Cleaned)
		}
		ids, truncated := tok.Encode(c.Text, f.Meta.Context)
		if !slices.Equal(ids, c.IDs) {
			t.Errorf("case %d %q:\n got  %v\n want %v", i, c.Text, ids, c.IDs)
			continue
		}
		if truncated != c.Truncated || len(ids) != c.Length {
			t.Errorf("case %d: truncated %v len %d, want %v %d", i, truncated, len(ids), c.Truncated, c.Length)
		}
		if full, _ := tok.Encode(c.Text, 0); len(full) != c.UntruncatedLength {
			t.Errorf("case %d: untruncated length %d, want %d", i, len(full), c.UntruncatedLength)
		}
		if got := EOTIndex(Pad(ids, f.Meta.Context)); got != c.EOTIndex {
			t.Errorf("case %d: EOT index %d, want %d", i, got, c.EOTIndex)
		}
		for k, id := range ids {
			if k < len(c.Pieces) && tok.Piece(id) != c.Pieces[k] {
				t.Errorf("case %d: piece %d = %q, want %q", i, k, tok.Piece(id), c.Pieces[k])
				break
			}
		}
	}
}

func TestConcurrentEncodeMatchesSerial(t *testing.T) {
	tok, f := loadFixture(t)
	want := make([][]int32, len(f.Cases))
	for i, c := range f.Cases {
		want[i], _ = tok.Encode(c.Text, Context)
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, c := range f.Cases {
				if got, _ := tok.Encode(c.Text, Context); !slices.Equal(got, want[i]) {
					t.Errorf("case %d differs under concurrency", i)
				}
			}
		}()
	}
	wg.Wait()
}

func TestDecodeRoundTrip(t *testing.T) {
	tok, _ := loadFixture(t)
	// Upstream's decode reads every "</w>" as a space, so each pre-token (also ',') is
	// followed by one.
	for s, want := range map[string]string{
		"blue jeans, cotton": "blue jeans , cotton ",
		"한글 상품 설명":           "한글 상품 설명 ",
		"Café CRÈME":         "café crème ",
	} {
		ids, _ := tok.Encode(s, 0)
		if got := tok.Decode(ids, true); got != want {
			t.Errorf("Decode(Encode(%q)) = %q, want %q", s, got, want)
		}
	}
}

// A merges file shorter than the released one (as upstream slices it) gives a smaller
// vocabulary with SOT and EOT as its last two ids.
func TestShortMergesFile(t *testing.T) {
	tok, err := Parse(strings.NewReader("#version: 0.2\nb l\nbl ue</w>\nj e\n"))
	if err != nil {
		t.Fatal(err)
	}
	if tok.VocabSize() != 512+3+2 || tok.SOT() != 515 || tok.EOT() != 516 {
		t.Fatalf("vocab %d, SOT %d, EOT %d", tok.VocabSize(), tok.SOT(), tok.EOT())
	}
	ids, _ := tok.Encode("Blue je", Context)
	// "blue" -> b l u e</w> -> bl u e</w>? no: merges are (b,l) then (bl, ue</w>), and
	// "ue</w>" is never formed, so bl + u + e</w>; "je" -> j e</w> (no (j, e</w>) merge).
	want := []string{"<|startoftext|>", "bl", "u", "e</w>", "j", "e</w>", "<|endoftext|>"}
	if len(ids) != len(want) {
		t.Fatalf("ids %v", ids)
	}
	for i, id := range ids {
		if tok.Piece(id) != want[i] {
			t.Fatalf("piece %d = %q, want %q (ids %v)", i, tok.Piece(id), want[i], ids)
		}
	}
	if got := tok.Decode(ids, true); got != "blue je " {
		t.Fatalf("decode %q", got)
	}
}

// A vocabulary file that is empty, not gzip under a .gz name, binary, or gzip holding
// only a header is an error, not a tokenizer of the 514 base symbols giving wrong ids.
func TestBadVocabularyRefused(t *testing.T) {
	dir := t.TempDir()
	gz := func(text string) []byte {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write([]byte(text))
		zw.Close()
		return b.Bytes()
	}
	cases := map[string][]byte{
		"empty.txt.gz":      nil,
		"empty.txt":         nil,
		"zstd.txt.gz":       {0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0},
		"binary.txt":        {0x89, 'P', 'N', 'G', 0, 0, 0, 13},
		"header-only.gz":    gz("#version: 0.2\n"),
		"empty-gzip.txt.gz": gz(""),
		"truncated.txt.gz":  gz("#version: 0.2\ni n\nt h\n")[:20],
	}
	for name, data := range cases {
		p := filepath.Join(dir, name)
		os.WriteFile(p, data, 0o644)
		if tok, err := Load(p); err == nil {
			t.Errorf("%s: accepted, vocabulary of %d", name, tok.VocabSize())
		}
	}
	p := filepath.Join(dir, "ok.txt")
	os.WriteFile(p, []byte("#version: 0.2\ni n\n"), 0o644)
	if _, err := Load(p); err != nil {
		t.Errorf("plain-text merges: %v", err)
	}
}
