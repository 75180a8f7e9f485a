// Package bpe holds what the CLIP and GPT-2 tokenizers share: the GPT-2 byte-to-unicode
// table, merge ranks, and the byte-pair merge loop with a cache that is safe for
// concurrent use.
//
// A Model works on symbols: strings of byte-level unicode characters (see ByteToUnicode),
// interned to dense int32 ids in the order they are added. Tokenizers map those symbols to
// their own vocabulary ids.
//
// bpe imports only the standard library; it must not import native, weights, llm, eval,
// dataset or cmd.
package bpe
