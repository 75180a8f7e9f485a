package weights

import (
	"encoding/json"
	"fmt"
	"path"
	"path/filepath"
	"strings"
)

// Converting a checkpoint to GGUF: tensor names and shapes stay the checkpoint's, the
// config.json text goes into the synth.config_json metadata, so a loader opens the GGUF
// file exactly like the original (Open + Config + Scope). Which tensors are quantized is
// decided per tensor (see Plan).

// DefaultKeep are the name patterns (path.Match globs over the full name; "*" also
// matches dots) kept in F32 by default: norms, token embedding tables that are only
// gathered from (Long-CLIP's token_embedding), position tables, class tokens, the
// embedding projections (Long-CLIP's text_projection / visual.proj, BLIP-2's
// language_projection), learned queries and the logit scale. They are small or
// precision-sensitive. OPT's embed_tokens is not kept: it is also the LM head, the
// largest Linear of the decoder (50272 x 2560), and EVA's self_attn.projection is an
// ordinary Linear; both are quantized like llama.cpp quantizes token_embd.
var DefaultKeep = []string{
	"*norm*", "*Norm*", "*ln_*", "*token_embedding*", "*positional_embedding*",
	"*position_embedding*", "*embed_positions*", "*class_embedding*",
	"*text_projection*", "*visual.proj", "*language_projection*", "*query_tokens*",
	"*logit_scale*",
}

// Codec decodes and encodes tensor data for ConvertToGGUF, giving the same values and
// bytes as Dequantize and Quantize (the tests hold the pure-Go codecs to the linked ggml
// bit for bit) but faster, and for types the pure-Go Quantize does not write (the
// K-quants). Package weights has no cgo: the caller passes one that has it (synth
// convert: native/ggml, which calls ggml_quantize_chunk).
type Codec interface {
	// ToF32 decodes n values of d (any type Dequantize takes).
	ToF32(d DType, data []byte, n int) ([]float32, error)
	// Quantize encodes rows x cols values as d (cols a multiple of d's block size).
	Quantize(d DType, src []float32, rows, cols int) ([]byte, error)
}

// ConvertOptions control ConvertToGGUF.
type ConvertOptions struct {
	// Type is what the selected weights become: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0,
	// Q5_1, or (with a Codec) Q4_K, Q5_K, Q6_K. Everything else is stored as F32 (float
	// tensors) or as is (integer tensors). A K-quant's super-blocks hold 256 values: a
	// weight whose rows are not whole super-blocks takes KQuantFallback's type instead.
	Type DType
	// Keep patterns are stored F32 whatever the other rules say.
	Keep []string
	// Quantize patterns are stored as Type even where the default rules keep F32 (they
	// must fit Type's block size: last dim a multiple of it); Keep wins over Quantize.
	Quantize []string
	// Adapter, when set, is merged into the base weights in float32 before encoding
	// (W += scale * B @ A); its modules_to_save tensors replace the base ones.
	Adapter *Adapter
	// Architecture and Name become general.architecture and general.name.
	Architecture string
	Name         string
	// Config is the config.json text stored under ConfigKey (default: src.Config()).
	Config []byte
	// Threads encode large tensors in parallel (0 or 1: one goroutine) when Codec is nil.
	Threads int
	// Codec, when set, decodes and quantizes instead of the pure-Go Dequantize and
	// QuantizeParallel (the same bytes). The K-quants need one.
	Codec Codec
	// Progress, when set, is called after each tensor is written.
	Progress func(done, total int, name string, bytes int64)
}

// PlanItem says what ConvertToGGUF does with one tensor.
type PlanItem struct {
	Name   string
	Shape  []int
	From   DType
	To     DType
	Merged bool   // LoRA delta folded in
	Reason string // which rule decided
}

func matchAny(patterns []string, name string) (string, bool) {
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return p, true
		}
	}
	return "", false
}

// Writable reports whether synth writes d (the K-quants through a Codec).
func Writable(d DType) bool {
	switch d {
	case F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K:
		return true
	}
	return false
}

// KQuantFallback is the type a weight takes under a K-quant Type when its rows are not
// whole 256-value super-blocks (EVA ViT-g's 1408-wide inputs): a 32-value type the
// kernels run, at least as precise (Q4_K: Q4_0, same size; Q5_K and Q6_K: Q8_0), like
// llama.cpp's fallbacks for such tensors. Other types have none (Invalid).
func KQuantFallback(d DType) DType {
	switch d {
	case Q4_K:
		return Q4_0
	case Q5_K, Q6_K:
		return Q8_0
	}
	return Invalid
}

