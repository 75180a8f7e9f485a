# synth build. `make` builds bin/synth; `make test` runs vet and every test.
#
# cgo flags: ggml-cpu and our kernels pick their SIMD code at compile time from -march,
# so -O3 -march=native is the default (without it ggml has no AVX2). PORTABLE=1 builds
# for x86-64-v3 (AVX2/FMA/F16C) instead, for binaries that move between machines.

GO      ?= go
PORTABLE ?= 0
ifeq ($(PORTABLE),1)
ARCH_FLAGS := -march=x86-64-v3 -mtune=generic
else
ARCH_FLAGS := -march=native
endif
export CGO_ENABLED  := 1
export CGO_CFLAGS   := -O3 $(ARCH_FLAGS)
# upstream ggml's repack.cpp trips a false -Wstringop-overflow with gcc 12; not ours to patch
export CGO_CXXFLAGS := -O3 $(ARCH_FLAGS) -Wno-stringop-overflow

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

# The llama.cpp sources come from the pinned ollama module (see README). LLAMA_CPP_DIR
# may point at another checkout of the same llama.cpp commit.
LLAMA_CPP_DIR ?=
TEST_TIMEOUT  ?= 60m
# a count, not a duration: go1.26.8's fuzz coordinator can fail a timed run under load
# with "context deadline exceeded" (golang/go#75804)
FUZZTIME      ?= 20000x
BENCH         ?= .
BENCHTIME     ?= 1x

.PHONY: all build links test vet bench bench-kernels fuzz clean demo
all: build

build: links
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/synth ./cmd/synth

# third_party links: made every run so a changed LLAMA_CPP_DIR or module version applies.
links:
	@set -e; \
	if [ -n "$(LLAMA_CPP_DIR)" ]; then \
		llama="$(LLAMA_CPP_DIR)"; ggml="$(LLAMA_CPP_DIR)/ggml"; \
	else \
		mod=$$($(GO) list -m -f '{{.Dir}}' github.com/ollama/ollama); \
		if [ -z "$$mod" ] || [ ! -d "$$mod" ]; then $(GO) mod download github.com/ollama/ollama; \
			mod=$$($(GO) list -m -f '{{.Dir}}' github.com/ollama/ollama); fi; \
		llama="$$mod/llama/llama.cpp"; ggml="$$mod/ml/backend/ggml/ggml"; \
	fi; \
	test -f "$$llama/include/llama.h" || { echo "no llama.h under $$llama/include" >&2; exit 1; }; \
	test -f "$$ggml/include/ggml.h" || { echo "no ggml.h under $$ggml/include" >&2; exit 1; }; \
	mkdir -p third_party; \
	ln -sfn "$$llama" third_party/llama.cpp; \
	ln -sfn "$$ggml" third_party/ggml

# The bundled default job: tiny random-weight models, a drawn product set, the whole
# pipeline (caption -> rewrite -> eval) into demo/out. Rerunning recomputes nothing.
demo: build
	bin/synth demo --out demo

vet: links
	$(GO) vet ./...

test: vet
	$(GO) test -timeout $(TEST_TIMEOUT) ./...

# Benchmarks only (no tests). Compare runs with benchstat; numbers are never asserted.
bench: links
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchtime $(BENCHTIME) -timeout 0 ./...

# The kernel benchmark table (synth bench kernels) with the OpenBLAS anchor in the same
# run. Needs Debian's libopenblas-dev for this target only; synth never links OpenBLAS
# otherwise.
bench-kernels: links
	$(GO) build -tags openblas -ldflags '$(LDFLAGS)' -o bin/synth-openblas ./cmd/synth
	bin/synth-openblas bench kernels

# Every Go fuzz target, briefly (FUZZTIME each).
fuzz: links
	@set -e; \
	for f in $$(grep -rl --include='*_test.go' '^func Fuzz' . | grep -v third_party); do \
		pkg=./$$(dirname $${f#./}); \
		for t in $$(grep -o '^func Fuzz[A-Za-z0-9_]*' $$f | cut -d' ' -f2); do \
			echo "== $$pkg $$t"; \
			$(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

clean:
	rm -rf bin build
	rm -f third_party/llama.cpp third_party/ggml
