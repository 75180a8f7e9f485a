package llamacpp

import (
	"fmt"
	"io"
	"math"
	"os"
	"strconv"

	"synth/weights"
)

// llama.cpp aborts the process (GGML_ASSERT, or a crash on an out-of-range index) on
// some GGUF files it reads without checking, so LoadModel reads the file with synth's
// own GGUF parser first (package weights: header, every key-value, tensor infos and data
// bounds) and then checks the values llama.cpp (commit ec98e2002) trusts:
//
//   - gguf.cpp: an empty key, general.alignment not a u32 power of two (GGML_ASSERT in
//     gguf_get_val_u32) -- refused by weights.ParseGGUF;
//   - llama-vocab.cpp: tokenizer.ggml.tokens empty (SIGSEGV) or not strings, duplicate
//     tokens (GGML_ASSERT id_to_token.size() == token_to_id.size()), scores and
//     token_type arrays shorter than the tokens or of another type (read past their
//     end), merges not strings, special token ids (and, when absent, the defaults of the
//     tokenizer model) outside the vocabulary;
//   - llama-model.cpp load_hparams: block_count 0 or above LLAMA_MAX_LAYERS, per-layer
//     arrays of a non-integer type (GGML_ASSERT in get_arr) or the wrong length, an
//     unknown rope.scaling.type (GGML_ASSERT), expert counts that break its asserts;
//   - ggml-cpu ops.cpp: a negative or NaN norm epsilon (GGML_ASSERT(eps >= 0.0f),
//     reached only at the first decode).

// llamaMaxLayers and llamaMaxExperts are LLAMA_MAX_LAYERS and LLAMA_MAX_EXPERTS
// (llama-hparams.h).
const (
	llamaMaxLayers  = 512
	llamaMaxExperts = 512
)

// tokenizerDefaults are the special token ids llama.cpp assumes per tokenizer model when
// the file gives none (llama-vocab.cpp, load): they must be in the vocabulary too.
var tokenizerDefaults = map[string]map[string]int64{
	"llama": {"bos": 1, "eos": 2, "unknown": 0},
	"bert":  {"bos": 101, "unknown": 100, "seperator": 102, "padding": 0, "mask": 103},
	"gpt2":  {"bos": 11, "eos": 11},
	"t5":    {"eos": 1, "unknown": 2, "padding": 0},
}

// specialTokens are the tokenizer.ggml.<name>_token_id keys llama.cpp reads.
var specialTokens = []string{"bos", "eos", "eot", "eom", "unknown", "seperator", "padding", "cls", "mask",
	"fim_pre", "fim_suf", "fim_mid", "fim_pad", "fim_rep", "fim_sep", "prefix", "suffix", "middle"}

// CheckGGUF reads the GGUF file at path with synth's parser and checks what llama.cpp
// would abort on (see above). vocabOnly skips the model hyperparameters, which llama.cpp
// does not read then. The error wraps ErrLoad and names the key.
func CheckGGUF(path string, vocabOnly bool) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("llamacpp: load model: %w", err)
	}
	var magic [4]byte
	_, err = io.ReadFull(f, magic[:])
	f.Close()
	if err != nil || string(magic[:]) != "GGUF" {
		return fmt.Errorf("llamacpp: load model %s: %w: bad magic %q: not a GGUF file", path, ErrLoad, magic[:])
	}
	src, err := weights.Open(path)
	if err != nil {
		return fmt.Errorf("llamacpp: load model %s: %w: %w", path, ErrLoad, err)
	}
	defer src.Close()
	c := ggufCheck{src: src}
	if err := c.vocab(); err != nil {
		return fmt.Errorf("llamacpp: load model %s: %w: %w (llama.cpp would abort on it)", path, ErrLoad, err)
	}
	if !vocabOnly {
		if err := c.hparams(); err != nil {
			return fmt.Errorf("llamacpp: load model %s: %w: %w (llama.cpp would abort on it)", path, ErrLoad, err)
		}
	}
	return nil
}

