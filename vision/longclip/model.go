package longclip

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"

	"synth/native"
	"synth/vision/nn"
	"synth/weights"
)

// Vision is the image tower (upstream VisionTransformer).
type Vision struct {
	Conv1  *native.Matrix // visual.conv1.weight [Wv, 3, P, P] as [Wv, 3*P*P], no bias
	Class  native.Tensor  // visual.class_embedding [1, Wv]
	Pos    native.Tensor  // visual.positional_embedding [G+1, Wv]
	LNPre  *nn.LayerNorm
	Blocks []*nn.Block // upstream ResidualAttentionBlock: pre-LN, packed in_proj, QuickGELU
	LNPost *nn.LayerNorm
	Proj   *nn.Linear // visual.proj [Wv, E], applied as x @ P (held transposed, [E, Wv])
}

// Text is the text tower.
type Text struct {
	Tokens *native.Matrix // token_embedding.weight [V, Wt]
	// Pos [Context, Wt]: row i is positional_embedding[i] for i < ShortPositions and
	// positional_embedding_res[i] after, which is what upstream's
	// x + pos*mask1 + pos_res*mask2 adds (the other term is an exact zero).
	Pos     native.Tensor
	Blocks  []*nn.Block
	LNFinal *nn.LayerNorm
	Proj    *nn.Linear // text_projection [Wt, E], applied as x @ P (held transposed)
}

// Model is a loaded Long-CLIP model. Matrices may point into the memory-mapped
// checkpoint: Close the model (which closes its weights) when done. A Model is read-only
// and may be used by several goroutines, each with its own native.Ctx.
type Model struct {
	Config     Config
	Vision     Vision
	Text       Text
	LogitScale float32 // logit_scale as stored (a log); similarities are scaled by exp of it

	// Trace, when set, is called with the intermediate activations of each forward pass
	// (for parity tests): names as in fixtures' intermediates.safetensors ("vision.block0.output",
	// "text.embeddings", ...), tensors [B, T, W] or [B, W], valid during the call only.
	Trace nn.Tracer

	src    *weights.Source
	files  []string // checkpoint files, for Fingerprint
	memory bool     // built from tensors in memory: no files to hash
	opt    Options

	fpOnce sync.Once
	fp     string
	fpErr  error
}

// Options control loading.
type Options struct {
	// DType is what Linear weights (attention, MLP, projections) become: F32 (the zero
	// value) keeps them as stored; F16, BF16, Q8_0 and Q4_0 convert at load. Weights stored
	// quantized (GGUF from synth convert) are used as stored.
	DType native.DType
	// UpstreamFP16 rounds the parameters upstream's build_model casts to float16
	// (convert_weights: conv, Linear and attention weights and biases, visual.proj,
	// text_projection) before computing in float32, as longclip.load does on the CPU.
	// Without it the stored float32 values are used (expected_fp32 in the fixtures).
	UpstreamFP16 bool
	// Config, when not nil, replaces config.json (its head counts and checks).
	Config []byte
	// Device is where the model runs (nil: the cpu).
	Device *native.Device
}

// Open loads a model from a folder (config.json beside one checkpoint file, and the
// tokenizer's bpe_simple_vocab_16e6.txt.gz), a .pt, .safetensors or .gguf file (a
// config.json beside the file is read when there is one; GGUF carries its own). The
// released checkpoints need no config.json.
func Open(path string, opt Options) (*Model, error) {
	src, err := weights.Open(path)
	if err != nil {
		return nil, fmt.Errorf("longclip: %w", err)
	}
	cfgJSON := opt.Config
	if cfgJSON == nil {
		cfgJSON = src.Config()
	}
	if cfgJSON == nil {
		if st, err := os.Stat(path); err == nil && !st.IsDir() {
			b, err := os.ReadFile(filepath.Join(filepath.Dir(path), "config.json"))
			if err == nil {
				cfgJSON = b
			} else if !errors.Is(err, os.ErrNotExist) {
				src.Close()
				return nil, fmt.Errorf("longclip: %w", err)
			}
		}
	}
	cfg, err := ConfigFromWeights(src, cfgJSON)
	if err != nil {
		src.Close()
		return nil, fmt.Errorf("longclip: %w", err)
	}
	m, err := Load(src, cfg, opt)
	if err != nil {
		src.Close()
		return nil, err
	}
	return m, nil
}

