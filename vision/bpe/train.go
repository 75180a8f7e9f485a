package bpe

import "sort"

// Train learns up to n byte-pair merges from words, each given as its symbol sequence
// (byte-level characters, with any end-of-word marker already attached to the last
// symbol) and its count. Each round merges the most frequent adjacent pair (ties broken
// by the pair's text, so training is deterministic), everywhere it occurs, until n merges
// or every word is one symbol. It is for building small vocabularies for tests and the
// demo; real tokenizers ship their merges files.
func Train(words map[string][]string, counts map[string]int, n int) [][2]string {
	keys := make([]string, 0, len(words))
	for w := range words {
		keys = append(keys, w)
	}
	sort.Strings(keys)
	seqs := make([][]string, len(keys))
	for i, k := range keys {
		seqs[i] = append([]string(nil), words[k]...)
	}
	var merges [][2]string
	for len(merges) < n {
		freq := map[[2]string]int{}
		for i, s := range seqs {
			c := counts[keys[i]]
			if c <= 0 {
				c = 1
			}
			for j := 0; j+1 < len(s); j++ {
				freq[[2]string{s[j], s[j+1]}] += c
			}
		}
		if len(freq) == 0 {
			break
		}
		var best [2]string
		bestN := -1
		for p, f := range freq {
			if f > bestN || (f == bestN && p[0]+" "+p[1] < best[0]+" "+best[1]) {
				best, bestN = p, f
			}
		}
		merges = append(merges, best)
		joined := best[0] + best[1]
		for i, s := range seqs {
			out := s[:0]
			for j := 0; j < len(s); j++ {
				if j+1 < len(s) && s[j] == best[0] && s[j+1] == best[1] {
					out = append(out, joined)
					j++
					continue
				}
				out = append(out, s[j])
			}
			seqs[i] = out
		}
	}
	return merges
}

// Symbols splits a word's bytes into byte-level symbols, appending end to the last one
// (CLIP marks word ends with "</w>"; GPT-2 passes "").
func Symbols(word, end string) []string {
	out := make([]string, 0, len(word))
	for i := 0; i < len(word); i++ {
		out = append(out, string(ByteToUnicode[word[i]]))
	}
	if len(out) > 0 {
		out[len(out)-1] += end
	}
	return out
}
