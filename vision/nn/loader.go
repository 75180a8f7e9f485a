package nn

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strings"

	"synth/native"
	"synth/weights"
)

// Options say how checkpoint weights become native matrices.
type Options struct {
	// DType is the dtype Linear weights are converted to: F32 keeps float weights as
	// float32; F16, BF16, Q8_0 and Q4_0 convert at load. Weights stored quantized in a
	// type the kernels read (GGUF from synth convert: Q8_0, Q4_0) are used as stored
	// whatever DType says; other ggml types (Q4_1, Q5_0, Q5_1, K-quants) are dequantized
	// at load and stored as DType.
	DType native.DType
	// Adapter is an optional PEFT LoRA adapter for the model's Linear layers.
	Adapter *weights.Adapter
	// LiveLoRA keeps the adapter unmerged (two extra small GEMMs per targeted layer)
	// instead of folding W += scale * B A into the float32 weights at load.
	LiveLoRA bool
	// Device is where the weights go (nil: the cpu): matrices in their stored or
	// converted type, small tensors (biases, norms, tables) as f32.
	Device *native.Device
}

func (o Options) device() *native.Device {
	if o.Device == nil {
		return native.CPU
	}
	return o.Device
}

// Loader builds layers from a weights.Scope. Like Scope, it records errors instead of
// returning them, so model loaders read as lists of layers; check Err (or the Scope's
// Finish) once at the end.
type Loader struct {
	S    *weights.Scope
	opt  Options
	used map[string]bool    // adapter modules applied, to report adapter modules that matched nothing
	mods map[string]*Linear // every Linear loaded, by module name (shared by Subs)
	errs *[]error
	made *matrixStats
}

// matrixStats counts the weight matrices made per dtype, and those that stayed float32
// though another dtype was asked for, for the summary Finish logs.
type matrixStats struct {
	dtypes map[native.DType]int
	kept   []string // names whose rows do not fill whole blocks of the requested dtype
}

// NewLoader returns a Loader over s.
func NewLoader(s *weights.Scope, opt Options) *Loader {
	return &Loader{S: s, opt: opt, used: map[string]bool{}, mods: map[string]*Linear{}, errs: new([]error), made: &matrixStats{dtypes: map[native.DType]int{}}}
}

// Sub is the Loader for a sub-scope (see weights.Scope.Sub); it shares the state.
func (l *Loader) Sub(prefix string, parts ...any) *Loader {
	return &Loader{S: l.S.Sub(prefix, parts...), opt: l.opt, used: l.used, mods: l.mods, errs: l.errs, made: l.made}
}

// MatrixDTypes counts the weight matrices made so far by dtype (e.g. {"q8_0": 40,
// "f32": 12}).
func (l *Loader) MatrixDTypes() map[string]int {
	out := map[string]int{}
	for dt, n := range l.made.dtypes {
		out[strings.ToLower(dt.String())] = n
	}
	return out
}

func (l *Loader) fail(err error) { *l.errs = append(*l.errs, err) }

// Err returns the loader's own errors and the scope's (joined, so errors.Is finds the
// weights sentinels).
func (l *Loader) Err() error {
	return errors.Join(append(append([]error(nil), *l.errs...), l.S.Err())...)
}

// Finish is Err plus the scope's unused-tensor check and adapter modules that matched no
// layer of the model (an adapter for another model must not load silently). When a dtype
// other than F32 was asked for, it logs how many weight matrices each dtype holds and
// which stayed float32 because their rows do not fill whole blocks (the right fallback,
// said once instead of silently).
func (l *Loader) Finish() error {
	if l.opt.DType != native.F32 && len(l.made.dtypes) > 0 {
		var parts []string
		for dt, n := range l.made.dtypes {
			parts = append(parts, fmt.Sprintf("%s x%d", strings.ToLower(dt.String()), n))
		}
		sort.Strings(parts)
		args := []any{"dtype", strings.ToLower(l.opt.DType.String()), "matrices", strings.Join(parts, ", ")}
		if k := l.made.kept; len(k) > 0 {
			args = append(args, "kept_f32", len(k), "reason", fmt.Sprintf("rows not a multiple of %d values", l.opt.DType.BlockSize()),
				"first", strings.Join(k[:min(len(k), 3)], ", "))
		}
		slog.Info("nn: weights loaded", args...)
	}
	if l.opt.Adapter != nil {
		for _, m := range l.opt.Adapter.Modules() {
			if !l.used[m] {
				l.fail(fmt.Errorf("nn: adapter %s targets %q, which is not a Linear layer of this model", l.opt.Adapter.Dir, m))
			}
		}
	}
	return errors.Join(append(append([]error(nil), *l.errs...), l.S.Finish())...)
}

