#!/usr/bin/env bash
# The Debian package: builds it (dpkg-buildpackage), installs it, and runs a smoke test
# with the installed binaries only: ingest a small tree, mount with mount -t, read a file
# back, umount; then removes the package. Skips (77) without dpkg-buildpackage, or when
# a defragfs package is already installed (it would be replaced).
set -eu
. "$(dirname "$0")/lib.sh"
DFS_NEEDS=" " dfs_setup
command -v dpkg-buildpackage >/dev/null || { echo "skip: no dpkg-buildpackage"; exit 77; }
if dpkg-query -W -f='${Status}' defragfs 2>/dev/null | grep -q "install ok installed"; then
	echo "skip: a defragfs package is already installed"
	exit 77
fi
bash "$DFS_SRC/packaging/build-deb.sh" "$W/deb" >"$W/build.log" 2>&1 ||
	{ tail -n 30 "$W/build.log"; fail "package build"; dfs_finish; }
deb=$(ls "$W"/deb/defragfs_*.deb | head -n 1)
pass "built $(basename "$deb")"
dpkg -i "$deb" >"$W/install.log" 2>&1 || { cat "$W/install.log"; fail "dpkg -i"; dfs_finish; }
remove() { dpkg -r defragfs >/dev/null 2>&1 || true; }
trap 'remove; _dfs_cleanup' EXIT
for f in /usr/bin/defragfs /usr/bin/defrag-ingest /usr/bin/defrag-verify /usr/sbin/mount.fuse.defragfs \
	 /usr/share/man/man8/defragfs.8.gz /usr/share/man/man5/defragfs-rules.5.gz \
	 /usr/share/doc/defragfs/examples/fstab.example; do
	[ -e "$f" ] && pass "installed $f" || fail "missing $f"
done
mkdir -p "$W/src/d" "$W/mnt"
seq 1 50000 >"$W/src/d/numbers.txt"
/usr/bin/defrag-ingest --store "$W/store" --name smoke --progress=never "$W/src" >/dev/null &&
	pass "installed defrag-ingest" || fail "installed defrag-ingest"
if mount -t fuse.defragfs "$W/store" "$W/mnt"; then
	cmp -s "$W/src/d/numbers.txt" "$W/mnt/.sources/smoke/d/numbers.txt" &&
		pass "read back through mount -t" || fail "wrong bytes through the mount"
	umount "$W/mnt" && pass "umount" || fail "umount"
else
	fail "mount -t fuse.defragfs with the installed package"
fi
remove
[ ! -e /usr/bin/defragfs ] && pass "dpkg -r removes it" || fail "dpkg -r left files"
dfs_finish
