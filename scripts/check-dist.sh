#!/usr/bin/env bash
# check-dist.sh TARBALL: the release works where it lands. Unpacks the make dist tarball
# into an empty folder and, with an empty environment (env -i: no PATH, so no Go
# toolchain, no proxy or other network variables), checks its SHA256SUMS, runs
# ./synth doctor (portable; the kernels still pick AVX-512 where the CPU has it) and
# ./synth demo, then locks the demo's models and reruns the demo's pipeline against
# that lock.
set -euo pipefail
tarball=$(realpath "$1")
libs=$(realpath "$(dirname "$0")/dist-libs.txt")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tar -xzf "$tarball" -C "$tmp"
cd "$tmp"/synth-*/

sha256sum --quiet -c SHA256SUMS
extra=$(ldd ./synth | grep -vE "$(cat "$libs")" || true)
[ -z "$extra" ] || { echo "check-dist: ./synth needs more than glibc and the C++ runtime: $extra" >&2; exit 1; }

env -i ./synth doctor | tee doctor.txt
grep -q '^build: *portable (-march=x86-64-v3' doctor.txt || { echo "check-dist: doctor does not say portable x86-64-v3" >&2; exit 1; }
if grep -qw avx512f /proc/cpuinfo && grep -qw avx512bw /proc/cpuinfo && grep -qw avx512dq /proc/cpuinfo && grep -qw avx512vl /proc/cpuinfo; then
	grep -q '^kernel variant: avx512 ' doctor.txt || { echo "check-dist: this CPU has AVX-512 but the portable kernels did not pick it" >&2; exit 1; }
fi

env -i ./synth demo --out demo
env -i ./synth models lock demo/models >models.lock
env -i ./synth models check models.lock
env -i ./synth pipeline --config demo/synth.yaml --models-lock models.lock
echo "check-dist: $(basename "$tarball") ok"
