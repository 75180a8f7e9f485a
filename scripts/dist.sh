#!/usr/bin/env bash
# dist.sh BIN VERSION: packs the portable binary BIN (make dist builds it) into
# dist/synth-VERSION-OS-ARCH.tar.gz with the README, the example config, LICENSES/,
# BUILD-INFO and SHA256SUMS; and, where CMake built the GPU module into build/lib/synth,
# dist/synth-VERSION-OS-ARCH-cuda.tar.gz, which unpacks into the same folder (lib/synth
# beside the binary, where synth looks for it). dist/SHA256SUMS lists the tarballs.
set -euo pipefail
bin=$1 version=$2
cd "$(dirname "$0")/.."
. scripts/lib.sh

name=synth-$version-$(go env GOOS)-$(go env GOARCH)
root=build/dist/pkg
stage=$root/$name
rm -rf "$root"
mkdir -p "$stage" dist

# The binary must need nothing beyond glibc and the C++ runtime (libstdc++6, libgcc-s1:
# on every Debian/Ubuntu, apt depends on them); libjpeg-turbo is linked in (make PORTABLE=1).
ldd "$bin" >build/dist/ldd.txt
if extra=$(grep -vE "$(cat scripts/dist-libs.txt)" build/dist/ldd.txt); then
	echo "dist: $bin needs more than glibc and the C++ runtime:" >&2
	echo "$extra" >&2
	exit 1
fi
glibc=$(objdump -T "$bin" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
glibcxx=$(objdump -T "$bin" | grep -o 'GLIBCXX_[0-9.]*' | sort -uV | tail -1)

cp "$bin" "$stage/synth"
cp README.md synth.example.yaml "$stage/"
scripts/licenses.sh "$bin" "$stage/LICENSES"
{
	echo "synth $version, built $(date -u +%Y-%m-%d) on $(. /etc/os-release && echo "$PRETTY_NAME")"
	echo "needs: Linux $(go env GOARCH), a CPU with x86-64-v3 (AVX2, FMA, F16C), glibc >= ${glibc#GLIBC_}, libstdc++ with ${glibcxx:-no GLIBCXX symbols}"
	echo
	echo "ldd synth:"
	sed 's/ (0x[0-9a-f]*)//' build/dist/ldd.txt
	echo
	go version -m "$bin"
} >"$stage/BUILD-INFO"
sums "$stage"
pack "$root" "$name" "dist/$name.tar.gz"
echo "dist: dist/$name.tar.gz"

# The GPU module: only where CMakeLists.txt built it (a machine with the CUDA toolkit).
if compgen -G 'build/lib/synth/libggml-cuda.so*' >/dev/null; then
	cuda=$root/cuda
	mkdir -p "$cuda/$name/lib/synth"
	cp -a build/lib/synth/*.so* "$cuda/$name/lib/synth/"
	{
		echo "ggml's CUDA backend module for synth $version, loaded from lib/synth beside the"
		echo "binary (or from \$SYNTH_GGML_BACKENDS). It needs the NVIDIA driver and these libraries:"
		echo
		for so in "$cuda/$name"/lib/synth/libggml-cuda.so*; do
			[ -L "$so" ] || ldd "$so" | sed -e 's/ (0x[0-9a-f]*)//' -e "s|$(realpath "$cuda/$name")/||"
		done
	} >"$cuda/$name/lib/synth/README"
	sums "$cuda/$name/lib/synth"
	pack "$cuda" "$name" "dist/$name-cuda.tar.gz"
	echo "dist: dist/$name-cuda.tar.gz"
else
	echo "dist: no GPU module in build/lib/synth (CMakeLists.txt builds it on CUDA machines): no -cuda tarball"
fi
dist_sums
