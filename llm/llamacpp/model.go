package llamacpp

/*
#include <stdlib.h>
#include "llama.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"unsafe"
)

// Token is a vocabulary id (llama_token).
type Token int32

// ModelParams configure LoadModel. The zero value loads the whole model into CPU memory
// through mmap.
type ModelParams struct {
	// GPULayers is the number of layers to offload (llama_model_params.n_gpu_layers; -1 =
	// all). A llama.cpp built without a GPU backend, as the pinned module builds it,
	// ignores it; SupportsGPUOffload tells which build this is.
	GPULayers int
	// NoMmap reads the file into memory instead of mapping it.
	NoMmap bool
	// VocabOnly loads the tokenizer and metadata but no weights (no context possible).
	VocabOnly bool
}

// Model is a loaded GGUF model. Its methods are safe for concurrent use, except Close.
type Model struct {
	path   string
	m      *C.struct_llama_model
	vocab  *C.struct_llama_vocab
	nVocab int
	// vocabOnly models have no weights: no context can be made from them.
	vocabOnly bool

	eogOnce sync.Once
	eog     []Token
}

// LoadModel loads a GGUF file with llama.cpp. The model holds a backend reference until
// Close.
func LoadModel(path string, p ModelParams) (*Model, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("llamacpp: load model: %w", err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("llamacpp: load model %s: %w: is a folder, want a .gguf file", path, ErrLoad)
	}
	if err := CheckGGUF(path, p.VocabOnly); err != nil {
		return nil, err
	}
	BackendInit()
	mp := C.llama_model_default_params()
	gl := p.GPULayers
	if gl < 0 || gl > math.MaxInt32 {
		gl = math.MaxInt32 // llama.cpp caps the count at the model's layers
	}
	mp.n_gpu_layers = C.int32_t(gl)
	mp.use_mmap = C.bool(!p.NoMmap)
	mp.vocab_only = C.bool(p.VocabOnly)

	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	stop := captureErrors()
	cm := C.llama_model_load_from_file(cpath, mp)
	why := stop()
	if cm == nil {
		BackendFree()
		if why == "" {
			why = "llama.cpp gave no reason"
		}
		return nil, fmt.Errorf("llamacpp: load model %s: %w: %s", path, ErrLoad, why)
	}
	m := &Model{path: path, m: cm, vocab: C.llama_model_get_vocab(cm), vocabOnly: p.VocabOnly}
	m.nVocab = int(C.llama_vocab_n_tokens(m.vocab))
	return m, nil
}

// Close frees the model. Contexts made from it must be closed first.
func (m *Model) Close() {
	if m == nil || m.m == nil {
		return
	}
	C.llama_model_free(m.m)
	m.m, m.vocab = nil, nil
	BackendFree()
}

// Path is the file the model was loaded from.
func (m *Model) Path() string { return m.path }

// NVocab is the number of tokens in the vocabulary.
func (m *Model) NVocab() int { return m.nVocab }

// NCtxTrain is the context length the model was trained with.
func (m *Model) NCtxTrain() int { return int(C.llama_model_n_ctx_train(m.m)) }

// NEmbd is the hidden size.
func (m *Model) NEmbd() int { return int(C.llama_model_n_embd(m.m)) }

// NLayer is the number of transformer blocks.
func (m *Model) NLayer() int { return int(C.llama_model_n_layer(m.m)) }

// NParams is the number of parameters.
func (m *Model) NParams() uint64 { return uint64(C.llama_model_n_params(m.m)) }

// Size is the total size of the weights in bytes.
func (m *Model) Size() uint64 { return uint64(C.llama_model_size(m.m)) }

// Desc is llama.cpp's one-line description, e.g. "llama 8B Q4_0".
func (m *Model) Desc() string {
	var buf [256]C.char
	n := C.llama_model_desc(m.m, &buf[0], C.size_t(len(buf)))
	if n < 0 {
		return ""
	}
	return C.GoString(&buf[0])
}

// Meta returns a GGUF metadata value as text, and whether the key exists. Arrays are
// not available through llama.cpp's API.
func (m *Model) Meta(key string) (string, bool) {
	ckey := C.CString(key)
	defer C.free(unsafe.Pointer(ckey))
	buf := make([]byte, 256)
	for {
		n := int(C.llama_model_meta_val_str(m.m, ckey, (*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf))))
		if n < 0 {
			return "", false
		}
		if n < len(buf) {
			return string(buf[:n]), true
		}
		buf = make([]byte, n+1)
	}
}

// ChatTemplate is the model's chat template (GGUF tokenizer.chat_template), "" if none.
func (m *Model) ChatTemplate() string {
	t := C.llama_model_chat_template(m.m, nil)
	if t == nil {
		return ""
	}
	return C.GoString(t)
}

// BOS is the beginning-of-text token (-1 if the vocabulary has none).
func (m *Model) BOS() Token { return Token(C.llama_vocab_bos(m.vocab)) }

// EOS is the end-of-sequence token (-1 if none).
func (m *Model) EOS() Token { return Token(C.llama_vocab_eos(m.vocab)) }

// EOT is the end-of-turn token (Llama 3.1's <|eot_id|>; -1 if none).
func (m *Model) EOT() Token { return Token(C.llama_vocab_eot(m.vocab)) }

func (m *Model) checkToken(t Token) error {
	if t < 0 || int(t) >= m.nVocab {
		return fmt.Errorf("llamacpp: %w: %d not in [0, %d)", ErrToken, t, m.nVocab)
	}
	return nil
}

// IsEOG reports whether t ends generation (end of text, end of turn, ...). Ids outside
// the vocabulary are not.
func (m *Model) IsEOG(t Token) bool {
	if m.checkToken(t) != nil {
		return false
	}
	return bool(C.llama_vocab_is_eog(m.vocab, C.llama_token(t)))
}

// EOGTokens lists every end-of-generation token, ascending.
func (m *Model) EOGTokens() []Token {
	m.eogOnce.Do(func() {
		for t := 0; t < m.nVocab; t++ {
			if C.llama_vocab_is_eog(m.vocab, C.llama_token(t)) {
				m.eog = append(m.eog, Token(t))
			}
		}
	})
	return append([]Token(nil), m.eog...)
}

// Tokenize converts text to tokens. addSpecial adds BOS (and EOS) as the model's
// metadata asks; parseSpecial turns special-token text such as "<|eot_id|>" into its id
// (otherwise it is tokenized as plain text).
func (m *Model) Tokenize(text string, addSpecial, parseSpecial bool) ([]Token, error) {
	if len(text) > math.MaxInt32/2 {
		return nil, fmt.Errorf("llamacpp: tokenize: text of %d bytes is too long", len(text))
	}
	var zero byte
	ptr := &zero
	if len(text) > 0 {
		ptr = unsafe.StringData(text)
	}
	toks := make([]Token, len(text)+4)
	for {
		n := C.llama_tokenize(m.vocab, (*C.char)(unsafe.Pointer(ptr)), C.int32_t(len(text)),
			(*C.llama_token)(unsafe.Pointer(&toks[0])), C.int32_t(len(toks)), C.bool(addSpecial), C.bool(parseSpecial))
		if n == math.MinInt32 {
			return nil, fmt.Errorf("llamacpp: tokenize: result overflows int32")
		}
		if n >= 0 {
			return toks[:n:n], nil
		}
		toks = make([]Token, -n)
	}
}

// TokenPiece is the text of one token. With special, control tokens render as their text
// (e.g. "<|eot_id|>"); without, as nothing. Pieces of byte tokens may be parts of a UTF-8
// sequence: concatenate pieces, then convert.
func (m *Model) TokenPiece(t Token, special bool) ([]byte, error) {
	if err := m.checkToken(t); err != nil {
		return nil, err
	}
	buf := make([]byte, 32)
	for {
		n := int(C.llama_token_to_piece(m.vocab, C.llama_token(t), (*C.char)(unsafe.Pointer(&buf[0])), C.int32_t(len(buf)), 0, C.bool(special)))
		if n >= 0 {
			return buf[:n], nil
		}
		buf = make([]byte, -n)
	}
}

// Detokenize converts tokens back to text. removeSpecial drops a leading BOS (and
// trailing EOS) the tokenizer would add; unparseSpecial renders control tokens as text.
// llama.cpp's detokenizer also tidies spaces before punctuation for some pre-tokenizers;
// concatenating TokenPiece results is the byte-exact inverse of Tokenize.
func (m *Model) Detokenize(toks []Token, removeSpecial, unparseSpecial bool) (string, error) {
	if len(toks) == 0 {
		return "", nil
	}
	for _, t := range toks {
		if err := m.checkToken(t); err != nil {
			return "", err
		}
	}
	if len(toks) > math.MaxInt32/64 {
		return "", fmt.Errorf("llamacpp: detokenize: %d tokens is too many", len(toks))
	}
	buf := make([]byte, len(toks)*8+16)
	for {
		n := int(C.llama_detokenize(m.vocab, (*C.llama_token)(unsafe.Pointer(&toks[0])), C.int32_t(len(toks)),
			(*C.char)(unsafe.Pointer(&buf[0])), C.int32_t(len(buf)), C.bool(removeSpecial), C.bool(unparseSpecial)))
		if n >= 0 {
			return string(buf[:n]), nil
		}
		buf = make([]byte, -n)
	}
}

// ChatMessage is one turn of a chat: Role is "system", "user" or "assistant".
type ChatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// ApplyChatTemplate formats msgs with a chat template: tmpl, or the model's own when
// tmpl is "". addAssistant ends the text with the header that opens the assistant's turn.
//
// llama.cpp does not run the Jinja text: it recognises known formats by markers in it
// (Llama 3's <|start_header_id|>...). Its llama3 formatter trims each message's content
// and writes no BOS (tokenization adds it).
func (m *Model) ApplyChatTemplate(tmpl string, msgs []ChatMessage, addAssistant bool) (string, error) {
	if tmpl == "" {
		tmpl = m.ChatTemplate()
		if tmpl == "" {
			return "", fmt.Errorf("llamacpp: %s: %w in the GGUF metadata (tokenizer.chat_template)", m.path, ErrNoTemplate)
		}
	}
	if strings.IndexByte(tmpl, 0) >= 0 {
		return "", fmt.Errorf("llamacpp: chat template contains a NUL byte")
	}
	ctmpl := C.CString(tmpl)
	defer C.free(unsafe.Pointer(ctmpl))

	// Go memory holding C pointers only, which cgo allows passing.
	cmsgs := make([]C.struct_llama_chat_message, len(msgs)+1)
	total := len(tmpl)
	for i, msg := range msgs {
		if strings.IndexByte(msg.Role, 0) >= 0 || strings.IndexByte(msg.Content, 0) >= 0 {
			return "", fmt.Errorf("llamacpp: chat message %d contains a NUL byte", i)
		}
		role, content := C.CString(msg.Role), C.CString(msg.Content)
		defer C.free(unsafe.Pointer(role))
		defer C.free(unsafe.Pointer(content))
		cmsgs[i] = C.struct_llama_chat_message{role: role, content: content}
		total += len(msg.Role) + len(msg.Content)
	}
	if total > math.MaxInt32/4 {
		return "", errors.New("llamacpp: chat messages too long")
	}
	buf := make([]byte, 2*total+256)
	for {
		n := int(C.llama_chat_apply_template(ctmpl, &cmsgs[0], C.size_t(len(msgs)), C.bool(addAssistant),
			(*C.char)(unsafe.Pointer(&buf[0])), C.int32_t(len(buf))))
		if n < 0 {
			return "", fmt.Errorf("llamacpp: %w (llama_chat_apply_template knows a fixed list of formats)", ErrTemplate)
		}
		if n <= len(buf) {
			return string(buf[:n]), nil
		}
		buf = make([]byte, n)
	}
}