// Load builds the model from an opened checkpoint with the given dimensions (see
// ConfigFromWeights). The model takes ownership of src: Model.Close closes it. Every
// tensor of the checkpoint must be used; errors name the file and tensor.
func Load(src *weights.Source, cfg Config, opt Options) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("longclip: %w", err)
	}
	m := &Model{Config: cfg, src: src, files: src.Files(), memory: src.Format() == weights.FormatMemory || src.Format() == weights.FormatSynthetic, opt: opt}
	if opt.UpstreamFP16 {
		var err error
		if src, err = roundUpstreamFP16(src); err != nil {
			return nil, err
		}
	}
	l := nn.NewLoader(weights.NewScope(src), nn.Options{DType: opt.DType, Device: opt.Device})
	dev := l.Device()
	var errs []error
	// table keeps a tensor at float32 whatever DType says: upstream never rounds the token
	// embedding or the patch convolution's input side, and both are a small share of the
	// work. n x k is the matrix view of the tensor's dims.
	table := func(name string, n, k int, dims ...int) *native.Matrix {
		t := l.S.Get(name, dims...)
		if t.Data == nil {
			return nil
		}
		v, ok := t.F32View()
		if !ok {
			var err error
			if v, err = t.F32(); err != nil {
				errs = append(errs, fmt.Errorf("longclip: %s: %w", name, err))
				return nil
			}
		}
		mat, err := dev.NewMatrixF32(v, n, k)
		if err != nil {
			errs = append(errs, fmt.Errorf("longclip: %s: %w", name, err))
		}
		return mat
	}

	v, vw, p := cfg.Vision, cfg.Vision.Width, cfg.Vision.PatchSize
	m.Vision = Vision{
		Conv1:  table("visual.conv1.weight", vw, 3*p*p, vw, 3, p, p),
		Class:  l.Vector("visual.class_embedding", vw),
		Pos:    l.Vector("visual.positional_embedding", v.Tokens(), vw),
		LNPre:  l.LayerNorm("visual.ln_pre", vw, cfg.Eps),
		Blocks: loadBlocks(l.Sub("visual.transformer.resblocks"), v.Layers, vw, cfg.Eps),
		LNPost: l.LayerNorm("visual.ln_post", vw, cfg.Eps),
		Proj:   l.Projection("visual.proj", vw, cfg.EmbedDim),
	}

	t, tw := cfg.Text, cfg.Text.Width
	pos := l.F32("positional_embedding", t.Context, tw)
	res := l.F32("positional_embedding_res", t.Context, tw)
	if pos != nil && res != nil {
		n := min(ShortPositions, t.Context) * tw
		copy(res[:n], pos[:n]) // res is F32's own copy
	}
	m.Text = Text{
		Tokens:  table("token_embedding.weight", t.Vocab, tw, t.Vocab, tw),
		Blocks:  loadBlocks(l.Sub("transformer.resblocks"), t.Layers, tw, cfg.Eps),
		LNFinal: l.LayerNorm("ln_final", tw, cfg.Eps),
		Proj:    l.Projection("text_projection", tw, cfg.EmbedDim),
	}
	if res != nil {
		m.Text.Pos = dev.FromHost(res, t.Context, tw)
	}
	if ls := l.F32("logit_scale"); len(ls) == 1 {
		m.LogitScale = ls[0]
	}
	// Keys upstream build_model deletes when present (OpenAI's JIT archives carry them).
	for _, k := range []string{"input_resolution", "context_length", "vocab_size"} {
		l.S.Skip(k)
	}
	err := errors.Join(append(errs, l.Finish())...)
	if err != nil {
		return nil, fmt.Errorf("longclip: load %s: %w", src.Path(), err)
	}
	return m, nil
}

func loadBlocks(l *nn.Loader, n, w int, eps float32) []*nn.Block {
	names := nn.BlockNames{
		Norm1: "ln_1", Norm2: "ln_2",
		QKVWeight: "attn.in_proj_weight", QKVBias: "attn.in_proj_bias", Out: "attn.out_proj",
		FC1: "mlp.c_fc", FC2: "mlp.c_proj", OutHasBias: true, MLPHasBias: true,
	}
	blocks := make([]*nn.Block, n)
	for i := range blocks {
		blocks[i] = l.Sub("", i).Block(names, w, 4*w, eps, native.QuickGELU)
	}
	return blocks
}

// Device is where the model's weights live and it runs.
func (m *Model) Device() *native.Device {
	if m.opt.Device == nil {
		return native.CPU
	}
	return m.opt.Device
}

// Close releases the checkpoint the model's weights point into.
func (m *Model) Close() error {
	if m.src == nil {
		return nil
	}
	err := m.src.Close()
	m.src = nil
	return err
}

// Scale is exp(logit_scale), the factor upstream multiplies cosine similarities by to
// get logits (never clamped upstream).
func (m *Model) Scale() float32 { return float32(math.Exp(float64(m.LogitScale))) }
