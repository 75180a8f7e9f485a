#!/usr/bin/env bash
# Prepares the one-call GPU check (bench/gpu/run.sh) on a machine with Go: builds, for
# x86-64-v3 (the GPU machine has no Go toolchain and an unknown CPU), the test binaries
# the check runs, stripped and gzipped, and packs them with the pinned ggml sources and
# the fixture sets into .devcarry/ (git-ignored through .git/info/exclude), which the
# device tool carries:
#
#   bench/gpu/prepare.sh            # here, once (a few minutes: portable llama.cpp build)
#   device run, carry [".devcarry"]: bash bench/gpu/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
make links >/dev/null
grep -qx '/.devcarry/' .git/info/exclude 2>/dev/null || echo '/.devcarry/' >>"$(git rev-parse --git-path info/exclude)"
out=.devcarry
rm -rf "$out"
mkdir -p "$out/bin"
export CGO_ENABLED=1 GOAMD64=v3
export CGO_CFLAGS='-O3 -march=x86-64-v3 -mtune=generic'
export CGO_CXXFLAGS='-O3 -march=x86-64-v3 -mtune=generic -Wno-stringop-overflow'
for pkg in native vision/blip2 vision/longclip vision/lora pipeline/finetune llm; do
	name=$(basename "$pkg")
	go test -c -ldflags='-s -w' -o "$out/bin/$name.test" "./$pkg"
done
go build -ldflags='-s -w' -o "$out/bin/synth" ./cmd/synth
gzip -9 "$out"/bin/*
# the pinned ggml sources CMakeLists.txt builds the CUDA module from
ggml=$(readlink -f third_party/ggml)
tar -C "$(dirname "$ggml")" -czf "$out/ggml.tar.gz" "$(basename "$ggml")"
# the fixture sets the parity tests read (the tiny models: a few MB)
fx=${SYNTH_FIXTURES:-../shared/fixtures}
tar -C "$fx" -czf "$out/fixtures.tar.gz" README.md blip2 finetune longclip/tiny-a longclip/README.md longclip/bpe_simple_vocab_16e6.txt.gz
du -sh "$out"
echo "ready: device run with carry [\"$out\"] and command: bash bench/gpu/run.sh"
