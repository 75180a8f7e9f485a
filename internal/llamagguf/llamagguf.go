// Package llamagguf writes random-weight Llama GGUF files that llama.cpp loads like a
// Llama 3.1 Instruct model: llama architecture metadata, a byte-level BPE vocabulary
// with Llama 3.1's special tokens, and a chat template in the Llama 3 turn format. The
// text they generate is meaningless; they exist for tests (Tiny, a fraction of a MB)
// and benchmarks (Llama32_1B and Llama31_8B, the real shapes, generated locally and
// never committed), and for the demo's LLM. WriteScripted makes the exception, a model
// whose text is known in advance, for tests of what commands do with an LLM's answer. It
// is imported by tests, benchmarks and internal/demo only.
package llamagguf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"synth/vision/bpe"
	"synth/weights"
)

// Config is a model's shape and storage. Dimension names follow llama.cpp's GGUF keys.
type Config struct {
	Name     string
	Vocab    int // n_vocab, special tokens included
	Specials int // Llama 3.1 special tokens at the end of the vocabulary: 11 up to <|python_tag|>, or 256
	Merges   int // BPE merges learned from the built-in corpus (fewer if it runs out)
	Embd     int // embedding_length
	Layers   int // block_count
	FF       int // feed_forward_length
	Heads    int // attention.head_count
	KVHeads  int // attention.head_count_kv
	CtxTrain int // context_length
	RopeBase float32
	// TiedOutput leaves out output.weight: llama.cpp then uses token_embd for the
	// output projection (Llama 3.2 1B does).
	TiedOutput bool
	// DType stores the 2-D weights (F32, F16, Q8_0, Q4_0); norms stay F32. Quantized
	// types are written as random blocks (scales fixed so weights have a standard
	// deviation near 0.02, as trained Llamas do), floats as N(0, 1/fan_in).
	DType weights.DType
	// Quantize makes Q8_0 and Q4_0 matrices the float model's weights quantized instead
	// of random blocks: files of one Seed written at different DTypes then hold one model
	// at different levels (quantization benchmarks; slow at real sizes).
	Quantize bool
	Seed     uint64
	// Script, when set, replaces the random weights by a model whose output is known:
	// after token Script[i] it predicts Script[i+1], and after the last one <|eot_id|>,
	// each with a logit margin of 80, whatever came before (attention and MLP weights
	// are zero, so the last token alone decides). A prompt ending with Script[0] makes it
	// write Script[1:] and stop, greedy or sampled. The tokens must be distinct and at
	// most Embd; DType must be F32.
	Script []int
}

// Tiny is the shape of the fixture tiny-llama-a (178K parameters) for command tests.
var Tiny = Config{
	Name: "tiny-llama", Vocab: 747, Specials: 11, Merges: 480, Embd: 64, Layers: 2, FF: 128,
	Heads: 4, KVHeads: 4, CtxTrain: 2048, RopeBase: 500000, DType: weights.F32, Seed: 1,
}

// Llama32_1B is Llama-3.2-1B-Instruct's shape (config.json of the HF release).
var Llama32_1B = Config{
	Name: "llama-3.2-1b-shape", Vocab: 128256, Specials: 256, Merges: 2000, Embd: 2048, Layers: 16,
	FF: 8192, Heads: 32, KVHeads: 8, CtxTrain: 131072, RopeBase: 500000, TiedOutput: true, DType: weights.Q4_0, Seed: 1,
}

// Llama31_8B is Llama-3.1-8B-Instruct's shape (config.json of the HF release).
var Llama31_8B = Config{
	Name: "llama-3.1-8b-shape", Vocab: 128256, Specials: 256, Merges: 2000, Embd: 4096, Layers: 32,
	FF: 14336, Heads: 32, KVHeads: 8, CtxTrain: 131072, RopeBase: 500000, DType: weights.Q4_0, Seed: 1,
}