// Linear loads <name>.weight [out, in] and, when bias is set, <name>.bias [out], and
// applies the adapter's LoRA for the module <scope prefix><name> if it has one.
func (l *Loader) Linear(name string, out, in int, bias bool) *Linear {
	b := ""
	if bias {
		b = name + ".bias"
	}
	return l.linear(l.S.Name(name), name+".weight", b, out, in)
}

// LinearNamed loads a Linear whose tensors do not follow the <name>.weight/<name>.bias
// pattern, such as torch MultiheadAttention's packed attn.in_proj_weight [3W, W] and
// attn.in_proj_bias [3W]. bias "" means none. Adapters are looked up under the weight's
// name without a ".weight" suffix (PEFT cannot target the packed projection, so in
// practice none applies).
func (l *Loader) LinearNamed(weight, bias string, out, in int) *Linear {
	return l.linear(l.S.Name(strings.TrimSuffix(weight, ".weight")), weight, bias, out, in)
}

func (l *Loader) linear(module, weight, bias string, out, in int) *Linear {
	lin := &Linear{}
	l.mods[module] = lin
	t := l.S.Get(weight, out, in)
	if bias != "" {
		lin.B = l.Vector(bias, out)
	}
	if t.Data == nil {
		return lin
	}
	var lora *weights.LoRA
	if l.opt.Adapter != nil {
		lora = l.opt.Adapter.Lookup(module)
	}
	if lora != nil {
		l.used[module] = true
		if lora.In != in || lora.Out != out {
			l.fail(fmt.Errorf("nn: adapter %s: %s has lora in %d out %d, layer is [%d, %d]",
				l.opt.Adapter.Dir, module, lora.In, lora.Out, out, in))
			return lin
		}
	}
	if lora != nil && !l.opt.LiveLoRA {
		// Merge into float32 before any quantization, so a quantized model carries the
		// adapter at the quantized precision of the whole weight.
		w, err := t.F32()
		if err != nil {
			l.fail(fmt.Errorf("nn: %s: %w", l.S.Name(weight), err))
			return lin
		}
		if t.DType.IsQuantized() {
			l.fail(fmt.Errorf("nn: %s is stored as %s: merge the adapter into an F32/F16 checkpoint (synth convert --lora --merge) or use the live adapter", l.S.Name(weight), t.DType))
			return lin
		}
		w = append([]float32(nil), w...) // F32() may share an mmap'd file: never write into it
		if err := lora.Merge(w); err != nil {
			l.fail(fmt.Errorf("nn: merge adapter into %s: %w", module, err))
			return lin
		}
		lin.W = l.matrixF32(l.S.Name(weight), w, out, in)
		l.release(t) // the Matrix was made from the merged copy
		return lin
	}
	lin.W = l.matrix(l.S.Name(weight), t, out, in)
	if lora != nil {
		dev := l.opt.device()
		a, err1 := dev.NewMatrixF32(lora.A, lora.R, in)
		b, err2 := dev.NewMatrixF32(lora.B, out, lora.R)
		if err1 != nil || err2 != nil {
			l.fail(fmt.Errorf("nn: adapter %s for %s: %v %v", l.opt.Adapter.Dir, module, err1, err2))
			return lin
		}
		lin.LoRA = &LoRA{A: a, B: b, Scale: float32(lora.Scale)}
	}
	return lin
}

// Linears are the Linear layers loaded so far by their module names (the names PEFT
// targets: "language_model.model.decoder.layers.0.self_attn.q_proj"), for attaching
// adapters to a loaded model (training).
func (l *Loader) Linears() map[string]*Linear { return l.mods }