// Plan decides each tensor's stored type, in this order: integer tensors as they are;
// --keep patterns F32; --quantize patterns Type (an error if the shape cannot take it);
// DefaultKeep F32; 2-D tensors whose name ends in "weight" (Linear weights, including
// packed ones like in_proj_weight) with both dims multiples of Type's block size become
// Type (a K-quant: rows of whole 256-value super-blocks and a multiple of 32 rows, else
// KQuantFallback when both dims are multiples of 32); everything else F32.
func Plan(src *Source, opts ConvertOptions) ([]PlanItem, error) {
	if !Writable(opts.Type) {
		return nil, fmt.Errorf("weights: convert: %w: cannot write %s (use F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K or Q6_K)", ErrDType, opts.Type)
	}
	if opts.Codec == nil && KQuantFallback(opts.Type) != Invalid {
		return nil, fmt.Errorf("weights: convert: %w: %s needs a Codec (synth convert passes ggml's)", ErrDType, opts.Type)
	}
	for _, p := range append(append([]string{}, opts.Keep...), opts.Quantize...) {
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("weights: convert: bad pattern %q: %w", p, err)
		}
	}
	bs := opts.Type.BlockSize()
	var plan []PlanItem
	for _, t := range src.Tensors() {
		it := PlanItem{Name: t.Name, Shape: t.Shape, From: t.DType, To: F32}
		if opts.Adapter != nil && strings.HasSuffix(t.Name, ".weight") {
			if l := opts.Adapter.Lookup(strings.TrimSuffix(t.Name, ".weight")); l != nil {
				want := []int{l.Out, l.In}
				if !t.DType.IsFloat() || !shapeMatches(t.Shape, want) {
					return nil, fmt.Errorf("weights: convert: tensor %q: %w: %s %v cannot take the adapter's %dx%d LoRA (want %v)",
						t.Name, ErrShape, t.DType, t.Shape, l.Out, l.In, want)
				}
				it.Merged = true
			}
		}
		switch {
		case !t.DType.IsFloat():
			if t.DType.GGMLType() < 0 {
				return nil, fmt.Errorf("weights: convert: tensor %q: %w: GGUF cannot store %s", t.Name, ErrDType, t.DType)
			}
			it.To, it.Reason = t.DType, "integer tensor"
		default:
			if p, ok := matchAny(opts.Keep, t.Name); ok {
				it.Reason = "--keep " + p
				break
			}
			if p, ok := matchAny(opts.Quantize, t.Name); ok {
				if bs > 1 && (len(t.Shape) == 0 || t.Shape[len(t.Shape)-1]%bs != 0) {
					return nil, fmt.Errorf("weights: convert: tensor %q %v matches --quantize %s but cannot be stored as %s: the last dimension must be a multiple of %d",
						t.Name, t.Shape, p, opts.Type, bs)
				}
				it.To, it.Reason = opts.Type, "--quantize "+p
				break
			}
			if p, ok := matchAny(DefaultKeep, t.Name); ok {
				it.Reason = "kept: " + p
				break
			}
			switch {
			case len(t.Shape) != 2:
				it.Reason = fmt.Sprintf("%d-D", len(t.Shape))
			case !strings.HasSuffix(t.Name, "weight"):
				it.Reason = "not a weight"
			case t.Shape[0]%bs != 0 || t.Shape[1]%bs != 0:
				fb := KQuantFallback(opts.Type)
				if fb != Invalid && t.Shape[1]%bs == 0 && t.Shape[0]%fb.BlockSize() == 0 {
					// a K-quant needs whole super-blocks along the rows only
					it.To, it.Reason = opts.Type, "2-D weight"
					break
				}
				if fb == Invalid || t.Shape[0]%fb.BlockSize() != 0 || t.Shape[1]%fb.BlockSize() != 0 {
					it.Reason = fmt.Sprintf("dims not multiples of %d", bs)
					break
				}
				it.To, it.Reason = fb, fmt.Sprintf("2-D weight, dims not multiples of %d: %s", bs, fb)
			default:
				it.To, it.Reason = opts.Type, "2-D weight"
			}
		}
		plan = append(plan, it)
	}
	if opts.Adapter != nil {
		for _, m := range opts.Adapter.Modules() {
			if !src.Has(m + ".weight") {
				return nil, fmt.Errorf("weights: convert: %w: the adapter has LoRA weights for %q but the checkpoint has no %s.weight", ErrMissing, m, m)
			}
		}
		for name, s := range opts.Adapter.Saved {
			t, err := src.Tensor(name)
			if err != nil {
				return nil, fmt.Errorf("weights: convert: adapter modules_to_save tensor %q: %w", name, err)
			}
			if fmt.Sprint(t.Shape) != fmt.Sprint(s.Shape) {
				return nil, fmt.Errorf("weights: convert: adapter tensor %q: %w: %v, base %v", name, ErrShape, s.Shape, t.Shape)
			}
		}
	}
	return plan, nil
}

