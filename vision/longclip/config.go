package longclip

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"synth/native"
	"synth/weights"
)

// Upstream constants (model_longclip.py).
const (
	// ShortPositions is how many leading text positions use positional_embedding; the
	// rest use positional_embedding_res (upstream mask1/mask2, load_from_clip keep_len).
	ShortPositions = 20
	// LayerNormEps is torch's nn.LayerNorm default, used by every norm of the model.
	LayerNormEps = 1e-5
	// headWidth is the head width upstream assumes when it derives head counts
	// (heads = width // 64).
	headWidth = 64
)

// ErrConfig marks a checkpoint or config.json that does not describe a Long-CLIP model.
var ErrConfig = errors.New("longclip: bad model config")

// Config holds the model's dimensions. Its JSON form is the config.json that may sit
// beside a checkpoint (the fixtures' layout); a GGUF file from synth convert carries it
// in its metadata.
type Config struct {
	EmbedDim int          `json:"embed_dim"` // E: 768 (L), 512 (B)
	Vision   VisionConfig `json:"vision"`
	Text     TextConfig   `json:"text"`
	Eps      float32      `json:"layer_norm_eps,omitempty"` // 1e-5
}

// VisionConfig describes the ViT image tower.
type VisionConfig struct {
	Width      int `json:"width"`            // Wv: 1024 (L), 768 (B)
	Layers     int `json:"layers"`           // 24 (L), 12 (B)
	Heads      int `json:"heads"`            // Wv/64 unless config.json says otherwise
	PatchSize  int `json:"patch_size"`       // P: 14 (L), 16 (B)
	Resolution int `json:"image_resolution"` // S: 224
}

// TextConfig describes the text tower.
type TextConfig struct {
	Width   int `json:"width"`          // Wt: 768 (L), 512 (B)
	Layers  int `json:"layers"`         // 12
	Heads   int `json:"heads"`          // Wt/64 unless config.json says otherwise
	Context int `json:"context_length"` // 248
	Vocab   int `json:"vocab_size"`     // V: 49408
}

// Grid is the number of patches per image side, S/P.
func (v VisionConfig) Grid() int { return v.Resolution / v.PatchSize }

// Tokens is the vision sequence length, G+1.
func (v VisionConfig) Tokens() int { return v.Grid()*v.Grid() + 1 }

// LongCLIPL and LongCLIPB are the released models' dimensions
// (fixtures/longclip/real-config.json).
var (
	LongCLIPL = Config{EmbedDim: 768, Eps: LayerNormEps,
		Vision: VisionConfig{Width: 1024, Layers: 24, Heads: 16, PatchSize: 14, Resolution: 224},
		Text:   TextConfig{Width: 768, Layers: 12, Heads: 12, Context: 248, Vocab: 49408}}
	LongCLIPB = Config{EmbedDim: 512, Eps: LayerNormEps,
		Vision: VisionConfig{Width: 768, Layers: 12, Heads: 12, PatchSize: 16, Resolution: 224},
		Text:   TextConfig{Width: 512, Layers: 12, Heads: 8, Context: 248, Vocab: 49408}}
)

// Validate checks that the dimensions make a model the forward pass can run.
func (c Config) Validate() error {
	var errs []string
	pos := func(name string, v int) {
		if v <= 0 {
			errs = append(errs, fmt.Sprintf("%s = %d must be positive", name, v))
		}
	}
	pos("embed_dim", c.EmbedDim)
	pos("vision.width", c.Vision.Width)
	pos("vision.layers", c.Vision.Layers)
	pos("vision.patch_size", c.Vision.PatchSize)
	pos("vision.image_resolution", c.Vision.Resolution)
	pos("text.width", c.Text.Width)
	pos("text.layers", c.Text.Layers)
	pos("text.context_length", c.Text.Context)
	pos("text.vocab_size", c.Text.Vocab)
	heads := func(tower string, width, h int) {
		switch {
		case h <= 0:
			errs = append(errs, fmt.Sprintf("%s.heads = %d (width %d // 64 gives none): give the head count in config.json", tower, h, width))
		case width%h != 0:
			errs = append(errs, fmt.Sprintf("%s.heads = %d does not divide width %d", tower, h, width))
		case width/h > native.MaxHeadDim:
			errs = append(errs, fmt.Sprintf("%s head width %d exceeds %d", tower, width/h, native.MaxHeadDim))
		}
	}
	heads("vision", c.Vision.Width, c.Vision.Heads)
	heads("text", c.Text.Width, c.Text.Heads)
	if c.Vision.PatchSize > 0 && c.Vision.Resolution%c.Vision.PatchSize != 0 {
		errs = append(errs, fmt.Sprintf("vision.image_resolution %d is not a multiple of patch_size %d", c.Vision.Resolution, c.Vision.PatchSize))
	}
	if c.Eps < 0 || math.IsNaN(float64(c.Eps)) {
		errs = append(errs, fmt.Sprintf("layer_norm_eps %v", c.Eps))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s", ErrConfig, strings.Join(errs, "; "))
	}
	return nil
}

