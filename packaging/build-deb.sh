#!/usr/bin/env bash
# Builds the .deb: packaging/build-deb.sh OUTDIR
# Copies the source tree to a scratch directory with packaging/debian as debian/, runs
# dpkg-buildpackage -us -uc -b there, and moves the .deb files into OUTDIR.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:?usage: build-deb.sh OUTDIR}" && cd "$1" && pwd)
tmp=$(mktemp -d /tmp/defragfs-deb.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/defragfs-0.1.0"
tar -C "$top" --exclude='./build*' --exclude='./.git' -cf - . | tar -C "$tmp/defragfs-0.1.0" -xf -
cp -r "$top/packaging/debian" "$tmp/defragfs-0.1.0/debian"
(cd "$tmp/defragfs-0.1.0" &&
	DEB_BUILD_OPTIONS="nocheck parallel=2" dpkg-buildpackage -us -uc -b >"$tmp/build.log" 2>&1) ||
	{ tail -n 40 "$tmp/build.log"; exit 1; }
mv "$tmp"/*.deb "$out/"
ls "$out"/*.deb
