package llamacpp

/*
#include "llama.h"
*/
import "C"

import (
	"fmt"
	"math"
	"unsafe"
)

// maxSeq is llama.cpp's LLAMA_MAX_SEQ (src/llama-cparams.h), the most sequences a
// context may have.
const maxSeq = 256

// ContextParams configure NewContext. Zero fields take llama.cpp's defaults.
type ContextParams struct {
	// NCtx is the number of KV cache cells (0: the model's training context). With
	// KVUnified every sequence may use all of them; without, each gets NCtx/NSeqMax.
	// llama.cpp rounds it up to a multiple of 256.
	NCtx int
	// NBatch is the most tokens one Decode takes (0: 2048, capped at NCtx).
	NBatch int
	// NUBatch is the physical batch llama.cpp splits a Decode into (0: min(NBatch, 512)).
	NUBatch int
	// NSeqMax is the number of sequences, e.g. parallel slots (0: 1; at most 256).
	NSeqMax int
	// Threads decode single-token steps, ThreadsBatch prompt batches (0: llama.cpp's
	// default of 4; ThreadsBatch 0: Threads).
	Threads, ThreadsBatch int
	// KVUnified keeps one KV buffer for all sequences, so a prefix shared with SeqCopy is
	// stored once and sequences of different lengths share the cells.
	KVUnified bool
}

// Context is a llama.cpp inference context: KV cache, compute buffers and the outputs
// of the last Decode. It is not safe for concurrent use.
type Context struct {
	model   *Model
	c       *C.struct_llama_context
	mem     C.llama_memory_t
	nCtx    int
	nCtxSeq int
	nBatch  int
	nSeqMax int
	unified bool
	// outputs[i] is true when batch index i of the last successful Decode has logits.
	outputs []bool
}

// NewContext creates a context for m.
func NewContext(m *Model, p ContextParams) (*Context, error) {
	if m == nil || m.m == nil {
		return nil, fmt.Errorf("llamacpp: new context: model: %w", ErrClosed)
	}
	if m.vocabOnly {
		return nil, fmt.Errorf("llamacpp: new context for %s: %w: model was loaded with VocabOnly", m.path, ErrContext)
	}
	switch {
	case p.NCtx < 0 || p.NCtx > math.MaxInt32/2:
		return nil, fmt.Errorf("llamacpp: new context: %w: n_ctx %d", ErrContext, p.NCtx)
	case p.NBatch < 0 || p.NBatch > math.MaxInt32/2 || p.NUBatch < 0 || p.NUBatch > math.MaxInt32/2:
		return nil, fmt.Errorf("llamacpp: new context: %w: n_batch %d, n_ubatch %d", ErrContext, p.NBatch, p.NUBatch)
	case p.NSeqMax < 0 || p.NSeqMax > maxSeq:
		return nil, fmt.Errorf("llamacpp: new context: %w: n_seq_max %d not in [1, %d]", ErrContext, p.NSeqMax, maxSeq)
	case p.Threads < 0 || p.ThreadsBatch < 0:
		return nil, fmt.Errorf("llamacpp: new context: %w: negative thread count", ErrContext)
	}
	cp := C.llama_context_default_params()
	if p.NCtx > 0 {
		cp.n_ctx = C.uint32_t(p.NCtx)
	} else {
		cp.n_ctx = 0 // the model's training context
	}
	if p.NBatch > 0 {
		cp.n_batch = C.uint32_t(p.NBatch)
	}
	if p.NUBatch > 0 {
		cp.n_ubatch = C.uint32_t(p.NUBatch)
	}
	if p.NSeqMax > 0 {
		cp.n_seq_max = C.uint32_t(p.NSeqMax)
	}
	if p.Threads > 0 {
		cp.n_threads = C.int32_t(p.Threads)
		cp.n_threads_batch = C.int32_t(p.Threads)
	}
	if p.ThreadsBatch > 0 {
		cp.n_threads_batch = C.int32_t(p.ThreadsBatch)
	}
	cp.kv_unified = C.bool(p.KVUnified)

	if p.KVUnified {
		// With one KV buffer llama.cpp reports n_ctx_seq as the total cell count, shared
		// by all sequences, and warns when it differs from the training context; what
		// matters is each sequence's positions, which the caller bounds.
		undo := demoteWarnings("n_ctx_seq (", "n_ctx_train (")
		defer undo()
	}
	stop := captureErrors()
	cc := C.llama_init_from_model(m.m, cp)
	why := stop()
	if cc == nil {
		if why == "" {
			why = "llama.cpp gave no reason"
		}
		return nil, fmt.Errorf("llamacpp: new context for %s: %w: %s", m.path, ErrContext, why)
	}
	c := &Context{
		model:   m,
		c:       cc,
		mem:     C.llama_get_memory(cc),
		nCtx:    int(C.llama_n_ctx(cc)),
		nCtxSeq: int(C.llama_n_ctx_seq(cc)),
		nBatch:  int(C.llama_n_batch(cc)),
		nSeqMax: int(C.llama_n_seq_max(cc)),
		unified: p.KVUnified,
	}
	if c.mem == nil {
		c.Close()
		return nil, fmt.Errorf("llamacpp: new context for %s: %w: model has no memory (not a decoder?)", m.path, ErrContext)
	}
	return c, nil
}

