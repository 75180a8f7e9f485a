#!/usr/bin/env bash
# source-bundle.sh VERSION: dist/synth-VERSION-src.tar.gz, the repository's files (tracked
# and untracked-but-not-ignored, as in the working tree) with vendor/ from `go mod
# vendor` and a VERSION file, which builds and tests with no network:
#   GOPROXY=off GOFLAGS=-mod=vendor make && make test
#
# `go mod vendor` copies only the directories of imported packages, so it leaves out
# what ollama's cgo packages reach through -I${SRCDIR}/.. and what CMakeLists.txt builds:
# llama/llama.cpp/include (llama.h), ml/backend/ggml/ggml/include (ggml*.h),
# ggml-cpu/amx (headers ggml-cpu.cpp includes), ggml-cuda and ggml/cmake. The complete
# pinned llama.cpp and ggml trees of the module are therefore copied over vendor's
# partial ones, and every -I folder of every vendored cgo package is checked to exist.
set -euo pipefail
version=$1
cd "$(dirname "$0")/.."
. scripts/lib.sh
git rev-parse --git-dir >/dev/null 2>&1 || { echo "source-bundle: needs a git checkout (it bundles the files git knows)" >&2; exit 1; }

name=synth-$version-src
root=build/source-bundle
stage=$root/$name
rm -rf "$root"
mkdir -p "$stage" dist

git ls-files -z -co --exclude-standard | while IFS= read -r -d '' f; do
	if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi # not deleted in the work tree
done | tar --null -T - -cf - | tar -xf - -C "$stage"
echo "$version" >"$stage/VERSION"

go mod vendor -o "$stage/vendor"
mod=$(go list -m -f '{{.Dir}}' github.com/ollama/ollama)
for tree in llama/llama.cpp ml/backend/ggml/ggml; do
	mkdir -p "$stage/vendor/github.com/ollama/ollama/$tree"
	# the module cache is read-only; the bundle's copy is not
	cp -r --no-preserve=mode "$mod/$tree/." "$stage/vendor/github.com/ollama/ollama/$tree/"
done

# Every include folder a cgo package of the build names must be in the bundle where the
# module-mode build has it (some -I folders exist in neither, e.g. llama.cpp/vendor).
includes() { # per cgo package: import path, -I folder relative to the package, present?
	go list -deps -f '{{if .CgoFiles}}{{.ImportPath}} {{.Dir}}{{range .CgoCPPFLAGS}} {{.}}{{end}}{{range .CgoCFLAGS}} {{.}}{{end}}{{range .CgoCXXFLAGS}} {{.}}{{end}}{{end}}' ./... |
		awk 'NF { for (i = 3; i <= NF; i++) if ($i ~ /^-I/) { inc = substr($i, 3); if (index(inc, $2) == 1) inc = substr(inc, length($2) + 1); print $1, $2, inc } }' |
		while read -r pkg dir rel; do
			if [ -d "$dir$rel" ]; then echo "$pkg $rel yes"; else echo "$pkg $rel no"; fi
		done
}
includes >"$root/includes.module"
(
	cd "$stage"
	export GOFLAGS=-mod=vendor GOPROXY=off
	make --no-print-directory links >/dev/null 2>&1 || true # a failure shows as missing folders below
	includes >../includes.bundle
	rm -f third_party/llama.cpp third_party/ggml
)
keyed() { awk '{ print $1 "|" $2, $3 }' "$1" | LC_ALL=C sort; }
missing=$(LC_ALL=C join <(keyed "$root/includes.module") <(keyed "$root/includes.bundle") | awk '$2 == "yes" && $3 == "no" { print $1 }')
if [ -n "$missing" ]; then
	echo "source-bundle: include folders missing from the bundle (package|folder):" $missing >&2
	exit 1
fi

pack "$root" "$name" "dist/$name.tar.gz"
rm -rf "$stage" # a second copy of the tree under build/ is only in the way
dist_sums
echo "source-bundle: dist/$name.tar.gz"
