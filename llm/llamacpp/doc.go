// Package llamacpp is synth's thin cgo binding to llama.cpp. It is the only package under
// llm/ with cgo.
//
// The C sources come from the pinned Go module github.com/ollama/ollama (v0.17.4, which
// carries llama.cpp commit ec98e2002 and its ggml as cgo packages): the blank import of
// github.com/ollama/ollama/llama/llama.cpp/src compiles and links llama.cpp + ggml, and
// the headers are included through the third_party/llama.cpp and third_party/ggml links
// that `make` creates. llama.cpp stays unpatched; what we need differently is a wrapper
// here. No C type crosses this package's API.
package llamacpp
