#!/usr/bin/env bash
# Directories moved on the drive between two ingests: renamed, swapped with each other,
# moved into another. The re-ingest keeps every file (a moved directory is not a
# deletion, so the deletion threshold does not ask for --allow-deletions), exits 0, and
# the source view is the drive again, file by file. Before, a renamed directory was
# emptied in the view (with --allow-deletions) and a swap failed every rerun (exit 3).
set -eu
. "$(dirname "$0")/lib.sh"
dfs_setup

src=$W/src
store=$W/store
mnt=$W/mnt
mkdir -p "$mnt" "$src/d1/sub" "$src/x" "$src/y"
echo one >"$src/d1/f"
echo two >"$src/d1/sub/g"
echo ex >"$src/x/fx"
echo why >"$src/y/fy"
echo keep >"$src/keep"

step() {	# step NAME: re-ingest, exit 0, the view is the drive
	local rc=0
	dfs_ingest --store "$store" --name mv "$src" >/dev/null || rc=$?
	dfs_mount "$store" "$mnt"
	if [ $rc -eq 0 ] && "$DFS_BIN/dfs-treecmp" --ignore-atime --ignore-ctime "$src" \
		"$mnt/.sources/mv" >"$W/cmp.log" 2>&1; then
		pass "$1: exit 0, the view is the drive"
	else
		head -n 20 "$W/cmp.log"
		fail "$1: exit $rc"
	fi
	dfs_umount "$mnt"
}

step "first ingest"
mv "$src/d1" "$src/d2"
step "a directory renamed"
mv "$src/x" "$src/t" && mv "$src/y" "$src/x" && mv "$src/t" "$src/y"
step "two directories swapped"
mv "$src/d2" "$src/x/inner"
step "a directory moved into another"
mv "$src/x/inner/sub" "$src/sub-up" && mv "$src/x/inner" "$src/y/deeper"
step "moved out of, and then its parent moved"
dfs_finish
