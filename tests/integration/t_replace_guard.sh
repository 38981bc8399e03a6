#!/usr/bin/env bash
# issue 23, item 1: --replace keeps the deletion guard, and an unmounted mount point is
# said to be one. A drive (a tmpfs) is ingested, then unmounted: its mount point, empty or
# not, is "nothing is mounted", never a hint to --replace; --replace onto it is refused
# by the deletion threshold (exit 2) and leaves the view as it was; a replacement that
# keeps most paths passes, one that keeps few needs --allow-deletions as well.
set -eu
. "$(dirname "$0")/lib.sh"
dfs_setup

store=$W/store
drive=$W/nvme3
mnt=$W/mnt
mkdir -p "$drive" "$mnt" "$W/copy"
mount -t tmpfs tmpfs "$drive"
DFS_CLEAN_MOUNTS="${DFS_CLEAN_MOUNTS:-} $drive"
mkdir -p "$drive/d"
for i in $(seq 1 50); do head -c $((i * 100)) /dev/urandom >"$drive/d/f$i"; done
cp -a "$drive/." "$W/copy/"
dfs_ingest --store "$store" "$drive" >/dev/null || fail "first ingest"

view_intact() {	# view_intact WHAT: /.sources/nvme3 is still the first drive
	dfs_mount "$store" "$mnt"
	if "$DFS_BIN/dfs-treecmp" --ignore-atime --ignore-ctime "$W/copy" \
		"$mnt/.sources/nvme3" >"$W/cmp.log" 2>&1; then
		pass "$1: the view is intact"
	else
		head -n 20 "$W/cmp.log"
		fail "$1: the view changed"
	fi
	dfs_umount "$mnt"
}

# the drive unmounted: an empty directory at the mount point
umount "$drive"
rc=0
"$DFS_BIN/defrag-ingest" --progress=never --store "$store" "$drive" >"$W/o1" 2>"$W/e1" || rc=$?
cat "$W/e1"
[ $rc -eq 2 ] && grep -q "nothing is mounted at $drive" "$W/e1" &&
	! grep -q -- "--replace" "$W/e1" && pass "empty mount point: nothing is mounted (exit 2)" ||
	fail "empty mount point: exit $rc, $(cat "$W/e1")"
[ ! -s "$W/o1" ] && pass "no summary after the refusal" || fail "summary printed: $(cat "$W/o1")"

# not empty, but part of its parent's filesystem
echo stray >"$drive/stray"
rc=0
"$DFS_BIN/defrag-ingest" --progress=never --store "$store" "$drive" >/dev/null 2>"$W/e2" || rc=$?
[ $rc -eq 2 ] && grep -q "nothing is mounted at $drive" "$W/e2" &&
	pass "a directory of the parent's filesystem: nothing is mounted" ||
	fail "unmounted, not empty: exit $rc, $(cat "$W/e2")"
rm "$drive/stray"

# --replace onto the empty mount point: the deletion threshold holds
rc=0
"$DFS_BIN/defrag-ingest" --progress=never --store "$store" --replace "$drive" >"$W/o3" \
	2>"$W/e3" || rc=$?
cat "$W/e3"
[ $rc -eq 2 ] && grep -q -- "--allow-deletions" "$W/e3" &&
	pass "--replace of an empty mount point refused (exit 2)" ||
	fail "--replace of an empty mount point: exit $rc"
[ ! -s "$W/o3" ] && pass "no summary after the --replace refusal" ||
	fail "summary printed: $(cat "$W/o3")"
view_intact "--replace refused"
"$DFS_BIN/defrag-stat" --store "$store" >"$W/stat1"
grep -q "path: *$drive\$" "$W/stat1" && grep -q "(50 files" "$W/stat1" &&
	pass "the source record is unchanged" || { cat "$W/stat1"; fail "source record changed"; }

