package llamacpp

import "errors"

// Sentinel errors callers branch on. Errors returned by this package wrap one of these
// where it applies, with what llama.cpp logged as the reason.
var (
	// ErrLoad: llama.cpp could not load the model file.
	ErrLoad = errors.New("cannot load model")
	// ErrContext: llama.cpp could not create a context with the given parameters.
	ErrContext = errors.New("cannot create context")
	// ErrToken: a token id outside [0, n_vocab).
	ErrToken = errors.New("token id out of range")
	// ErrSeq: a sequence id outside [0, n_seq_max).
	ErrSeq = errors.New("sequence id out of range")
	// ErrBatch: a batch llama_decode refused (empty, larger than n_batch, positions that
	// do not continue the sequence, ...).
	ErrBatch = errors.New("invalid batch")
	// ErrKVFull: llama_decode found no room in the KV cache for the batch.
	ErrKVFull = errors.New("no room in the KV cache")
	// ErrDecode: llama_decode failed for another reason (aborted or a backend failure).
	ErrDecode = errors.New("decode failed")
	// ErrNoLogits: sampling or reading logits at a batch index that was not an output of
	// the last decode.
	ErrNoLogits = errors.New("no logits at this batch index")
	// ErrNoTemplate: the model has no chat template and none was given.
	ErrNoTemplate = errors.New("no chat template")
	// ErrTemplate: llama.cpp does not recognise the chat template.
	ErrTemplate = errors.New("chat template not supported by llama.cpp")
	// ErrClosed: the model, context or sampler was already closed.
	ErrClosed = errors.New("use after Close")
)