// llama.cpp's LLAMA_FTYPE values for general.file_type ("mostly" this type).
// The K-quants take the "_S" file types (14, 16) and Q6_K (18): plain types, no mix.
var fileTypes = map[DType]uint32{F32: 0, F16: 1, Q4_0: 2, Q4_1: 3, Q8_0: 7, Q5_0: 8, Q5_1: 9, Q4_K: 14, Q5_K: 16, Q6_K: 18, BF16: 32}

// ggmlQuantVersion is GGML_QNT_VERSION, written as general.quantization_version.
const ggmlQuantVersion = 2

// ConvertToGGUF writes src (with opts.Adapter merged) to out as GGUF, tensor by tensor,
// and returns the plan it followed.
func ConvertToGGUF(src *Source, out string, opts ConvertOptions) ([]PlanItem, error) {
	plan, err := Plan(src, opts)
	if err != nil {
		return nil, err
	}
	if abs, _ := filepath.Abs(out); abs != "" {
		for _, f := range src.Files() {
			if fa, _ := filepath.Abs(f); fa == abs {
				return nil, fmt.Errorf("weights: convert: output %s is an input file", out)
			}
		}
	}
	w := NewGGUFWriter()
	arch := opts.Architecture
	if arch == "" {
		arch = "unknown"
	}
	config := opts.Config
	if config == nil {
		config = src.Config()
	}
	add := func(k string, v any) {
		if err == nil {
			err = w.Add(k, v)
		}
	}
	add("general.architecture", arch)
	if opts.Name != "" {
		add("general.name", opts.Name)
	}
	add("general.file_type", fileTypes[opts.Type])
	add("general.quantization_version", uint32(ggmlQuantVersion))
	if len(config) > 0 {
		if !json.Valid(config) {
			return nil, fmt.Errorf("weights: convert: %w: config.json is not valid JSON", ErrFormat)
		}
		add(ConfigKey, string(config))
	}
	add("synth.source.format", string(src.Format()))
	add("synth.source.name", filepath.Base(src.Path()))
	if a := opts.Adapter; a != nil {
		add("synth.lora.merged", filepath.Base(a.Dir))
		add("synth.lora.modules", a.Modules())
	}
	if err != nil {
		return nil, fmt.Errorf("weights: convert: %w", err)
	}
	var done int
	for _, it := range plan {
		it := it
		fill := func() ([]byte, error) {
			b, err := convertTensor(src, opts.Adapter, it, opts.Threads, opts.Codec)
			done++
			if opts.Progress != nil && err == nil {
				opts.Progress(done, len(plan), it.Name, int64(len(b)))
			}
			return b, err
		}
		if err := w.AddTensorFunc(it.Name, it.To, it.Shape, fill); err != nil {
			return nil, fmt.Errorf("weights: convert: %w", err)
		}
	}
	if err := w.WriteFile(out); err != nil {
		return nil, err
	}
	return plan, nil
}

// convertTensor produces the stored bytes of one planned tensor, through codec when
// there is one.
func convertTensor(src *Source, a *Adapter, it PlanItem, threads int, codec Codec) ([]byte, error) {
	t, err := src.Tensor(it.Name)
	if err != nil {
		return nil, err
	}
	if a != nil {
		if s, ok := a.Saved[it.Name]; ok {
			t = Tensor{Name: it.Name, DType: s.DType, Shape: s.Shape, Data: s.Data}
		}
	}
	if !it.Merged && t.DType == it.To {
		return t.Data, nil // stored as is: no copy
	}
	var v []float32
	if codec != nil {
		v, err = codec.ToF32(t.DType, t.Data, t.Numel())
		if err != nil {
			err = fmt.Errorf("weights: tensor %q: %w", t.Name, err)
		}
	} else {
		v, err = t.F32()
	}
	if err != nil {
		return nil, err
	}
	if it.Merged {
		if err := a.Lookup(strings.TrimSuffix(it.Name, ".weight")).Merge(v); err != nil {
			return nil, err
		}
	}
	if codec == nil {
		return QuantizeParallel(it.To, v, threads)
	}
	cols := 1
	if len(t.Shape) > 0 {
		cols = t.Shape[len(t.Shape)-1]
	}
	rows := 0
	if cols > 0 {
		rows = len(v) / cols
	}
	b, err := codec.Quantize(it.To, v, rows, cols)
	if err != nil {
		return nil, fmt.Errorf("weights: tensor %q to %s: %w", t.Name, it.To, err)
	}
	return b, nil
}
