package weights

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Scope fetches tensors by checkpoint name for a model loader, so loader code reads like
// a list of the checkpoint's tensors:
//
//	s := weights.NewScope(src)
//	layer := s.Sub("qformer.encoder.layer", i) // prefix "qformer.encoder.layer.<i>."
//	q := layer.Get("crossattention.attention.query.weight", hidden, encoderHidden)
//	...
//	s.Skip("vision_model.post_layernorm_pooler.*") // deliberately unused
//	if err := s.Finish(); err != nil { ... }       // errors so far + every unused tensor
//
// Get checks presence, dtype family (float) and shape, and records errors instead of
// returning them: a failed Get returns a zero Tensor and the loader carries on, so one
// run reports every problem. Err returns the errors so far; Finish adds the list of
// checkpoint tensors never fetched or skipped. Every error names the full tensor name and
// the file, and wraps ErrMissing, ErrShape, ErrDType or ErrUnused.
//
// Sub scopes share the root's state; a Scope is safe for concurrent use.
type Scope struct {
	root   *scopeState
	prefix string
}

type scopeState struct {
	mu    sync.Mutex
	src   *Source
	used  map[string]bool
	skips []string // full-name glob patterns
	errs  []error
}

// NewScope starts a scope over every tensor of src.
func NewScope(src *Source) *Scope {
	return &Scope{root: &scopeState{src: src, used: map[string]bool{}}}
}

// Source is the checkpoint the scope reads.
func (s *Scope) Source() *Source { return s.root.src }

// Prefix is the scope's name prefix ("" at the root, else ending in ".").
func (s *Scope) Prefix() string { return s.prefix }

// Sub returns a scope for the names under prefix: Sub("vision_model") reads
// "vision_model.<name>", Sub("encoder.layer", 3) reads "encoder.layer.3.<name>"; each
// extra part (int or string) is joined with a dot.
func (s *Scope) Sub(prefix string, parts ...any) *Scope {
	p := strings.TrimSuffix(prefix, ".")
	for _, x := range parts {
		switch v := x.(type) {
		case int:
			p += "." + strconv.Itoa(v)
		case string:
			p += "." + strings.Trim(v, ".")
		default:
			p += "." + fmt.Sprint(v)
		}
	}
	p = strings.TrimPrefix(p, ".")
	if p == "" {
		return &Scope{root: s.root, prefix: s.prefix}
	}
	return &Scope{root: s.root, prefix: s.prefix + p + "."}
}

// Name is the full checkpoint name of a name relative to the scope.
func (s *Scope) Name(name string) string { return s.prefix + name }

// Has reports whether the checkpoint holds name (relative to the scope); it does not mark
// the tensor used.
func (s *Scope) Has(name string) bool { return s.root.src.Has(s.prefix + name) }

func (s *Scope) errorf(full string, sentinel error, format string, args ...any) error {
	file := s.root.src.FileOf(full)
	if file == "" {
		file = s.root.src.Path()
	}
	err := fmt.Errorf("weights: %s: tensor %q: %w: %s", file, full, sentinel, fmt.Sprintf(format, args...))
	s.root.mu.Lock()
	s.root.errs = append(s.root.errs, err)
	s.root.mu.Unlock()
	return err
}

// shapeMatches compares a shape with the expected dims; -1 matches any size.
func shapeMatches(shape, dims []int) bool {
	if len(shape) != len(dims) {
		return false
	}
	for i, d := range dims {
		if d != -1 && shape[i] != d {
			return false
		}
	}
	return true
}

