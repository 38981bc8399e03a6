#!/usr/bin/env bash
# Two ext4 filesystems mounted under one source number their files alike (both have an
# inode 12): each file must be stored as itself, never as the other filesystem's file of
# the same number. Ingest, then a re-ingest that reads nothing, then the two images
# mounted the other way round (the filesystems are told apart by identity, not by path or
# st_dev), then the gate; with --one-file-system both are skipped and listed.
set -eu
. "$(dirname "$0")/lib.sh"
DFS_NEEDS="defrag-ingest defrag-verify defragfs" dfs_setup
if ! command -v mkfs.ext4 >/dev/null || ! losetup -f >/dev/null 2>&1; then
	echo "skip: needs mkfs.ext4 and a free loop device"
	exit 77
fi

src=$W/src
store=$W/store
mnt=$W/mnt
mkdir -p "$src/a" "$src/b" "$mnt"
echo "top level" >"$src/top.txt"
for i in a b; do
	truncate -s 16M "$W/$i.img"
	mkfs.ext4 -q -F "$W/$i.img"
done
mount -o loop "$W/a.img" "$src/a"
DFS_CLEAN_MOUNTS="$src/a"
mount -o loop "$W/b.img" "$src/b"
DFS_CLEAN_MOUNTS="$src/a $src/b"
echo "the file of filesystem A" >"$src/a/file.txt"
echo "filesystem B's own file, longer" >"$src/b/file.txt"
ln "$src/a/file.txt" "$src/a/link.txt"
ln "$src/b/file.txt" "$src/b/link.txt"
ia=$(stat -c %i "$src/a/file.txt")
ib=$(stat -c %i "$src/b/file.txt")
[ "$ia" = "$ib" ] && pass "the two files share inode number $ia" ||
	fail "no colliding inode numbers ($ia, $ib): the test proves nothing"

compare() {	# compare WHAT: the source view against the drive, bit-exact
	dfs_mount "$store" "$mnt"
	if "$DFS_BIN/dfs-treecmp" --ignore-atime --ignore-ctime "$src" "$mnt/.sources/drv" \
		>"$W/cmp.log" 2>&1; then
		pass "$1: the view is the drive, file by file"
	else
		head -n 20 "$W/cmp.log"
		fail "$1: the view differs from the drive"
	fi
	dfs_umount "$mnt"
}

dfs_ingest --store "$store" --name drv "$src" >/dev/null && pass "ingest: exit 0" ||
	fail "ingest"
compare "first ingest"

dfs_ingest --store "$store" --name drv --json "$src" >"$W/i2.json" || fail "re-ingest"
grep -q '"bytes_read": 0,' "$W/i2.json" && pass "a re-ingest reads nothing" ||
	{ cat "$W/i2.json"; fail "the re-ingest read files again"; }

# the same filesystems mounted the other way round
umount "$src/a" "$src/b"
mount -o loop "$W/b.img" "$src/a"
mount -o loop "$W/a.img" "$src/b"
rc=0
dfs_ingest --store "$store" --name drv --allow-deletions "$src" >/dev/null || rc=$?
[ $rc -eq 0 ] && pass "ingest after swapping the mounts: exit 0" || fail "swapped: exit $rc"
compare "mounts swapped"

rc=0
"$DFS_BIN/defrag-verify" --store "$store" --against "$src" --name drv >"$W/gate" 2>&1 || rc=$?
[ $rc -eq 0 ] && pass "the gate is clean" || { cat "$W/gate"; fail "gate: exit $rc"; }

rc=0
"$DFS_BIN/defrag-ingest" --store "$W/store2" --name drv --progress=never --one-file-system \
	"$src" >"$W/onefs" 2>&1 || rc=$?
[ $rc -eq 0 ] && grep -q "skipped (another filesystem, --one-file-system): drv:a" "$W/onefs" &&
	grep -q "drv:b" "$W/onefs" && pass "--one-file-system: both skipped and listed" ||
	{ cat "$W/onefs"; fail "--one-file-system: exit $rc"; }

umount "$src/a" "$src/b"
dfs_finish