// Close frees the context.
func (c *Context) Close() {
	if c == nil || c.c == nil {
		return
	}
	C.llama_free(c.c)
	c.c = nil
	c.mem = nil
}

// Model is the model the context runs.
func (c *Context) Model() *Model { return c.model }

// NCtx is the number of KV cells (after llama.cpp's rounding).
func (c *Context) NCtx() int { return c.nCtx }

// NCtxSeq is the most positions one sequence may use.
func (c *Context) NCtxSeq() int { return c.nCtxSeq }

// NBatch is the most tokens one Decode takes.
func (c *Context) NBatch() int { return c.nBatch }

// NSeqMax is the number of sequences.
func (c *Context) NSeqMax() int { return c.nSeqMax }

// Decode runs the model on the batch, appending its tokens to their sequences' KV
// cache. Afterwards Logits and Sampler.Sample read the outputs the batch asked for.
func (c *Context) Decode(b *Batch) error {
	if c.c == nil {
		return fmt.Errorf("llamacpp: decode: %w", ErrClosed)
	}
	c.outputs = c.outputs[:0]
	n := b.Len()
	if n == 0 {
		return fmt.Errorf("llamacpp: decode: %w: empty batch", ErrBatch)
	}
	if n > c.nBatch {
		return fmt.Errorf("llamacpp: decode: %w: %d tokens, n_batch is %d", ErrBatch, n, c.nBatch)
	}
	for i := 0; i < n; i++ {
		t, pos, seq := b.Token(i)
		if err := c.model.checkToken(t); err != nil {
			return fmt.Errorf("llamacpp: decode: batch index %d: %w", i, err)
		}
		if seq < 0 || seq >= c.nSeqMax {
			return fmt.Errorf("llamacpp: decode: batch index %d: %w: %d not in [0, %d)", i, ErrSeq, seq, c.nSeqMax)
		}
		if pos < 0 || pos >= c.nCtxSeq {
			return fmt.Errorf("llamacpp: decode: batch index %d: %w: position %d not in [0, %d)", i, ErrKVFull, pos, c.nCtxSeq)
		}
	}
	batch := b.c
	batch.n_tokens = C.int32_t(n)
	stop := captureErrors()
	rc := C.llama_decode(c.c, batch)
	why := stop()
	switch {
	case rc == 0:
	case rc == 1:
		return fmt.Errorf("llamacpp: decode: %w (%d cells): %s", ErrKVFull, c.nCtx, why)
	case rc == -1:
		return fmt.Errorf("llamacpp: decode: %w: %s", ErrBatch, why)
	default:
		return fmt.Errorf("llamacpp: decode: %w (llama_decode returned %d): %s", ErrDecode, rc, why)
	}
	if cap(c.outputs) < n {
		c.outputs = make([]bool, n)
	}
	c.outputs = c.outputs[:n]
	for i := range c.outputs {
		c.outputs[i] = b.logits[i] != 0
	}
	return nil
}

