package bpe

// ByteToUnicode is GPT-2's reversible byte -> printable rune table (also used by CLIP):
// bytes '!'..'~', '¡'..'¬' and '®'..'ÿ' map to the rune of the same value, the other 68
// bytes (controls, space, DEL, NBSP, soft hyphen) to U+0100 upward in byte order, so that
// every byte has a visible, non-whitespace symbol.
var ByteToUnicode [256]rune

// UnicodeToByte inverts ByteToUnicode; runes outside the table are absent.
var UnicodeToByte map[rune]byte

// ByteOrder lists the bytes in the order of the table's construction (the 188 printable
// bytes, then the 68 remapped ones): the order of bytes_to_unicode().values(), which CLIP
// uses for its first 256 (and next 256, with "</w>") vocabulary ids.
var ByteOrder [256]byte

func init() {
	n := rune(0)
	for b := 0; b < 256; b++ {
		if ('!' <= b && b <= '~') || (0xA1 <= b && b <= 0xAC) || (0xAE <= b && b <= 0xFF) {
			ByteToUnicode[b] = rune(b)
		} else {
			ByteToUnicode[b] = 256 + n
			n++
		}
	}
	k := 0
	for b := 0; b < 256; b++ {
		if ByteToUnicode[b] == rune(b) {
			ByteOrder[k] = byte(b)
			k++
		}
	}
	for b := 0; b < 256; b++ {
		if ByteToUnicode[b] != rune(b) {
			ByteOrder[k] = byte(b)
			k++
		}
	}
	UnicodeToByte = make(map[rune]byte, 256)
	for b, r := range ByteToUnicode {
		UnicodeToByte[r] = byte(b)
	}
}

// ByteString maps each byte of s to its ByteToUnicode rune.
func ByteString(s string) string {
	out := make([]rune, len(s))
	for i := 0; i < len(s); i++ {
		out[i] = ByteToUnicode[s[i]]
	}
	return string(out)
}

// Bytes inverts ByteString. Runes outside the table are returned as their UTF-8 encoding,
// and ok is false, so that decoding never fails on a strange vocabulary entry.
func Bytes(sym string) (b []byte, ok bool) {
	ok = true
	for _, r := range sym {
		if c, found := UnicodeToByte[r]; found {
			b = append(b, c)
		} else {
			b = append(b, string(r)...)
			ok = false
		}
	}
	return b, ok
}
