package llamacpp

/*
#include "llama.h"
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// Batch is the input of one Decode: tokens, each with its position, its sequence and
// whether its logits are wanted. It lives in C memory (llama_batch_init) and is written
// from Go through views on that memory, so filling it costs no cgo call per token.
// Each token belongs to one sequence: sequences share a prefix through Context.SeqCopy.
type Batch struct {
	c C.struct_llama_batch
	n int

	// views on the C arrays, [capacity]
	tok    []Token
	pos    []int32
	nSeq   []int32
	seq    []*C.llama_seq_id // each points at an array of one seq id
	logits []int8
}

// NewBatch allocates a batch for up to capacity tokens. Close frees it.
func NewBatch(capacity int) *Batch {
	if capacity <= 0 {
		panic(fmt.Sprintf("llamacpp: NewBatch(%d): capacity must be positive", capacity))
	}
	c := C.llama_batch_init(C.int32_t(capacity), 0, 1)
	return &Batch{
		c:      c,
		tok:    unsafe.Slice((*Token)(unsafe.Pointer(c.token)), capacity),
		pos:    unsafe.Slice((*int32)(unsafe.Pointer(c.pos)), capacity),
		nSeq:   unsafe.Slice((*int32)(unsafe.Pointer(c.n_seq_id)), capacity),
		seq:    unsafe.Slice(c.seq_id, capacity),
		logits: unsafe.Slice((*int8)(unsafe.Pointer(c.logits)), capacity),
	}
}

// Close frees the batch's C memory.
func (b *Batch) Close() {
	if b == nil || b.tok == nil {
		return
	}
	C.llama_batch_free(b.c)
	*b = Batch{}
}

// Add appends token t at position pos of sequence seq and returns its index in the
// batch, the index to pass to Sample or Logits when logits is true. Adding to a full
// batch is a programmer error and panics; Decode checks ids against the model.
func (b *Batch) Add(t Token, pos, seq int, logits bool) int {
	if b.n == len(b.tok) {
		panic(fmt.Sprintf("llamacpp: Batch.Add: batch is full (%d tokens)", len(b.tok)))
	}
	i := b.n
	b.tok[i] = t
	b.pos[i] = int32(pos)
	b.nSeq[i] = 1
	*b.seq[i] = C.llama_seq_id(seq)
	b.logits[i] = 0
	if logits {
		b.logits[i] = 1
	}
	b.n++
	return i
}

// Clear empties the batch for reuse.
func (b *Batch) Clear() { b.n = 0 }

// Len is the number of tokens in the batch.
func (b *Batch) Len() int { return b.n }

// Cap is the most tokens the batch holds.
func (b *Batch) Cap() int { return len(b.tok) }

// Token returns the token, position and sequence at index i.
func (b *Batch) Token(i int) (t Token, pos, seq int) {
	return b.tok[i], int(b.pos[i]), int(*b.seq[i])
}