func (c *Context) checkOutput(idx int) error {
	if c.c == nil {
		return ErrClosed
	}
	if idx < 0 || idx >= len(c.outputs) || !c.outputs[idx] {
		return fmt.Errorf("%w: %d", ErrNoLogits, idx)
	}
	return nil
}

// Logits copies the logits [n_vocab] of batch index idx of the last Decode.
func (c *Context) Logits(idx int) ([]float32, error) {
	if err := c.checkOutput(idx); err != nil {
		return nil, fmt.Errorf("llamacpp: logits: %w", err)
	}
	p := C.llama_get_logits_ith(c.c, C.int32_t(idx))
	if p == nil {
		return nil, fmt.Errorf("llamacpp: logits: %w: %d", ErrNoLogits, idx)
	}
	return append([]float32(nil), unsafe.Slice((*float32)(unsafe.Pointer(p)), c.model.nVocab)...), nil
}

func (c *Context) checkSeq(seq int, anyOK bool) error {
	if c.c == nil {
		return ErrClosed
	}
	if (anyOK && seq == -1) || (seq >= 0 && seq < c.nSeqMax) {
		return nil
	}
	return fmt.Errorf("%w: %d not in [0, %d)", ErrSeq, seq, c.nSeqMax)
}

// ClearMemory empties the KV cache of every sequence.
func (c *Context) ClearMemory() {
	if c.c != nil {
		C.llama_memory_clear(c.mem, true)
	}
}

// SeqRemove removes positions [p0, p1) of sequence seq (-1: every sequence; p0 < 0: from
// 0; p1 < 0: to the end).
func (c *Context) SeqRemove(seq, p0, p1 int) error {
	if err := c.checkSeq(seq, true); err != nil {
		return fmt.Errorf("llamacpp: seq_rm: %w", err)
	}
	if !C.llama_memory_seq_rm(c.mem, C.llama_seq_id(seq), C.llama_pos(clampPos(p0)), C.llama_pos(clampPos(p1))) {
		return fmt.Errorf("llamacpp: seq_rm: cannot remove positions [%d, %d) of sequence %d", p0, p1, seq)
	}
	return nil
}

// SeqCopy makes positions [p0, p1) of sequence src part of sequence dst too (p0 < 0:
// from 0; p1 < 0: to the end). In a unified KV cache this shares the cells, no data is
// copied. Without KVUnified sequences live in separate buffers and only whole
// sequences can be copied.
func (c *Context) SeqCopy(src, dst, p0, p1 int) error {
	if err := c.checkSeq(src, false); err != nil {
		return fmt.Errorf("llamacpp: seq_cp: source: %w", err)
	}
	if err := c.checkSeq(dst, false); err != nil {
		return fmt.Errorf("llamacpp: seq_cp: destination: %w", err)
	}
	if !c.unified && c.nSeqMax > 1 && src != dst && (p0 > 0 || p1 >= 0) {
		return fmt.Errorf("llamacpp: seq_cp: positions [%d, %d) of sequence %d: a non-unified KV cache copies whole sequences only", p0, p1, src)
	}
	C.llama_memory_seq_cp(c.mem, C.llama_seq_id(src), C.llama_seq_id(dst), C.llama_pos(clampPos(p0)), C.llama_pos(clampPos(p1)))
	return nil
}

// SeqPosMax is the largest position in sequence seq, -1 when it is empty.
func (c *Context) SeqPosMax(seq int) (int, error) {
	if err := c.checkSeq(seq, false); err != nil {
		return 0, fmt.Errorf("llamacpp: seq_pos_max: %w", err)
	}
	return int(C.llama_memory_seq_pos_max(c.mem, C.llama_seq_id(seq))), nil
}

func clampPos(p int) int32 {
	if p < 0 {
		return -1
	}
	if p > math.MaxInt32 {
		return math.MaxInt32
	}
	return int32(p)
}