# the same files on another drive (a restored copy): most paths are kept, accepted
mount -t tmpfs tmpfs "$drive"
cp -a "$W/copy/." "$drive/"
rm "$drive/d/f1"
echo new >"$drive/d/new"
dfs_ingest --store "$store" --replace "$drive" >/dev/null && pass "--replace keeping most paths" ||
	fail "--replace keeping most paths refused"
dfs_mount "$store" "$mnt"
"$DFS_BIN/dfs-treecmp" --ignore-atime --ignore-ctime "$drive" "$mnt/.sources/nvme3" \
	>"$W/cmp.log" 2>&1 && pass "the view is the new drive" ||
	{ head -n 20 "$W/cmp.log"; fail "the view is not the new drive"; }
dfs_umount "$mnt"
umount "$drive"

# a drive that keeps few of the paths: refused, then accepted with --allow-deletions
mount -t tmpfs tmpfs "$drive"
mkdir "$drive/d"
for i in $(seq 1 10); do cp -a "$W/copy/d/f$i" "$drive/d/"; done
rc=0
dfs_ingest --store "$store" --replace "$drive" >/dev/null 2>"$W/e4" || rc=$?
[ $rc -eq 2 ] && pass "--replace removing 40 of 50 refused" || fail "--replace removing most: exit $rc"
# the refused replacement's tree is gone from the index, which stays whole
"$DFS_BIN/defrag-verify" --store "$store" >"$W/v.log" 2>&1 && pass "verify clean after the refusal" ||
	{ cat "$W/v.log"; fail "verify after the refused replacement"; }
dfs_ingest --store "$store" --replace --allow-deletions "$drive" >/dev/null &&
	pass "--replace --allow-deletions" || fail "--replace --allow-deletions refused"
dfs_mount "$store" "$mnt"
n=$(find "$mnt/.sources/nvme3" -type f | wc -l)
[ "$n" = 10 ] && pass "the view holds the 10 files" || fail "the view holds $n files"
dfs_umount "$mnt"
umount "$drive"

# a refused replacement keeps the old drive's incremental map: put back, the old drive's
# next ingest reads nothing (two tmpfs instances, bind-mounted in turn at one path)
t1=$W/t1
t2=$W/t2
store2=$W/store2
mkdir -p "$t1" "$t2"
mount -t tmpfs tmpfs "$t1"
mount -t tmpfs tmpfs "$t2"
DFS_CLEAN_MOUNTS="${DFS_CLEAN_MOUNTS:-} $t1 $t2"
mkdir "$t1/d" "$t2/d"
for i in $(seq 1 50); do head -c $((i * 1000 + 3000)) /dev/urandom >"$t1/d/f$i"; done
for i in $(seq 1 5); do cp -a "$t1/d/f$i" "$t2/d/"; done
mount --bind "$t1" "$drive"
dfs_ingest --store "$store2" "$drive" >/dev/null || fail "ingest of the first drive"
umount "$drive"
mount --bind "$t2" "$drive"
rc=0
dfs_ingest --store "$store2" --replace "$drive" >/dev/null 2>"$W/e5" || rc=$?
[ $rc -eq 2 ] && pass "--replace removing 45 of 50 refused" || fail "--replace: exit $rc"
umount "$drive"
mount --bind "$t1" "$drive"
"$DFS_BIN/defrag-ingest" --progress=never --json --store "$store2" "$drive" >"$W/j5" ||
	fail "re-ingest of the first drive"
read -r unchanged bread < <(python3 -c 'import json,sys; j=json.load(open(sys.argv[1]))
s=j["sources"][0]; print(s["unchanged_files"], j["bytes_read"])' "$W/j5")
[ "$unchanged" = 50 ] && [ "$bread" = 0 ] &&
	pass "after the refusal the first drive's re-ingest reads nothing (50 unchanged)" ||
	fail "after the refusal: $unchanged unchanged, $bread bytes read"
"$DFS_BIN/defrag-verify" --store "$store2" --against "$drive" >"$W/v5.log" 2>&1 &&
	pass "the gate holds for the first drive" || { cat "$W/v5.log"; fail "gate"; }
umount "$drive"
dfs_finish