// ChatTemplate renders chats in Llama 3's turn format (<|start_header_id|>role
// <|end_header_id|>\n\n content <|eot_id|>), with the knowledge and today date lines at
// the top of the system turn as Llama 3.1's own template writes them. llama.cpp knows
// the format by its header markers.
const ChatTemplate = `{{- bos_token }}
{%- if not date_string is defined %}{%- set date_string = "26 Jul 2024" %}{%- endif %}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content'] | trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{{- system_message + "<|eot_id|>" }}
{%- for message in messages %}
    {{- "<|start_header_id|>" + message['role'] + "<|end_header_id|>\n\n" + (message['content'] | trim) + "<|eot_id|>" }}
{%- endfor %}
{%- if add_generation_prompt %}{{- "<|start_header_id|>assistant<|end_header_id|>\n\n" }}{%- endif %}
`

// specialNames are Llama 3.1's first special tokens, in their id order; the rest are
// <|reserved_special_token_N|> continuing from 3.
var specialNames = []string{
	"<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
	"<|finetune_right_pad_id|>", "<|reserved_special_token_2|>", "<|start_header_id|>", "<|end_header_id|>",
	"<|eom_id|>", "<|eot_id|>", "<|python_tag|>",
}

// Vocabulary is a byte-level BPE vocabulary in GPT-2's encoding.
type Vocabulary struct {
	Tokens             []string
	Types              []int32 // 1 normal, 3 control
	Merges             []string
	BOS, EOS, EOT, EOM int
}

// corpus teaches the merges: product-description words, so that common words of the
// tests' prompts are single tokens as in a real vocabulary.
const corpus = `a red linen midi dress with puff sleeves and a v-neck . these black leather ankle boots have a
block heel and a side zip . slim fit blue jeans in stretch cotton denim with five pockets . a navy wool coat ,
double breasted , long length , with a notch lapel . white cotton t-shirt with a crew neck and a relaxed fit .
green silk scarf with a floral print . keywords : category : title : the product is made of soft fabric for
everyday wear , perfect for the office or a weekend . this shirt , this skirt , these trousers , the sweater ,
knit cardigan , cashmere jumper , oversized hoodie , pleated skirt , wide leg trousers , leather belt , gold
buttons , silver buckle , elastic waist , short sleeves , long sleeves , collar , hood , lining , comfortable ,
stylish , classic , modern , casual , elegant , warm , light , summer , winter , spring , autumn , women , men`

// NewVocabulary builds cfg's vocabulary: 256 byte tokens, up to cfg.Merges merged
// tokens learned from the corpus, filler tokens up to cfg.Vocab - cfg.Specials (never
// produced, they only give the output layer its real width) and the special tokens.
func NewVocabulary(cfg Config) (*Vocabulary, error) {
	if cfg.Specials < len(specialNames) {
		return nil, fmt.Errorf("llamagguf: %d special tokens, want at least %d", cfg.Specials, len(specialNames))
	}
	v := &Vocabulary{}
	for _, b := range bpe.ByteOrder { // token ids 0..255: GPT-2's byte symbols, printable first
		v.Tokens = append(v.Tokens, string(bpe.ByteToUnicode[b]))
	}
	room := cfg.Vocab - cfg.Specials - 256
	if room < 0 {
		return nil, fmt.Errorf("llamagguf: vocabulary of %d has no room for 256 bytes and %d specials", cfg.Vocab, cfg.Specials)
	}
	for _, m := range learnMerges(min(cfg.Merges, room)) {
		v.Merges = append(v.Merges, m[0]+" "+m[1])
		v.Tokens = append(v.Tokens, m[0]+m[1])
	}
	for i := 0; len(v.Tokens) < cfg.Vocab-cfg.Specials; i++ {
		v.Tokens = append(v.Tokens, fmt.Sprintf("[unused%d]", i))
	}
	for range v.Tokens {
		v.Types = append(v.Types, 1)
	}
	first := len(v.Tokens)
	for i := 0; i < cfg.Specials; i++ {
		name := fmt.Sprintf("<|reserved_special_token_%d|>", i-len(specialNames)+3)
		if i < len(specialNames) {
			name = specialNames[i]
		}
		v.Tokens = append(v.Tokens, name)
		v.Types = append(v.Types, 3)
	}
	v.BOS, v.EOS, v.EOT, v.EOM = first, first+9, first+9, first+8 // eos = <|eot_id|>, as Llama 3.1 Instruct
	return v, nil
}