// Conv loads a convolution, <name>.weight [out, in, kh, kw] and, when bias is set,
// <name>.bias [out], as the Linear [out, in*kh*kw] of its im2col form (what
// native.Ctx.PatchEmbed multiplies with). Adapters do not apply to convolutions: an
// adapter module on one is an error.
func (l *Loader) Conv(name string, out, in, kh, kw int, bias bool) *Linear {
	lin := &Linear{}
	module := l.S.Name(name)
	t := l.S.Get(name+".weight", out, in, kh, kw)
	if bias {
		lin.B = l.Vector(name+".bias", out)
	}
	if t.Data == nil {
		return lin
	}
	if l.opt.Adapter != nil && l.opt.Adapter.Lookup(module) != nil {
		l.used[module] = true
		l.fail(fmt.Errorf("nn: adapter %s targets the convolution %s: LoRA on convolutions is not supported", l.opt.Adapter.Dir, module))
		return lin
	}
	lin.W = l.matrix(module+".weight", t, out, in*kh*kw)
	return lin
}

// Projection loads a [in, out] matrix applied as x @ P (CLIP's visual.proj and
// text_projection) as a Linear without bias, transposing it once at load.
func (l *Loader) Projection(name string, in, out int) *Linear {
	t := l.S.Get(name, in, out)
	if t.Data == nil {
		return &Linear{}
	}
	p, err := t.F32()
	if err != nil {
		l.fail(fmt.Errorf("nn: %s: %w", l.S.Name(name), err))
		return &Linear{}
	}
	w := make([]float32, in*out) // [out, in]
	for i := 0; i < in; i++ {
		for o := 0; o < out; o++ {
			w[o*in+i] = p[i*out+o]
		}
	}
	l.release(t) // the Matrix is made from the transposed copy
	return &Linear{W: l.matrixF32(l.S.Name(name), w, out, in)}
}

// Embedding loads a [rows, width] table (token embeddings, tied LM heads) as a Matrix,
// used with Ctx.Gather and, when tied, as a Linear weight. It is stored in the loader's
// dtype like a Linear weight: a 50272 x 2560 OPT table is 515 MB in float32.
func (l *Loader) Embedding(name string, rows, width int) *native.Matrix {
	t := l.S.Get(name, rows, width)
	if t.Data == nil {
		return nil
	}
	return l.matrix(l.S.Name(name), t, rows, width)
}

// LayerNorm loads <name>.weight and <name>.bias, both [c]; name "" is a LayerNorm
// without affine parameters (elementwise_affine=False).
func (l *Loader) LayerNorm(name string, c int, eps float32) *LayerNorm {
	if name == "" {
		return &LayerNorm{Eps: eps}
	}
	return &LayerNorm{W: l.Vector(name+".weight", c), B: l.Vector(name+".bias", c), Eps: eps}
}

// Vector loads a float tensor of the given dims (checkpoint order) as an f32 tensor on
// the loader's device, in its 2-D form [product of all dims but the last, last] (a
// bias or norm weight [c] stays 1-D). Empty on error (recorded).
func (l *Loader) Vector(name string, dims ...int) native.Tensor {
	v := l.F32(name, dims...)
	if v == nil {
		return native.Tensor{}
	}
	if len(dims) <= 1 {
		return l.opt.device().FromHost(v, len(v))
	}
	cols := dims[len(dims)-1]
	return l.opt.device().FromHost(v, len(v)/cols, cols)
}

// Device is where the loader puts weights.
func (l *Loader) Device() *native.Device { return l.opt.device() }

// F32 loads any float tensor as float32 (embeddings tables, class tokens, positions): a
// copy, so the checkpoint's pages are released (see release).
func (l *Loader) F32(name string, dims ...int) []float32 {
	v := l.S.GetF32(name, dims...)
	if v != nil {
		if t, err := l.S.Source().Tensor(l.S.Name(name)); err == nil {
			l.release(t)
		}
	}
	return v
}

