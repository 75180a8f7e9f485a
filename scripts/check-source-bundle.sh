#!/usr/bin/env bash
# check-source-bundle.sh TARBALL: the source bundle builds and passes its tests offline.
# Unpacks it into an empty folder and runs make and make test there with GOPROXY=off,
# GOFLAGS=-mod=vendor, GOTOOLCHAIN=local and an empty module cache, so anything the
# bundle lacks fails instead of coming from the network or this machine's cache.
# SYNTH_FIXTURES passes through (absolute) when set.
set -euo pipefail
tarball=$(realpath "$1")
tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp"; rm -rf "$tmp"' EXIT
tar -xzf "$tarball" -C "$tmp"
cd "$tmp"/synth-*-src/
[ -d vendor ] || { echo "check-source-bundle: no vendor/ in $tarball" >&2; exit 1; }
[ -z "${SYNTH_FIXTURES:-}" ] || export SYNTH_FIXTURES=$(realpath "$SYNTH_FIXTURES")

export GOPROXY=off GOFLAGS=-mod=vendor GOTOOLCHAIN=local GOMODCACHE="$tmp/empty-module-cache"
make
make test
echo "check-source-bundle: $(basename "$tarball") ok"