type ggufCheck struct{ src *weights.Source }

func (c ggufCheck) int(key string) (int64, bool, error) {
	v, ok := c.src.Meta(key)
	if !ok {
		return 0, false, nil
	}
	n, isInt := intValue(v)
	if !isInt {
		return 0, true, fmt.Errorf("%s is a %T, want an integer", key, v)
	}
	return n, true, nil
}

func (c ggufCheck) vocab() error {
	model := "llama" // llama.cpp's default when the key is absent
	if v, ok := c.src.Meta("tokenizer.ggml.model"); ok {
		s, isStr := v.(string)
		if !isStr {
			return fmt.Errorf("tokenizer.ggml.model is a %T, want a string", v)
		}
		model = s
	}
	if model == "no_vocab" || model == "none" {
		return nil
	}
	v, ok := c.src.Meta("tokenizer.ggml.tokens")
	if !ok {
		return fmt.Errorf("no tokenizer.ggml.tokens")
	}
	tokens, isStrs := v.([]string)
	switch {
	case !isStrs:
		return fmt.Errorf("tokenizer.ggml.tokens is a %T, want an array of strings", v)
	case len(tokens) == 0:
		return fmt.Errorf("tokenizer.ggml.tokens is empty")
	}
	n := int64(len(tokens))
	seen := make(map[string]int, len(tokens))
	for i, t := range tokens {
		if t == "" {
			t = "[EMPTY_" + strconv.Itoa(i) + "]" // what llama.cpp puts in its place
		}
		if j, dup := seen[t]; dup {
			return fmt.Errorf("tokenizer.ggml.tokens: tokens %d and %d are both %q", j, i, t)
		}
		seen[t] = i
	}
	if v, ok := c.src.Meta("tokenizer.ggml.scores"); ok {
		if s, isF := v.([]float32); !isF || int64(len(s)) < n {
			return fmt.Errorf("tokenizer.ggml.scores is a %T of %d values, want float32 for each of the %d tokens", v, weights.ArrayLen(v), n)
		}
	}
	if v, ok := c.src.Meta("tokenizer.ggml.token_type"); ok {
		_, i32 := v.([]int32)
		_, u32 := v.([]uint32)
		if !(i32 || u32) || int64(weights.ArrayLen(v)) < n {
			return fmt.Errorf("tokenizer.ggml.token_type is a %T of %d values, want int32 for each of the %d tokens", v, weights.ArrayLen(v), n)
		}
	}
	if v, ok := c.src.Meta("tokenizer.ggml.merges"); ok {
		if _, isStrs := v.([]string); !isStrs {
			return fmt.Errorf("tokenizer.ggml.merges is a %T, want an array of strings", v)
		}
	} else if model == "gpt2" {
		return fmt.Errorf("a gpt2 (BPE) tokenizer without tokenizer.ggml.merges")
	}
	for _, name := range specialTokens {
		key := "tokenizer.ggml." + name + "_token_id"
		id, ok, err := c.int(key)
		if err != nil {
			return err
		}
		if !ok {
			d, hasDefault := tokenizerDefaults[model][name]
			if hasDefault && d >= n {
				return fmt.Errorf("no %s, and llama.cpp's default for a %q tokenizer, %d, is outside the %d tokens", key, model, d, n)
			}
			continue
		}
		if id < 0 || id >= n {
			return fmt.Errorf("%s = %d is outside the %d tokens", key, id, n)
		}
	}
	return nil
}

