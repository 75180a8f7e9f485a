package demo

import (
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"synth/vision/bpe"
	"synth/weights"
)

// corpus is text to learn the demo tokenizers' merges from: descriptions and keywords
// of garments drawn like the demo's products, so common words are single tokens.
func corpus(seed uint64) []string {
	r := rand.New(rand.NewPCG(seed, 0xc0de))
	var out []string
	for i := 0; i < 200; i++ {
		g := drawGarment(r)
		out = append(out, g.Description(), strings.Join(g.Keywords(), ", "))
	}
	return out
}

// wordPattern is a simplified GPT-2/CLIP pre-tokenizer: letter runs, single digits,
// punctuation runs. Training only needs roughly the same words the tokenizers will see.
var wordPattern = regexp.MustCompile(`\p{L}+|\p{N}|[^\s\p{L}\p{N}]+`)

// trainCLIP learns n merges in CLIP's style (lowercase, "</w>" at word ends).
func trainCLIP(texts []string, n int) [][2]string {
	words, counts := map[string][]string{}, map[string]int{}
	for _, t := range texts {
		for _, w := range wordPattern.FindAllString(strings.ToLower(t), -1) {
			words[w] = bpe.Symbols(w, "</w>")
			counts[w]++
		}
	}
	return bpe.Train(words, counts, n)
}

// trainGPT2 learns n merges in GPT-2's style (a word carries its leading space, "Ġ").
func trainGPT2(texts []string, n int) [][2]string {
	words, counts := map[string][]string{}, map[string]int{}
	for _, t := range texts {
		for i, w := range wordPattern.FindAllString(t, -1) {
			if i > 0 {
				w = " " + w
			}
			words[w] = bpe.Symbols(w, "")
			counts[w]++
		}
	}
	return bpe.Train(words, counts, n)
}

// writeCLIPMerges writes a merges file in the layout of bpe_simple_vocab_16e6.txt.gz.
func writeCLIPMerges(path string, merges [][2]string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	zw := gzip.NewWriter(f)
	fmt.Fprintln(zw, "#version: 0.2 (synth demo vocabulary)")
	for _, m := range merges {
		fmt.Fprintf(zw, "%s %s\n", m[0], m[1])
	}
	err = zw.Close()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("demo: write %s: %w", path, err)
	}
	return nil
}

// opt special tokens, at the ids facebook/opt-* uses.
var optSpecials = []string{"<s>", "<pad>", "</s>", "<unk>"}

// writeOPTTokenizer writes vocab.json, merges.txt and the special-token files of a
// GPT2Tokenizer in the layout of facebook/opt-*, and returns the vocabulary size and the
// id of "\n" (BLIP-2 OPT stops generating at a newline).
func writeOPTTokenizer(dir string, merges [][2]string) (vocab int, newline int32, err error) {
	ids := map[string]int32{}
	add := func(s string) {
		if _, ok := ids[s]; !ok {
			ids[s] = int32(len(ids))
		}
	}
	for _, s := range optSpecials {
		add(s)
	}
	for _, b := range bpe.ByteOrder {
		add(string(bpe.ByteToUnicode[b]))
	}
	var lines []string
	for _, m := range merges {
		add(m[0] + m[1])
		lines = append(lines, m[0]+" "+m[1])
	}
	files := map[string]any{
		"vocab.json": ids,
		"special_tokens_map.json": map[string]string{
			"bos_token": "</s>", "eos_token": "</s>", "unk_token": "</s>", "pad_token": "<pad>",
		},
		"tokenizer_config.json": map[string]any{
			"tokenizer_class": "GPT2Tokenizer", "add_bos_token": true, "bos_token": "</s>",
			"eos_token": "</s>", "unk_token": "</s>", "pad_token": "<pad>", "model_max_length": 1e30,
		},
	}
	for name, v := range files {
		if err := writeJSON(filepath.Join(dir, name), v); err != nil {
			return 0, 0, err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "merges.txt"), []byte("#version: 0.2\n"+strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		return 0, 0, fmt.Errorf("demo: %w", err)
	}
	return len(ids), ids[string(bpe.ByteToUnicode['\n'])], nil
}

func writeJSON(path string, v any) error {
	js, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if err := os.WriteFile(path, append(js, '\n'), 0o644); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	return nil
}

// randTensors fills named tensors with seeded random float32 values: LayerNorm weights
// near 1, biases and norms' shifts small, matrices N(0, 1/fan_in) like a trained model's
// scale, so activations stay in range through the layers.
type randTensors struct {
	r   *rand.Rand
	out []weights.Tensor
}

func (rt *randTensors) add(name string, shape []int, fill func(i int) float64) {
	n := 1
	for _, d := range shape {
		n *= d
	}
	b := make([]byte, 4*n)
	for i := 0; i < n; i++ {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(float32(fill(i))))
	}
	rt.out = append(rt.out, weights.Tensor{Name: name, DType: weights.F32, Shape: shape, Data: b})
}

func (rt *randTensors) normal(name string, std float64, shape ...int) {
	rt.add(name, shape, func(int) float64 { return rt.r.NormFloat64() * std })
}

func (rt *randTensors) linear(name string, out, in int, bias bool) {
	rt.normal(name+".weight", 1/math.Sqrt(float64(in)), out, in)
	if bias {
		rt.normal(name+".bias", 0.02, out)
	}
}

func (rt *randTensors) layerNorm(name string, c int) {
	rt.add(name+".weight", []int{c}, func(int) float64 { return 1 + 0.05*rt.r.NormFloat64() })
	rt.normal(name+".bias", 0.02, c)
}

func (rt *randTensors) sorted() []weights.Tensor {
	sort.Slice(rt.out, func(i, j int) bool { return rt.out[i].Name < rt.out[j].Name })
	return rt.out
}
