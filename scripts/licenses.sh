#!/usr/bin/env bash
# licenses.sh BIN DEST: the license of every component linked into the synth binary BIN,
# copied under DEST with an index (DEST/README): each Go module `go version -m` lists
# (from vendor/ in a source bundle, else the module cache), the Go standard library,
# llama.cpp and ggml (through the third_party links), the llamafile sgemm notice,
# libjpeg-turbo and, when linked statically, the GCC runtime (Debian's copyright files).
set -euo pipefail
bin=$1 dest=$2
cd "$(dirname "$0")/.."
mkdir -p "$dest"
index=$dest/README
echo "Licenses of the components linked into synth: component, version, file (under LICENSES/)." >"$index"

# copy_license NAME VERSION SRC TARGET: SRC to DEST/TARGET, listed in the index.
copy_license() {
	mkdir -p "$(dirname "$dest/$4")"
	cp -r --no-preserve=mode "$3" "$dest/$4" # a file, or a folder of them (freetype's licenses/)
	printf '%s %s %s\n' "$1" "$2" "$4" >>"$index"
}

modcache=$(go env GOMODCACHE)
# module path, version; a "=>" line replaces the module before it
mods=$(go version -m "$bin" | awk 'BEGIN { n = 0 } $1 == "dep" { p[n] = $2; v[n] = $3; n++ } $1 == "=>" { p[n-1] = $2; v[n-1] = $3 } END { for (i = 0; i < n; i++) print p[i], v[i] }')
ndeps=$(go version -m "$bin" | grep -c $'^\tdep\t' || true)
[ "$(grep -c . <<<"$mods")" = "$ndeps" ] || { echo "licenses: read $(grep -c . <<<"$mods") of the $ndeps modules go version -m lists" >&2; exit 1; }
while read -r path version; do
	[ -n "$path" ] || continue
	if [ -f vendor/modules.txt ] && [ -d "vendor/$path" ]; then
		dir=vendor/$path
	else
		# the module cache spells capitals as !lower
		dir=$modcache/$(printf '%s' "$path" | sed 's/[A-Z]/!\L&/g')@$version
	fi
	found=0
	for f in "$dir"/*; do
		case "$(basename "$f" | tr '[:lower:]' '[:upper:]')" in
		LICENSE* | LICENCE* | COPYING* | NOTICE* | COPYRIGHT* | PATENTS*)
			copy_license "$path" "$version" "$f" "go/$path/$(basename "$f")"
			found=1
			;;
		esac
	done
	[ "$found" = 1 ] || { echo "licenses: no license file for Go module $path $version in $dir" >&2; exit 1; }
done <<<"$mods"

goroot=$(go env GOROOT)
goversion=$(go env GOVERSION)
for f in LICENSE PATENTS; do
	[ -f "$goroot/$f" ] && copy_license "go (standard library, runtime)" "$goversion" "$goroot/$f" "go/std/$f"
done

llama=third_party/llama.cpp ggml=third_party/ggml
copy_license llama.cpp "ec98e2002 (in github.com/ollama/ollama)" "$llama/LICENSE" llama.cpp/LICENSE
copy_license ggml "(in github.com/ollama/ollama)" "$ggml/LICENSE" ggml/LICENSE
# ggml-cpu's sgemm comes from llamafile and carries its own notice in its header
sgemm=$ggml/src/ggml-cpu/llamafile/sgemm.cpp
awk '/^\/\//{ print; next } { exit }' "$sgemm" >"$dest/ggml-llamafile-sgemm.txt"
printf '%s %s %s\n' "llamafile sgemm (in ggml-cpu)" "-" ggml-llamafile-sgemm.txt >>"$index"

copyright() { # the Debian copyright file of the first installed package named
	for p in "$@"; do
		[ -f "/usr/share/doc/$p/copyright" ] && { echo "/usr/share/doc/$p/copyright"; return; }
	done
	echo "licenses: no /usr/share/doc/{$*}/copyright (Debian package installed?)" >&2
	return 1
}
jpeg=$(copyright libjpeg62-turbo libjpeg62-turbo-dev)
copy_license libjpeg-turbo "$(dpkg-query -W -f '${Version}' libjpeg62-turbo 2>/dev/null || echo '?')" "$jpeg" libjpeg-turbo/copyright
if ! ldd "$bin" | grep -q 'libstdc++'; then
	gcc_copyright=$(copyright libstdc++6 libgcc-s1)
	copy_license "GCC runtime (libstdc++, libgcc; static)" "$(gcc -dumpfullversion)" "$gcc_copyright" gcc-runtime/copyright
fi
