// Package gpt2tok is GPT-2's byte-level BPE tokenizer as HF transformers' GPT2Tokenizer
// runs it for OPT (BLIP-2's language model): encode and decode.
//
//	tok, err := gpt2tok.Load("blip2-opt-2.7b") // vocab.json + merges.txt (+ configs)
//	ids := tok.Encode("a photo of", true)      // [2 (</s> as BOS), ...]
//	text := tok.Decode(ids, gpt2tok.DecodeOptions{SkipSpecial: true})
//
// Encoding: special and added tokens found in the text become their ids (the text is
// split around them first); each remaining piece is split by GPT-2's pattern
// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// (a hand-written scanner: Go's regexp has no lookahead), mapped to byte-level symbols
// and merged by package bpe. No prefix space is added (OPT's add_prefix_space=false).
// With add_special_tokens, the BOS token is prepended when the configuration's
// add_bos_token says so (missing: true, as OPT's tokenizer behaves); no EOS is appended.
//
// Configuration read from the folder when present: added_tokens.json,
// special_tokens_map.json, tokenizer_config.json (bos/eos/unk/pad tokens, add_bos_token,
// added_tokens_decoder, clean_up_tokenization_spaces).
//
// gpt2tok imports package bpe; it must not import llm, eval, dataset or cmd.
package gpt2tok
