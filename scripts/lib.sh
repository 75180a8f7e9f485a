# Shared by dist.sh and source-bundle.sh (sourced, not run).

# pack DIR NAME OUT: a gzip'd tar of DIR/NAME at OUT, reproducible: sorted names, no
# owners, every mtime set to the last commit's time (or SOURCE_DATE_EPOCH).
pack() {
	local epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
	tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" -C "$1" -cf - "$2" | gzip -n -9 >"$3"
}

# sums DIR: DIR/SHA256SUMS over the other files under DIR, in `sha256sum -c` format.
sums() {
	(cd "$1" && find . -type f ! -name SHA256SUMS -printf '%P\n' | LC_ALL=C sort | xargs -d '\n' sha256sum >SHA256SUMS)
}

# dist_sums: dist/SHA256SUMS over the tarballs in dist/, to check after a transfer.
dist_sums() {
	(cd dist && find . -maxdepth 1 -name '*.tar.gz' -printf '%P\n' | LC_ALL=C sort | xargs -d '\n' sha256sum >SHA256SUMS)
}