// ConfigFromWeights derives the dimensions from a checkpoint's tensors the way upstream
// build_model does (vision width, patch and layer count from the visual tensors, grid
// from visual.positional_embedding, embed_dim from text_projection, context from
// positional_embedding, vocabulary from token_embedding, text width from ln_final, text
// layers from the resblock indices, heads = width // 64). configJSON, when not nil, is a
// config.json in Config's form: its head counts replace the derived ones (the tiny test
// models are narrower than 64 per head), and every other dimension it gives must agree
// with the checkpoint.
func ConfigFromWeights(src *weights.Source, configJSON []byte) (Config, error) {
	if !src.Has("visual.proj") {
		if src.Has("visual.layer1.0.conv1.weight") {
			return Config{}, fmt.Errorf("%w: %s holds a ResNet image tower (CLIP RN*); Long-CLIP models are ViTs", ErrConfig, src.Path())
		}
		return Config{}, fmt.Errorf("%w: %s has no visual.proj: not a Long-CLIP (CLIP ViT) checkpoint", ErrConfig, src.Path())
	}
	var errs []string
	dims := func(name string, rank int) []int {
		t, err := src.Tensor(name)
		if err != nil {
			errs = append(errs, fmt.Sprintf("no %s", name))
			return make([]int, rank)
		}
		if len(t.Shape) != rank {
			errs = append(errs, fmt.Sprintf("%s has shape %v, want %d dims", name, t.Shape, rank))
			return make([]int, rank)
		}
		return t.Shape
	}
	conv := dims("visual.conv1.weight", 4)
	vpos := dims("visual.positional_embedding", 2)
	tproj := dims("text_projection", 2)
	tpos := dims("positional_embedding", 2)
	tok := dims("token_embedding.weight", 2)
	lnf := dims("ln_final.weight", 1)
	if len(errs) > 0 {
		return Config{}, fmt.Errorf("%w: %s: %s", ErrConfig, src.Path(), strings.Join(errs, "; "))
	}
	var c Config
	c.Eps = LayerNormEps
	c.Vision.Width = conv[0]
	c.Vision.PatchSize = conv[3]
	grid := int(math.Round(math.Sqrt(float64(vpos[0] - 1))))
	c.Vision.Resolution = c.Vision.PatchSize * grid
	c.Vision.Layers = countLayers(src, "visual.transformer.resblocks.")
	c.Vision.Heads = c.Vision.Width / headWidth
	c.EmbedDim = tproj[1]
	c.Text.Context = tpos[0]
	c.Text.Vocab = tok[0]
	c.Text.Width = lnf[0]
	c.Text.Heads = c.Text.Width / headWidth
	c.Text.Layers = countLayers(src, "transformer.resblocks.")
	if grid*grid+1 != vpos[0] {
		return Config{}, fmt.Errorf("%w: %s: visual.positional_embedding has %d rows, not a square grid plus the class token", ErrConfig, src.Path(), vpos[0])
	}
	if configJSON != nil {
		if err := c.applyJSON(configJSON); err != nil {
			return Config{}, fmt.Errorf("%s: %w", src.Path(), err)
		}
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", src.Path(), err)
	}
	return c, nil
}

// countLayers counts the distinct block indices under prefix ("<prefix><i>.").
func countLayers(src *weights.Source, prefix string) int {
	seen := map[int]bool{}
	for _, t := range src.Tensors() {
		rest, ok := strings.CutPrefix(t.Name, prefix)
		if !ok {
			continue
		}
		i, _, _ := strings.Cut(rest, ".")
		if n, err := strconv.Atoi(i); err == nil {
			seen[n] = true
		}
	}
	return len(seen)
}

// applyJSON takes the head counts and eps of a config.json and checks its other
// dimensions against the derived ones.
func (c *Config) applyJSON(data []byte) error {
	var j Config
	if err := json.Unmarshal(data, &j); err != nil {
		return fmt.Errorf("%w: config.json: %v", ErrConfig, err)
	}
	if j.Vision.Heads > 0 {
		c.Vision.Heads = j.Vision.Heads
	}
	if j.Text.Heads > 0 {
		c.Text.Heads = j.Text.Heads
	}
	if j.Eps > 0 {
		c.Eps = j.Eps
	}
	check := map[string][2]int{
		"embed_dim":               {j.EmbedDim, c.EmbedDim},
		"vision.width":            {j.Vision.Width, c.Vision.Width},
		"vision.layers":           {j.Vision.Layers, c.Vision.Layers},
		"vision.patch_size":       {j.Vision.PatchSize, c.Vision.PatchSize},
		"vision.image_resolution": {j.Vision.Resolution, c.Vision.Resolution},
		"text.width":              {j.Text.Width, c.Text.Width},
		"text.layers":             {j.Text.Layers, c.Text.Layers},
		"text.context_length":     {j.Text.Context, c.Text.Context},
		"text.vocab_size":         {j.Text.Vocab, c.Text.Vocab},
	}
	var bad []string
	for k, v := range check {
		if v[0] != 0 && v[0] != v[1] {
			bad = append(bad, fmt.Sprintf("%s %d (the checkpoint has %d)", k, v[0], v[1]))
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return fmt.Errorf("%w: config.json disagrees with the checkpoint: %s", ErrConfig, strings.Join(bad, "; "))
	}
	return nil
}

// String is the config as one JSON line.
func (c Config) String() string {
	b, _ := json.Marshal(c)
	return string(b)
}