func (c ggufCheck) hparams() error {
	v, ok := c.src.Meta("general.architecture")
	arch, isStr := v.(string)
	if !ok || !isStr || arch == "" {
		return fmt.Errorf("general.architecture is missing or not a string")
	}
	key := func(k string) string { return arch + "." + k }

	layers, ok, err := c.int(key("block_count"))
	switch {
	case err != nil:
		return err
	case !ok:
		return fmt.Errorf("no %s", key("block_count"))
	case layers < 1 || layers > llamaMaxLayers:
		return fmt.Errorf("%s = %d, want 1 to %d", key("block_count"), layers, llamaMaxLayers)
	}
	for _, k := range []string{"embedding_length", "context_length"} {
		n, ok, err := c.int(key(k))
		if err != nil {
			return err
		}
		if ok && n < 1 {
			return fmt.Errorf("%s = %d, want a positive size", key(k), n)
		}
	}
	heads := map[string]int64{}
	for _, k := range []string{"feed_forward_length", "attention.head_count", "attention.head_count_kv"} {
		v, ok := c.src.Meta(key(k))
		if !ok {
			continue
		}
		if n, isInt := intValue(v); isInt {
			if n < 0 {
				return fmt.Errorf("%s = %d is negative", key(k), n)
			}
			heads[k] = n
			continue
		}
		_, i32 := v.([]int32)
		_, u32 := v.([]uint32)
		if !(i32 || u32) || int64(weights.ArrayLen(v)) != layers {
			return fmt.Errorf("%s is a %T of %d values, want an integer or an int32 array of one per layer (%d)", key(k), v, weights.ArrayLen(v), layers)
		}
	}
	if h, kv := heads["attention.head_count"], heads["attention.head_count_kv"]; h > 0 {
		if _, set := heads["attention.head_count_kv"]; set && (kv == 0 || h%kv != 0) {
			return fmt.Errorf("%s = %d does not divide %s = %d", key("attention.head_count_kv"), kv, key("attention.head_count"), h)
		}
	}
	for _, k := range []string{"attention.layer_norm_epsilon", "attention.layer_norm_rms_epsilon"} {
		if v, ok := c.src.Meta(key(k)); ok {
			f, isF := floatValue(v)
			if !isF || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
				return fmt.Errorf("%s = %v, want a finite epsilon >= 0", key(k), v)
			}
		}
	}
	if v, ok := c.src.Meta(key("rope.scaling.type")); ok {
		switch v {
		case "none", "linear", "yarn", "longrope":
		default:
			return fmt.Errorf("%s = %v, want none, linear, yarn or longrope", key("rope.scaling.type"), v)
		}
	}
	for _, k := range []string{"rope.freq_base", "rope.scaling.factor"} {
		if v, ok := c.src.Meta(key(k)); ok {
			f, isF := floatValue(v)
			if !isF || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
				return fmt.Errorf("%s = %v, want a finite value >= 0", key(k), v)
			}
		}
	}
	experts, _, err := c.int(key("expert_count"))
	if err != nil {
		return err
	}
	used, _, err := c.int(key("expert_used_count"))
	if err != nil {
		return err
	}
	groups, _, err := c.int(key("expert_group_count"))
	if err != nil {
		return err
	}
	switch {
	case experts < 0 || experts > llamaMaxExperts:
		return fmt.Errorf("%s = %d, want 0 to %d", key("expert_count"), experts, llamaMaxExperts)
	case experts > 0 && (used < 1 || used > experts):
		return fmt.Errorf("%s = %d, want 1 to %s (%d)", key("expert_used_count"), used, key("expert_count"), experts)
	case experts > 0 && (groups < 0 || groups >= experts):
		return fmt.Errorf("%s = %d, want fewer than %s (%d)", key("expert_group_count"), groups, key("expert_count"), experts)
	case experts == 0 && (used != 0 || groups != 0):
		return fmt.Errorf("%s and %s must be 0 without experts", key("expert_used_count"), key("expert_group_count"))
	}
	return nil
}

func intValue(v any) (int64, bool) {
	switch x := v.(type) {
	case uint8:
		return int64(x), true
	case int8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case int16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case int32:
		return int64(x), true
	case uint64:
		if x > math.MaxInt64 {
			return math.MaxInt64, true
		}
		return int64(x), true
	case int64:
		return x, true
	}
	return 0, false
}

func floatValue(v any) (float64, bool) {
	switch x := v.(type) {
	case float32:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}