// learnMerges runs byte-pair training on the corpus's words, each with its leading space
// as GPT-2's pre-tokenizer keeps it.
func learnMerges(n int) [][2]string {
	words, counts := map[string][]string{}, map[string]int{}
	for _, w := range strings.Fields(corpus) {
		w = " " + w
		words[w] = bpe.Symbols(w, "")
		counts[w]++
	}
	return bpe.Train(words, counts, n)
}

// Write writes the model cfg describes to path.
func Write(path string, cfg Config) error {
	if cfg.Heads <= 0 || cfg.KVHeads <= 0 || cfg.Embd%cfg.Heads != 0 || cfg.Heads%cfg.KVHeads != 0 {
		return fmt.Errorf("llamagguf: %s: heads %d, kv heads %d do not divide embedding %d", cfg.Name, cfg.Heads, cfg.KVHeads, cfg.Embd)
	}
	v, err := NewVocabulary(cfg)
	if err != nil {
		return err
	}
	headDim := cfg.Embd / cfg.Heads
	w := weights.NewGGUFWriter()
	var errs []error
	add := func(key string, value any) { errs = append(errs, w.Add(key, value)) }
	add("general.architecture", "llama")
	add("general.type", "model")
	add("general.name", cfg.Name)
	add("llama.vocab_size", uint32(cfg.Vocab))
	add("llama.context_length", uint32(cfg.CtxTrain))
	add("llama.embedding_length", uint32(cfg.Embd))
	add("llama.block_count", uint32(cfg.Layers))
	add("llama.feed_forward_length", uint32(cfg.FF))
	add("llama.attention.head_count", uint32(cfg.Heads))
	add("llama.attention.head_count_kv", uint32(cfg.KVHeads))
	add("llama.rope.dimension_count", uint32(headDim))
	add("llama.rope.freq_base", cfg.RopeBase)
	add("llama.attention.layer_norm_rms_epsilon", float32(1e-5))
	add("tokenizer.ggml.model", "gpt2")
	add("tokenizer.ggml.pre", "llama-bpe")
	add("tokenizer.ggml.tokens", v.Tokens)
	add("tokenizer.ggml.token_type", v.Types)
	add("tokenizer.ggml.merges", v.Merges)
	add("tokenizer.ggml.bos_token_id", uint32(v.BOS))
	add("tokenizer.ggml.eos_token_id", uint32(v.EOS))
	add("tokenizer.ggml.eot_token_id", uint32(v.EOT))
	add("tokenizer.ggml.eom_token_id", uint32(v.EOM))
	add("tokenizer.ggml.add_bos_token", true)
	add("tokenizer.ggml.add_eos_token", false)
	add("tokenizer.chat_template", ChatTemplate)

	kv := cfg.KVHeads * headDim
	script, err := scriptWeights(cfg, v)
	if err != nil {
		return err
	}
	matrix := func(name string, out, in int) {
		dt := cfg.DType
		errs = append(errs, w.AddTensorFunc(name, dt, []int{out, in}, func() ([]byte, error) {
			if script != nil {
				return f32Bytes(script(name, out, in)), nil
			}
			return randomMatrix(dt, out, in, seedFor(cfg.Seed, name), cfg.Quantize)
		}))
	}
	norm := func(name string) {
		errs = append(errs, w.AddTensorFunc(name, weights.F32, []int{cfg.Embd}, func() ([]byte, error) {
			rng := rand.New(rand.NewPCG(seedFor(cfg.Seed, name), 0))
			vals := make([]float32, cfg.Embd)
			for i := range vals {
				vals[i] = 1
				if script == nil {
					vals[i] += float32(0.1 * rng.NormFloat64())
				}
			}
			return f32Bytes(vals), nil
		}))
	}
	matrix("token_embd.weight", cfg.Vocab, cfg.Embd)
	for l := 0; l < cfg.Layers; l++ {
		p := fmt.Sprintf("blk.%d.", l)
		norm(p + "attn_norm.weight")
		matrix(p+"attn_q.weight", cfg.Embd, cfg.Embd)
		matrix(p+"attn_k.weight", kv, cfg.Embd)
		matrix(p+"attn_v.weight", kv, cfg.Embd)
		matrix(p+"attn_output.weight", cfg.Embd, cfg.Embd)
		norm(p + "ffn_norm.weight")
		matrix(p+"ffn_gate.weight", cfg.FF, cfg.Embd)
		matrix(p+"ffn_up.weight", cfg.FF, cfg.Embd)
		matrix(p+"ffn_down.weight", cfg.Embd, cfg.FF)
	}
	norm("output_norm.weight")
	if !cfg.TiedOutput {
		matrix("output.weight", cfg.Vocab, cfg.Embd)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("llamagguf: %s: %w", cfg.Name, err)
	}
	return w.WriteFile(path)
}