// release hands t's pages back to the OS when t lies in a memory-mapped checkpoint
// (weights.Source.Release): called once the layer holds its own copy of t (a packed
// Matrix, a converted or transposed slice), so that the file does not stay resident
// beside the weights made from it.
func (l *Loader) release(t weights.Tensor) {
	if err := l.S.Source().Release(t); err != nil {
		l.fail(fmt.Errorf("nn: %w", err))
	}
}

// matrix makes a Matrix from a checkpoint tensor: quantized and half types the kernels
// read are used in place; float tensors are converted to the requested dtype. ggml types
// the kernels do not read (Q4_1, Q5_0, Q5_1, the K-quants) are dequantized exactly at load
// and then stored like a float tensor (float32 unless a DType is asked for). Unless the
// Matrix reads the tensor's bytes in place (native.Matrix.ReadsSource), they are released.
func (l *Loader) matrix(full string, t weights.Tensor, n, k int) *native.Matrix {
	var m *native.Matrix
	if dt, ok := nativeDType(t.DType); ok && (t.DType.IsQuantized() || dt == l.opt.DType) && dt != native.F32 {
		var err error
		if m, err = l.opt.device().NewMatrix(dt, t.Data, n, k); err != nil {
			l.fail(fmt.Errorf("nn: %s: %w", full, err))
		} else {
			l.made.dtypes[dt]++
		}
	} else if v, ok := t.F32View(); ok {
		m = l.matrixF32(full, v, n, k)
	} else {
		w, err := t.F32()
		if err != nil {
			l.fail(fmt.Errorf("nn: %s: %w", full, err))
			return nil
		}
		l.release(t) // converted: the Matrix is made from w
		return l.matrixF32(full, w, n, k)
	}
	if m != nil && !m.ReadsSource() {
		l.release(t)
	}
	return m
}

func (l *Loader) matrixF32(full string, w []float32, n, k int) *native.Matrix {
	var m *native.Matrix
	var err error
	dt := l.opt.DType
	if dt != native.F32 && k%dt.BlockSize() != 0 {
		dt = native.F32 // rows that do not fill whole blocks stay float32
		l.made.kept = append(l.made.kept, full)
	}
	if dt == native.F32 {
		m, err = l.opt.device().NewMatrixF32(w, n, k)
	} else {
		m, err = l.opt.device().QuantizeMatrix(w, n, k, dt)
	}
	if err != nil {
		l.fail(fmt.Errorf("nn: %s: %w", full, err))
		return m
	}
	l.made.dtypes[dt]++
	return m
}

func nativeDType(d weights.DType) (native.DType, bool) {
	switch d {
	case weights.F32:
		return native.F32, true
	case weights.F16:
		return native.F16, true
	case weights.BF16:
		return native.BF16, true
	case weights.Q8_0:
		return native.Q8_0, true
	case weights.Q4_0:
		return native.Q4_0, true
	case weights.Q4_K:
		return native.Q4_K, true
	case weights.Q5_K:
		return native.Q5_K, true
	case weights.Q6_K:
		return native.Q6_K, true
	}
	return 0, false
}

// ParseDType parses a --dtype flag value: f32, f16, bf16, q8_0, q4_0, q4_k, q5_k, q6_k
// (a K-quant quantizes the weights whose rows are whole 256-value super-blocks; the
// others stay f32).
func ParseDType(s string) (native.DType, error) {
	switch strings.ToLower(s) {
	case "f32", "fp32", "float32":
		return native.F32, nil
	case "f16", "fp16", "float16":
		return native.F16, nil
	case "bf16", "bfloat16":
		return native.BF16, nil
	case "q8_0", "q8":
		return native.Q8_0, nil
	case "q4_0", "q4":
		return native.Q4_0, nil
	case "q4_k":
		return native.Q4_K, nil
	case "q5_k":
		return native.Q5_K, nil
	case "q6_k":
		return native.Q6_K, nil
	}
	return 0, fmt.Errorf("nn: dtype %q is not one of f32, f16, bf16, q8_0, q4_0, q4_k, q5_k, q6_k", s)
}

// InvSqrt is 1/sqrt(d) in float32, the attention scale of a head of width d.
func InvSqrt(d int) float32 { return float32(1 / math.Sqrt(float64(d))) }