func (s *Scope) fetch(name string, float bool, dims []int) (Tensor, bool) {
	full := s.prefix + name
	s.root.mu.Lock()
	s.root.used[full] = true
	s.root.mu.Unlock()
	src := s.root.src
	var t Tensor
	var err error
	if src.gen != nil {
		if t, err = src.make(full, dims); err != nil {
			s.root.mu.Lock()
			s.root.errs = append(s.root.errs, err)
			s.root.mu.Unlock()
			return Tensor{}, false
		}
	} else if t, err = src.Tensor(full); err != nil {
		s.errorf(full, ErrMissing, "not in the checkpoint")
		return Tensor{}, false
	}
	if float && !t.DType.IsFloat() {
		s.errorf(full, ErrDType, "dtype %s, want a float type", t.DType)
		return Tensor{}, false
	}
	if !float && !t.DType.IsInt() {
		s.errorf(full, ErrDType, "dtype %s, want an integer type", t.DType)
		return Tensor{}, false
	}
	if !shapeMatches(t.Shape, dims) {
		s.errorf(full, ErrShape, "shape %v, want %v", t.Shape, dims)
		return Tensor{}, false
	}
	return t, true
}

// Get fetches a float tensor (F32, F16, BF16, F64 or a quantized type) of the given shape
// (PyTorch order; -1 matches any size; no dims means a scalar) and marks it used. On error
// it records the error and returns a zero Tensor.
func (s *Scope) Get(name string, dims ...int) Tensor {
	t, _ := s.fetch(name, true, dims)
	return t
}

// GetF32 is Get followed by Tensor.F32 (conversion or dequantization); nil on error.
func (s *Scope) GetF32(name string, dims ...int) []float32 {
	t, ok := s.fetch(name, true, dims)
	if !ok {
		return nil
	}
	v, err := t.F32()
	if err != nil {
		s.errorf(s.prefix+name, ErrDType, "%v", err)
		return nil
	}
	return v
}

// GetInt fetches an integer or bool tensor of the given shape and marks it used.
func (s *Scope) GetInt(name string, dims ...int) Tensor {
	t, _ := s.fetch(name, false, dims)
	return t
}

// Optional fetches a float tensor if the checkpoint has it (ok false and no error when it
// does not, e.g. an lm_head tied to the embeddings); shape and dtype are still checked.
func (s *Scope) Optional(name string, dims ...int) (Tensor, bool) {
	if !s.Has(name) {
		return Tensor{}, false
	}
	return s.fetch(name, true, dims)
}

// Skip declares tensors deliberately unused: pattern is a path.Match glob relative to the
// scope ("*" matches any run of characters, dots included), e.g. "text_model.*" or
// "*.position_ids". A bad pattern is recorded as an error.
func (s *Scope) Skip(pattern string) {
	full := s.prefix + pattern
	if _, err := path.Match(full, ""); err != nil {
		s.root.mu.Lock()
		s.root.errs = append(s.root.errs, fmt.Errorf("weights: skip pattern %q: %w", full, err))
		s.root.mu.Unlock()
		return
	}
	s.root.mu.Lock()
	s.root.skips = append(s.root.skips, full)
	s.root.mu.Unlock()
}

// Err returns the errors recorded so far (errors.Join; nil when none).
func (s *Scope) Err() error {
	s.root.mu.Lock()
	defer s.root.mu.Unlock()
	return errors.Join(s.root.errs...)
}

// Unused lists the checkpoint tensors not fetched and not matched by a Skip pattern, in
// file order.
func (s *Scope) Unused() []string {
	s.root.mu.Lock()
	defer s.root.mu.Unlock()
	var out []string
	for _, t := range s.root.src.tensors {
		if s.root.used[t.Name] {
			continue
		}
		if slices.ContainsFunc(s.root.skips, func(p string) bool { ok, _ := path.Match(p, t.Name); return ok }) {
			continue
		}
		out = append(out, t.Name)
	}
	return out
}

// Finish returns every recorded error plus, when checkpoint tensors were never used or
// skipped, an error wrapping ErrUnused that lists all of them. Call it on the root scope
// once the model is loaded.
func (s *Scope) Finish() error {
	errs := []error{s.Err()}
	if unused := s.Unused(); len(unused) > 0 {
		errs = append(errs, fmt.Errorf("weights: %s: %w: %d checkpoint tensors were not used by the loader: %s",
			s.root.src.Path(), ErrUnused, len(unused), strings.Join(unused, ", ")))
	}
	return errors.Join(errs...)
}
