package blip2

import (
	"encoding/json"
	"errors"
	"fmt"

	"synth/native"
	"synth/vision/nn"
	"synth/vision/opt"
)

// VisionConfig mirrors Blip2VisionConfig.
type VisionConfig struct {
	Hidden       int     `json:"hidden_size"`         // D, 1408
	Intermediate int     `json:"intermediate_size"`   // 6144
	Layers       int     `json:"num_hidden_layers"`   // 39
	Heads        int     `json:"num_attention_heads"` // 16
	ImageSize    int     `json:"image_size"`          // S, 224
	PatchSize    int     `json:"patch_size"`          // p, 14
	Act          string  `json:"hidden_act"`          // gelu (exact erf)
	Eps          float32 `json:"layer_norm_eps"`      // 1e-6
	QKVBias      bool    `json:"qkv_bias"`
}

// QFormerConfig mirrors Blip2QFormerConfig.
type QFormerConfig struct {
	Hidden             int     `json:"hidden_size"`               // H, 768
	Layers             int     `json:"num_hidden_layers"`         // 12
	Heads              int     `json:"num_attention_heads"`       // 12
	Intermediate       int     `json:"intermediate_size"`         // 3072
	Act                string  `json:"hidden_act"`                // gelu
	Eps                float32 `json:"layer_norm_eps"`            // 1e-12
	CrossAttnFrequency int     `json:"cross_attention_frequency"` // 2: layers 0, 2, 4, ...
	EncoderHidden      int     `json:"encoder_hidden_size"`       // = VisionConfig.Hidden
	PositionEmbedType  string  `json:"position_embedding_type"`   // absolute (unused by the queries)
	// Dropout rates, used only by training (synth finetune).
	HiddenDropout float32 `json:"hidden_dropout_prob"`          // 0.1
	AttnDropout   float32 `json:"attention_probs_dropout_prob"` // 0.1
}

// Config mirrors Blip2Config (config.json of a Blip2ForConditionalGeneration folder).
type Config struct {
	Vision         VisionConfig  `json:"vision_config"`
	QFormer        QFormerConfig `json:"qformer_config"`
	Text           opt.Config    `json:"-"`
	NumQueryTokens int           `json:"num_query_tokens"` // Q, 32
}

// ErrConfig marks a configuration this package cannot run.
var ErrConfig = errors.New("blip2: unsupported config")

// Defaults is Blip2Config() (transformers 4.40): the blip2-opt sizes of the vision tower
// and Q-Former, 32 queries and OPTConfig's defaults for the text model.
func Defaults() Config {
	return Config{
		Vision: VisionConfig{Hidden: 1408, Intermediate: 6144, Layers: 39, Heads: 16, ImageSize: 224, PatchSize: 14,
			Act: "gelu", Eps: 1e-6, QKVBias: true},
		QFormer: QFormerConfig{Hidden: 768, Layers: 12, Heads: 12, Intermediate: 3072, Act: "gelu", Eps: 1e-12,
			CrossAttnFrequency: 2, EncoderHidden: 1408, PositionEmbedType: "absolute",
			HiddenDropout: 0.1, AttnDropout: 0.1},
		Text:           opt.Defaults(),
		NumQueryTokens: 32,
	}
}

