// Package cliptok is the CLIP byte-level BPE tokenizer as Long-CLIP upstream uses it
// (simple_tokenizer.py with bpe_simple_vocab_16e6.txt.gz, context 248, truncate=True).
//
//	tok, err := cliptok.Load("bpe_simple_vocab_16e6.txt.gz")
//	ids, truncated := tok.Encode("blue jeans, cotton", cliptok.Context) // SOT ... EOT
//	row := cliptok.Pad(ids, cliptok.Context)                           // model input
//
// Text goes through Clean (ftfy.fix_text, html.unescape twice, whitespace collapse,
// Python's lower()), upstream's pre-tokenizer pattern, byte-level symbols with "</w>" on
// each pre-token's last byte, and the merges of package bpe.
//
// # ftfy coverage
//
// Reproduced from ftfy 6.3.1 fix_text with its default configuration:
//   - segments ending after each '\n'; the loop of fixers until a segment stops changing;
//   - unescape_html: &#?[0-9A-Za-z]{1,24}; references, the HTML5 table, all-caps forms of
//     lowercase names (&EACUTE;), numeric references; off from the first segment
//     containing '<' to the end of the text;
//   - fix_encoding: text that one of ftfy's single-byte encodings (Latin-1, sloppy
//     Windows-1252/1251/1250/1253/1254/1257, ISO-8859-2, MacRoman, CP437, in ftfy's
//     order) can encode and whose bytes are UTF-8 or utf-8-variants (CESU-8 pairs, C0 80)
//     is decoded again, repeatedly (double mojibake); replace_lossy_sequences for the
//     sloppy codecs (lost bytes as 0x1A or '?' become U+FFFD); C1 controls as
//     Windows-1252 (fix_c1_controls);
//   - fix_latin_ligatures, fix_character_width (full-width forms, ideographic space),
//     uncurl_quotes, fix_line_breaks (\r\n, \r, U+2028, U+2029, U+0085),
//     remove_terminal_escapes, remove_control_chars, NFC.
//
// Not reproduced:
//   - ftfy's "badness" heuristic (is_bad), which keeps ftfy from re-decoding text that does
//     not look like mojibake. We re-decode whenever the encoded bytes are valid UTF-8, so
//     a legitimate string whose every non-ASCII character pairs up into UTF-8 (for example
//     a lone "Ã©" meant literally) is changed where ftfy might keep it;
//   - restore_byte_a0 (mojibake whose 0xA0 byte became a space, "voilÃ le travail") and
//     decode_inconsistent_utf8 (mojibake mixed with text no single encoding covers): such
//     text is left as it is;
//   - fix_surrogates: a Go string holds no surrogates; invalid UTF-8 in the input is read
//     as U+FFFD per bad byte before cleaning;
//   - max_decode_length: a segment (line) longer than 1,000,000 characters is fixed whole.
//
// cliptok imports package bpe and golang.org/x/text; it must not import llm, eval,
// dataset or cmd.
package cliptok
