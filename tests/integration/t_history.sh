#!/usr/bin/env bash
# History: every completed ingest is a snapshot. Ingest, change 5% of the files, delete
# 1%, re-ingest: /.history/NAME/<first time> is byte-identical to a copy of the first
# state, the newest snapshot and /.sources/NAME to the second; /.history is not listed
# by the root (listed with -o sources=visible); the second snapshot costs index entries
# for what changed only (shared directories); defrag-recover rebuilds the same history.
set -eu
. "$(dirname "$0")/lib.sh"
DFS_NEEDS="defrag-ingest defrag-verify defrag-recover defragfs dfs-treecmp" dfs_setup

store=$W/store
mnt=$W/mnt
m2=$W/m2
src=$W/src
mkdir -p "$mnt" "$m2"
for d in $(seq 1 20); do
	mkdir -p "$src/d$d/sub"
	for f in $(seq 1 5); do seq 1 $((d * 100 + f)) >"$src/d$d/f$f.txt"; done
	head -c $((d * 3000)) /dev/urandom >"$src/d$d/sub/r.bin"
done
n=$(find "$src" -type f | wc -l)	# 120
dfs_ingest --store "$store" --name h "$src" || fail "first ingest"
cp -a "$src" "$W/first"
# 5% changed (6 files), 1% deleted (1 file)
for d in 1 2 3 4 5 6; do echo changed >>"$src/d$d/f1.txt"; done
rm "$src/d7/f2.txt"
dfs_ingest --store "$store" --name h "$src" || fail "second ingest"

dfs_mount "$store" "$mnt"
mapfile -t snaps < <(ls "$mnt/.history/h")
[ ${#snaps[@]} -eq 2 ] && pass "two snapshots: ${snaps[*]}" || fail "snapshots: ${snaps[*]:-none}"
[[ ${snaps[0]:-} =~ ^[0-9]{8}T[0-9]{6}Z$ ]] && pass "named by UTC time, ISO 8601 basic" ||
	fail "snapshot name ${snaps[0]:-}"
"$DFS_BIN/dfs-treecmp" --ignore-atime --ignore-ctime "$W/first" "$mnt/.history/h/${snaps[0]}" \
	>"$W/cmp1" 2>&1 && pass "the old snapshot is the first state, byte for byte" ||
	{ head "$W/cmp1"; fail "old snapshot differs from the first state"; }
"$DFS_BIN/dfs-treecmp" --ignore-atime --ignore-ctime "$src" "$mnt/.history/h/${snaps[1]}" \
	>"$W/cmp2" 2>&1 &&
	"$DFS_BIN/dfs-treecmp" --ignore-atime --ignore-ctime "$src" "$mnt/.sources/h" \
	>>"$W/cmp2" 2>&1 && pass "the newest snapshot and /.sources/h are the second state" ||
	{ head "$W/cmp2"; fail "newest snapshot differs"; }
! ls -a "$mnt" | grep -qx .history && pass "/.history hidden from the root's listing" ||
	fail "/.history listed"
touch "$mnt/.history/h/${snaps[0]}/d1/new" 2>/dev/null && fail "snapshot writable" ||
	pass "snapshots are read-only"
# a directory reachable from both snapshots has two FUSE inodes (one per parent)
i1=$(stat -c %i "$mnt/.history/h/${snaps[0]}/d20")
i2=$(stat -c %i "$mnt/.sources/h/d20")
[ "$i1" != "$i2" ] && pass "a shared directory has an inode per snapshot" ||
	fail "same inode $i1 under two parents"
dfs_umount "$mnt"
dfs_mount "$store" "$mnt" sources=visible
ls -a "$mnt" | grep -qx .history && pass "-o sources=visible lists /.history" ||
	fail "/.history not listed with sources=visible"
dfs_umount "$mnt"

"$DFS_BIN/defrag-verify" --store "$store" >"$W/v" 2>&1 && pass "verify clean" ||
	{ cat "$W/v"; fail "verify"; }

# the history is in the op log: a rebuilt index shows the same snapshots
cp -a "$store" "$W/rec"
"$DFS_BIN/defrag-recover" --store "$W/rec" >"$W/rec.out" 2>&1 || { cat "$W/rec.out"; fail "recover"; }
dfs_mount "$store" "$mnt"
dfs_mount "$W/rec" "$m2"
ok=1
for s in "${snaps[@]}"; do
	"$DFS_BIN/dfs-treecmp" "$mnt/.history/h/$s" "$m2/.history/h/$s" >"$W/cmp3" 2>&1 ||
		{ head "$W/cmp3"; ok=0; }
done
"$DFS_BIN/dfs-treecmp" "$mnt/.sources/h" "$m2/.sources/h" >"$W/cmp3" 2>&1 || ok=0
[ $ok -eq 1 ] && pass "recovered index: every snapshot tree-compares equal" ||
	fail "recovered history differs"
dfs_umount "$m2"
dfs_umount "$mnt"
# Files deleted from the drive leave the incremental map (srcmap), not the snapshots that
# show them: their records stay for /.history, their srcmap entries go (one per file or
# directory of the drive's current state).
s2=$W/s2
mkdir -p "$s2/a" "$s2/b"
for f in 1 2 3; do seq 1 $((f * 500)) >"$s2/a/$f"; done
seq 7 900 >"$s2/b/1"; seq 8 900 >"$s2/b/2"; seq 9 900 >"$s2/c.txt"
cp -a "$s2" "$W/s2first"
srcmap() { "$DFS_BIN/bench_index_size" "$1" | awk '$1 == "srcmap" { print $2; exit }'; }
dfs_ingest --store "$W/st2" --name m "$s2" || fail "ingest m"
n1=$(srcmap "$W/st2")
rm -r "$s2/b" "$s2/c.txt"
dfs_ingest --store "$W/st2" --name m --allow-deletions "$s2" || fail "re-ingest m"
n2=$(srcmap "$W/st2")
[ -n "$n1" ] && [ "$n2" -eq $((n1 - 4)) ] &&
	pass "srcmap: the 4 deleted entries go ($n1 -> $n2)" ||
	fail "srcmap entries after deleting 4: $n1 -> $n2 (expected $((n1 - 4)))"
dfs_mount "$W/st2" "$mnt"
s2snap=$(ls "$mnt/.history/m" | head -n 1)
"$DFS_BIN/dfs-treecmp" --ignore-atime --ignore-ctime "$W/s2first" "$mnt/.history/m/$s2snap" \
	>"$W/cmp4" 2>&1 && pass "the snapshot still shows the deleted files" ||
	{ head "$W/cmp4"; fail "snapshot lost the deleted files"; }
dfs_umount "$mnt"
dfs_finish