// Parse reads a BLIP-2 config.json over Defaults (the diff form that to_json_file writes
// leaves defaults out, also inside the nested configs) and validates it.
func Parse(js []byte) (Config, error) {
	cfg := Defaults()
	if err := json.Unmarshal(js, &cfg); err != nil {
		return Config{}, fmt.Errorf("blip2: parse config: %w", err)
	}
	var raw struct {
		ModelType string          `json:"model_type"`
		Text      json.RawMessage `json:"text_config"`
	}
	if err := json.Unmarshal(js, &raw); err != nil {
		return Config{}, fmt.Errorf("blip2: parse config: %w", err)
	}
	if raw.ModelType != "" && raw.ModelType != "blip-2" {
		return Config{}, fmt.Errorf("%w: model_type %q is not blip-2", ErrConfig, raw.ModelType)
	}
	if len(raw.Text) > 0 && string(raw.Text) != "null" {
		var kind struct {
			ModelType string `json:"model_type"`
		}
		if err := json.Unmarshal(raw.Text, &kind); err != nil {
			return Config{}, fmt.Errorf("blip2: parse text_config: %w", err)
		}
		if kind.ModelType != "" && kind.ModelType != "opt" {
			return Config{}, fmt.Errorf("%w: text_config.model_type %q: only OPT language models are supported", ErrConfig, kind.ModelType)
		}
		text, err := opt.Parse(raw.Text)
		if err != nil {
			return Config{}, fmt.Errorf("blip2: text_config: %w", err)
		}
		cfg.Text = text
	}
	// Blip2Config.__init__ sets the Q-Former's encoder width to the vision width.
	cfg.QFormer.EncoderHidden = cfg.Vision.Hidden
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Tokens is the number of vision tokens T: patches plus the class token.
func (v VisionConfig) Tokens() int {
	g := v.ImageSize / v.PatchSize
	return g*g + 1
}

// Validate checks sizes and the options this implementation covers.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	v, q := c.Vision, c.QFormer
	switch {
	case v.Hidden < 1 || v.Intermediate < 1 || v.Layers < 1 || v.Heads < 1 || v.PatchSize < 1 || v.ImageSize < v.PatchSize:
		return bad("vision sizes (hidden %d, intermediate %d, layers %d, heads %d, image %d, patch %d)",
			v.Hidden, v.Intermediate, v.Layers, v.Heads, v.ImageSize, v.PatchSize)
	case v.ImageSize%v.PatchSize != 0:
		return bad("image_size %d is not a multiple of patch_size %d", v.ImageSize, v.PatchSize)
	case v.Hidden%v.Heads != 0 || v.Hidden/v.Heads > native.MaxHeadDim:
		return bad("vision hidden_size %d over %d heads", v.Hidden, v.Heads)
	case q.Hidden < 1 || q.Layers < 1 || q.Heads < 1 || q.Intermediate < 1 || q.CrossAttnFrequency < 1:
		return bad("qformer sizes (hidden %d, layers %d, heads %d, intermediate %d, cross_attention_frequency %d)",
			q.Hidden, q.Layers, q.Heads, q.Intermediate, q.CrossAttnFrequency)
	case q.Hidden%q.Heads != 0 || q.Hidden/q.Heads > native.MaxHeadDim:
		return bad("qformer hidden_size %d over %d heads", q.Hidden, q.Heads)
	case q.PositionEmbedType != "absolute":
		return bad("qformer position_embedding_type %q (only absolute: the queries use no positions)", q.PositionEmbedType)
	case c.NumQueryTokens < 1:
		return bad("num_query_tokens %d", c.NumQueryTokens)
	case c.Text.ProjDim() != c.Text.Hidden:
		// upstream concatenates the projected queries (width hidden_size) with token
		// embeddings (width word_embed_proj_dim): it cannot run either
		return bad("text word_embed_proj_dim %d != hidden_size %d, which BLIP-2 cannot concatenate", c.Text.ProjDim(), c.Text.Hidden)
	}
	if _, err := epilogue(v.Act); err != nil {
		return fmt.Errorf("vision_config: %w", err)
	}
	if _, err := epilogue(q.Act); err != nil {
		return fmt.Errorf("qformer_config: %w", err)
	}
	return nil
}

// epilogue maps a hidden_act name to the fused GEMM epilogue.
func epilogue(act string) (native.Epilogue, error) {
	e, err := nn.Activation(act)
	if err != nil {
		return 0, fmt.Errorf("%w: hidden_act: %w", ErrConfig, err)
	}
	return e, nil
}
