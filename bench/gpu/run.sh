#!/usr/bin/env bash
# The GPU check (issue 22), in one device call of at most 8 minutes, on a machine with
# one NVIDIA H100/H200, CUDA's compiler and CMake, and no Go: run bench/gpu/prepare.sh
# here first, then on the device machine `bash bench/gpu/run.sh` with .devcarry carried.
#
# It builds ggml's CUDA backend module from the pinned sources, runs the parity tests on
# cuda:0 (SYNTH_TEST_DEVICES), benchmarks BLIP-2 captioning (batch 1/8/32/64, F16 and
# Q8_0), LoRA training steps (synth finetune), the EVA encoder + Q-Former, Long-CLIP-L at
# batch 64 and llama.cpp rewriting with
# every layer on the GPU, at the real shapes with random weights, runs the PyTorch
# anchors where PyTorch sees the GPU, and writes a dated log named after the GPU under
# bench/gpu/results/ (copied to $OUT when the device tool sets it). Each stage has a time
# limit; a stage that runs out is noted in the log and the next one starts.
set -uo pipefail
cd "$(dirname "$0")/../.."
start=$(date +%s)
carry=.devcarry
work=/tmp/synth-gpu
mkdir -p "$work" bench/gpu/results
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 | tr ' ' '-' | tr -cd 'A-Za-z0-9_.-')
log=bench/gpu/results/$(date -u +%Y-%m-%d)-${gpu:-nogpu}.log
exec > >(tee "$log") 2>&1
echo "== synth GPU check $(date -u +%FT%TZ) on ${gpu:-no GPU} ($(git rev-parse --short HEAD 2>/dev/null || echo unknown))"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | sed 's/^/   /'
left() { echo $((480 - ($(date +%s) - start))); }
stage() { echo; echo "== $1 ($(left) s left)"; }

stage "unpack"
for f in "$carry"/bin/*.gz; do gunzip -c "$f" >"$work/$(basename "$f" .gz)"; chmod +x "$work/$(basename "$f" .gz)"; done
mkdir -p "$work/src" "$work/fixtures"
tar -C "$work/src" -xzf "$carry/ggml.tar.gz"
tar -C "$work/fixtures" -xzf "$carry/fixtures.tar.gz"
mkdir -p third_party && ln -sfn "$work/src/$(ls "$work/src")" third_party/ggml

stage "build the CUDA module (sm_90, no flash-attention kernels: synth's attention does not use them)"
t0=$(date +%s)
cmake -S . -B "$work/build" -G Ninja -DCMAKE_CUDA_ARCHITECTURES=90 -DGGML_CUDA_FA=OFF >"$work/cmake.log" 2>&1 &&
	timeout 240 cmake --build "$work/build" -j "$(nproc)" >>"$work/cmake.log" 2>&1
echo "   exit $?, $(( $(date +%s) - t0 )) s; $(ls "$work/build/lib/synth" 2>/dev/null | tr '\n' ' ')"
tail -3 "$work/cmake.log" | sed 's/^/   /'
export SYNTH_GGML_BACKENDS=$work/build/lib/synth SYNTH_FIXTURES=$work/fixtures
"$work/synth" doctor | sed 's/^/   /'

stage "parity on cuda:0"
export SYNTH_TEST_DEVICES=cuda:0
for t in native blip2 longclip finetune; do
	(cd "$work" && timeout 60 ./$t.test -test.count 1 -test.run 'Test' 2>&1 | tail -4 | sed "s/^/   $t: /")
done
unset SYNTH_TEST_DEVICES

bench() { # name, seconds, command...
	local name=$1 secs=$2; shift 2
	stage "$name"
	(cd "$work" && timeout "$secs" "$@" 2>&1 | grep -E 'Benchmark|ok|FAIL|panic|Error' | sed 's/^/   /')
	[ "${PIPESTATUS[0]}" = 124 ] && echo "   (stopped at its $secs s limit)"
}
bench "BLIP-2 OPT-2.7B captions/hour, 60 new tokens, F16 and Q8_0, batch 1/8/32/64" 150 \
	./blip2.test -test.run '^$' -test.bench 'Caption$' -test.benchtime 2x -blip2.device cuda:0 \
	-blip2.dtypes f16,q8_0 -blip2.caption-batches 1,8,32,64 -blip2.threads 4
bench "LoRA training (issue 21): OPT-2.7B q/k LoRA r 16, 32 cached queries + 60 tokens, F16 base, batch 32; an 87K-pair epoch takes 87000*60/(tokens/s) s" 60 \
	./lora.test -test.run '^$' -test.bench TrainStep -test.benchtime 3x -lora.device cuda:0 -lora.dtype f16 -lora.batch 32 -lora.threads 4
bench "EVA ViT-g + Q-Former images/s, batch 64" 60 \
	./blip2.test -test.run '^$' -test.bench 'Encode' -test.benchtime 5x -blip2.device cuda:0 -blip2.dtypes f16 -blip2.batches 64 -blip2.threads 4
bench "Long-CLIP-L images/s and texts/s, batch 64" 60 \
	./longclip.test -test.run '^$' -test.bench 'EncodeImage|EncodeText' -test.benchtime 5x -longclip.device cuda:0 -longclip.batches 64 -longclip.layers 24
bench "ggml CPU device vs synth's kernels (Long-CLIP-L, 2 layers, batch 8)" 40 \
	./longclip.test -test.run '^$' -test.bench 'EncodeImage' -test.benchtime 2x -longclip.device ggml:CPU -longclip.batches 8 -longclip.layers 2
if [ "$(left)" -gt 100 ]; then
	SYNTH_BENCH_MODELS=$work/models SYNTH_BENCH_GPU_LAYERS=-1 SYNTH_BENCH_PARALLEL=1,16,64 SYNTH_BENCH_TOKENS=32 \
		bench "llama.cpp rewrite, random Llama-3.1-8B Q8_0, every layer on the GPU, 1/16/64 slots" $(( $(left) - 60 )) \
		./llm.test -test.run '^$' -test.bench 'Generate/model=8b/type=Q8_0' -test.benchtime 1x
fi

if python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null && [ "$(left)" -gt 40 ]; then
	stage "PyTorch anchors on the same GPU"
	timeout $(( $(left) - 20 )) python3 bench/torch/longclip.py --device cuda --amp --batch 64 --seconds 3 2>&1 | sed 's/^/   /'
	timeout $(( $(left) - 10 )) python3 bench/torch/blip2.py --device cuda --amp --batch 1 8 64 --seconds 3 2>&1 | sed 's/^/   /'
fi

stage "done in $(( $(date +%s) - start )) s"
[ -n "${OUT:-}" ] && cp "$log" "$OUT/"