// scriptWeights returns the weights of cfg.Script's model by tensor name (nil without a
// Script): token i of the script embeds as the unit vector e_i, and the output row of
// the token that follows it has 10 at column i; RMS norm scales e_i by sqrt(Embd) = 8
// for Tiny, so the next token's logit is 80 and every other one 0.
func scriptWeights(cfg Config, v *Vocabulary) (func(name string, out, in int) []float32, error) {
	if cfg.Script == nil {
		return nil, nil
	}
	if cfg.DType != weights.F32 || cfg.TiedOutput {
		return nil, fmt.Errorf("llamagguf: %s: a scripted model needs F32 weights and its own output matrix", cfg.Name)
	}
	if len(cfg.Script) < 2 || len(cfg.Script) > cfg.Embd {
		return nil, fmt.Errorf("llamagguf: %s: script of %d tokens, want 2 to %d (the embedding width)", cfg.Name, len(cfg.Script), cfg.Embd)
	}
	seen := map[int]bool{}
	for _, t := range cfg.Script {
		if t < 0 || t >= cfg.Vocab || seen[t] {
			return nil, fmt.Errorf("llamagguf: %s: script token %d repeated or outside the vocabulary", cfg.Name, t)
		}
		seen[t] = true
	}
	next := append(slices.Clone(cfg.Script[1:]), v.EOT)
	return func(name string, out, in int) []float32 {
		m := make([]float32, out*in) // [out, in]; attention and MLP stay zero
		switch name {
		case "token_embd.weight":
			for i, t := range cfg.Script {
				m[t*in+i] = 1
			}
		case "output.weight":
			for i, t := range next {
				m[t*in+i] = 10
			}
		}
		return m
	}, nil
}

func f32Bytes(vals []float32) []byte {
	out := make([]byte, 4*len(vals))
	for i, f := range vals {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(f))
	}
	return out
}

func seedFor(seed uint64, name string) uint64 {
	h := uint64(14695981039346656037) // FNV-1a 64 offset basis
	for _, c := range []byte(name) {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return h ^ seed
}

// randomMatrix returns [out, in] random weights encoded in dt: random quantized blocks,
// or with quantize N(0, 1/in) values encoded like every other type.
func randomMatrix(dt weights.DType, out, in int, seed uint64, quantize bool) ([]byte, error) {
	n := out * in
	switch {
	case (dt == weights.Q8_0 || dt == weights.Q4_0) && !quantize:
		// Random quantized blocks: every bit pattern of the quants is a valid weight,
		// so they are filled straight from the generator and only the scales are set.
		// Q8_0: values q*d, q uniform in [-128, 127]; Q4_0: (q-8)*d, q in [0, 15]. The
		// scales give both a standard deviation of about 0.02.
		if in%32 != 0 {
			return nil, fmt.Errorf("llamagguf: %s needs rows that are a multiple of 32, got %d", dt, in)
		}
		blockBytes, d := 34, float32(0.02/74.0)
		if dt == weights.Q4_0 {
			blockBytes, d = 18, float32(0.02/4.6)
		}
		buf := make([]byte, n/32*blockBytes)
		var key [32]byte
		binary.LittleEndian.PutUint64(key[:], seed)
		rand.NewChaCha8(key).Read(buf)
		scale := weights.F32ToF16(d)
		for b := 0; b < len(buf); b += blockBytes {
			binary.LittleEndian.PutUint16(buf[b:], scale)
		}
		return buf, nil
	default:
		rng := rand.New(rand.NewPCG(seed, 1))
		vals := make([]float32, n)
		std := 1 / math.Sqrt(float64(in))
		for i := range vals {
			vals[i] = float32(rng.NormFloat64() * std)
		}
		if dt == weights.F32 {
			return f32Bytes(vals), nil
		}
		return weights.Quantize(dt, vals)
	}
}
