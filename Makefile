# synth build. `make` builds bin/synth; `make test` runs vet and every test.
#
# cgo flags: ggml-cpu and our kernels pick their SIMD code at compile time from -march,
# so -O3 -march=native is the default (without it ggml has no AVX2). PORTABLE=1 builds
# for x86-64-v3 (AVX2/FMA/F16C) instead, for binaries that move between machines: Go
# code for GOAMD64=v3 too (an older CPU gets a clear message instead of an illegal
# instruction) and libjpeg-turbo linked in, so the binary needs only glibc and the C++
# runtime every Debian/Ubuntu has (apt depends on it). Linking libstdc++ statically too
# would raise the glibc it needs from 2.34 to 2.36 (GCC 12's runtime calls arc4random),
# which leaves out Ubuntu 22.04. Our kernels still choose AVX-512 at run time where the
# CPU has it (their variants carry their own target attributes); ggml-cpu stays at AVX2.

GO      ?= go
PORTABLE ?= 0
BIN     ?= bin/synth
GOTAGS  :=
ifeq ($(PORTABLE),1)
ARCH_FLAGS := -march=x86-64-v3 -mtune=generic
export GOAMD64 := v3
GOTAGS     := jpegstatic
else
ARCH_FLAGS := -march=native
endif
export CGO_ENABLED  := 1
export CGO_CFLAGS   := -O3 $(ARCH_FLAGS)
# upstream ggml's repack.cpp trips a false -Wstringop-overflow with gcc 12; not ours to patch
export CGO_CXXFLAGS := -O3 $(ARCH_FLAGS) -Wno-stringop-overflow

# A source bundle has no .git: its VERSION file says what it was made from.
VERSION ?= $(shell cat VERSION 2>/dev/null || git describe --tags --always --dirty 2>/dev/null || echo dev)
# synth doctor reads the cgo flags back to say whether the binary is portable or native-tuned.
LDFLAGS := -X main.version=$(VERSION) -X 'main.cgoFlags=$(CGO_CFLAGS)'
BUILDFLAGS = -tags '$(GOTAGS)' -ldflags "$(LDFLAGS)"

# The llama.cpp sources come from the pinned ollama module (see README). LLAMA_CPP_DIR
# may point at another checkout of the same llama.cpp commit.
LLAMA_CPP_DIR ?=
TEST_TIMEOUT  ?= 60m
# a count, not a duration: go1.26.8's fuzz coordinator can fail a timed run under load
# with "context deadline exceeded" (golang/go#75804)
FUZZTIME      ?= 20000x
BENCH         ?= .
BENCHTIME     ?= 1x

.PHONY: all build links test vet bench bench-kernels fuzz clean demo dist source-bundle
all: build

build: links
	$(GO) build $(BUILDFLAGS) -o $(BIN) ./cmd/synth

# third_party links: made every run so a changed LLAMA_CPP_DIR or module version applies.
# The package directories `go list` gives are the module cache's, or vendor/'s in a
# source bundle (-mod=vendor), so the links follow whichever the build uses.
links:
	@set -e; \
	if [ -n "$(LLAMA_CPP_DIR)" ]; then \
		llama="$(LLAMA_CPP_DIR)"; ggml="$(LLAMA_CPP_DIR)/ggml"; \
	else \
		src=$$($(GO) list -f '{{.Dir}}' github.com/ollama/ollama/llama/llama.cpp/src); \
		gsrc=$$($(GO) list -f '{{.Dir}}' github.com/ollama/ollama/ml/backend/ggml/ggml/src); \
		llama="$${src%/src}"; ggml="$${gsrc%/src}"; \
	fi; \
	test -f "$$llama/include/llama.h" || { echo "no llama.h under $$llama/include" >&2; exit 1; }; \
	test -f "$$ggml/include/ggml.h" || { echo "no ggml.h under $$ggml/include" >&2; exit 1; }; \
	mkdir -p third_party; \
	ln -sfn "$$llama" third_party/llama.cpp; \
	ln -sfn "$$ggml" third_party/ggml

# The bundled default job: tiny random-weight models, a drawn product set, the whole
# pipeline (caption -> rewrite -> eval) into demo/out. Rerunning recomputes nothing.
demo: build
	$(BIN) demo --out demo

vet: links
	$(GO) vet -tags '$(GOTAGS)' ./...

test: vet
	$(GO) test -tags '$(GOTAGS)' -timeout $(TEST_TIMEOUT) ./...

# Benchmarks only (no tests). Compare runs with benchstat; numbers are never asserted.
bench: links
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchtime $(BENCHTIME) -timeout 0 ./...

# The kernel benchmark table (synth bench kernels) with the OpenBLAS anchor in the same
# run. Needs Debian's libopenblas-dev for this target only; synth never links OpenBLAS
# otherwise.
bench-kernels: links
	$(GO) build -tags openblas -ldflags "$(LDFLAGS)" -o bin/synth-openblas ./cmd/synth
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

# The release for machines without network (README, "Offline install"):
# dist/synth-VERSION-linux-amd64.tar.gz, the portable binary with the README, the example
# config, LICENSES/ and SHA256SUMS (plus -cuda.tar.gz when CMake built the GPU module
# into build/lib/synth); and dist/synth-VERSION-src.tar.gz, the repository with vendor/
# and the pinned llama.cpp/ggml sources, which builds with GOPROXY=off.
dist:
	@[ -f "$$($(CC) -print-file-name=libjpeg.a)" ] || \
		{ echo "make dist: no libjpeg.a to link (Debian: apt-get install libjpeg62-turbo-dev)" >&2; exit 1; }
	$(MAKE) --no-print-directory PORTABLE=1 BIN=build/dist/synth build
	scripts/dist.sh build/dist/synth '$(VERSION)'

source-bundle: links
	scripts/source-bundle.sh '$(VERSION)'

clean:
	rm -rf bin build dist
	rm -f third_party/llama.cpp third_party/ggml
