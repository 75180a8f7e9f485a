package cliptok

import (
	"strings"
	"testing"
)

// BenchmarkEncode: a long English product description (truncated at 248) and a Korean
// one; words repeat, so after the first pass the merge cache serves most of them.
func BenchmarkEncode(b *testing.B) {
	tok, f := loadFixture(b)
	var en, ko string
	for _, c := range f.Cases {
		if c.Truncated && strings.HasPrefix(c.Text, "This") {
			en = c.Text
		}
		if c.Truncated && strings.HasPrefix(c.Text, "이") {
			ko = c.Text
		}
	}
	for name, text := range map[string]string{"lang=en": en, "lang=ko": ko} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				tok.Encode(text, Context)
			}
		})
	}
}
