package opt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"synth/native"
	"synth/vision/nn"
)

// Config mirrors transformers' OPTConfig (config.json of an OPT model, or BLIP-2's
// text_config). Parse fills what a file leaves out with OPTConfig's defaults.
type Config struct {
	Vocab                int    `json:"vocab_size"`              // 50272
	Hidden               int    `json:"hidden_size"`             // 2560 (opt-2.7b)
	Layers               int    `json:"num_hidden_layers"`       // 32
	Heads                int    `json:"num_attention_heads"`     // 32
	FFN                  int    `json:"ffn_dim"`                 // 10240
	MaxPositions         int    `json:"max_position_embeddings"` // 2048; the table has 2 more rows
	WordEmbedProjDim     *int   `json:"word_embed_proj_dim"`     // nil: Hidden
	Activation           string `json:"activation_function"`     // relu
	DoLayerNormBefore    bool   `json:"do_layer_norm_before"`
	RemoveFinalLayerNorm bool   `json:"_remove_final_layer_norm"`
	EnableBias           bool   `json:"enable_bias"`
	LayerNormAffine      bool   `json:"layer_norm_elementwise_affine"`
	TieWordEmbeddings    bool   `json:"tie_word_embeddings"`
	BOS                  int32  `json:"bos_token_id"`
	PAD                  int32  `json:"pad_token_id"`
	EOS                  IDs    `json:"eos_token_id"`
	// Dropout rates, used only by training (synth finetune): after attention and after
	// fc2; on the attention weights; after the activation.
	Dropout           float32 `json:"dropout"`            // 0.1
	AttentionDropout  float32 `json:"attention_dropout"`  // 0
	ActivationDropout float32 `json:"activation_dropout"` // 0
}

// IDs is a token id or a list of them (config.json allows both for eos_token_id).
type IDs []int32

// UnmarshalJSON reads a number, a list of numbers or null.
func (ids *IDs) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		*ids = nil
		return nil
	}
	if len(b) > 0 && b[0] == '[' {
		var v []int32
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*ids = v
		return nil
	}
	var v int32
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*ids = IDs{v}
	return nil
}

// Defaults is OPTConfig() (transformers 4.40): the OPT-125m sizes and OPT's token ids.
func Defaults() Config {
	return Config{
		Vocab: 50272, Hidden: 768, Layers: 12, Heads: 12, FFN: 3072, MaxPositions: 2048,
		Activation: "relu", DoLayerNormBefore: true, EnableBias: true, LayerNormAffine: true,
		TieWordEmbeddings: true, BOS: 2, PAD: 1, EOS: IDs{2}, Dropout: 0.1,
	}
}

// ErrConfig marks a configuration this package cannot run.
var ErrConfig = errors.New("opt: unsupported config")

// Parse reads an OPT config.json (or BLIP-2's text_config object) over Defaults and
// validates it.
func Parse(js []byte) (Config, error) {
	cfg := Defaults()
	if err := json.Unmarshal(js, &cfg); err != nil {
		return Config{}, fmt.Errorf("opt: parse config: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// ProjDim is the embedding width P (word_embed_proj_dim, Hidden when unset).
func (c Config) ProjDim() int {
	if c.WordEmbedProjDim == nil {
		return c.Hidden
	}
	return *c.WordEmbedProjDim
}

// HeadDim is Hidden / Heads.
func (c Config) HeadDim() int { return c.Hidden / c.Heads }

// Validate checks sizes and the options this implementation covers.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case c.Vocab < 1 || c.Hidden < 1 || c.Layers < 1 || c.Heads < 1 || c.FFN < 1 || c.MaxPositions < 1 || c.ProjDim() < 1:
		return bad("sizes must be positive (vocab %d, hidden %d, layers %d, heads %d, ffn %d, positions %d, word_embed_proj_dim %d)",
			c.Vocab, c.Hidden, c.Layers, c.Heads, c.FFN, c.MaxPositions, c.ProjDim())
	case c.Hidden%c.Heads != 0:
		return bad("hidden_size %d is not a multiple of num_attention_heads %d", c.Hidden, c.Heads)
	case c.HeadDim() > native.MaxHeadDim:
		return bad("head dim %d exceeds %d", c.HeadDim(), native.MaxHeadDim)
	case !c.DoLayerNormBefore:
		return bad("do_layer_norm_before=false (post-LN OPT-350m) is not supported; BLIP-2's OPT models are pre-LN")
	case !c.TieWordEmbeddings:
		return bad("tie_word_embeddings=false: OPT's LM head is the embedding matrix")
	}
	if _, err := c.epilogue(); err != nil {
		return err
	}
	for _, id := range append([]int32{c.BOS, c.PAD}, c.EOS...) {
		if id < 0 || int(id) >= c.Vocab {
			return bad("token id %d outside the vocabulary of %d", id, c.Vocab)
		}
	}
	return nil
}

// epilogue maps activation_function to the fused GEMM epilogue.
func (c Config) epilogue() (native.Epilogue, error) {
	act, err := nn.Activation(c.Activation)
	if err != nil {
		return 0, fmt.Errorf("%w: activation_function: %w", ErrConfig, err)
	}
	return act, nil
}
