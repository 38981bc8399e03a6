#!/usr/bin/env bash
# issue 19: a changed file's old version is freed once no kept snapshot shows it. A
# re-ingest changes a file's bytes, turns a directory into a file and a file into a
# directory, and renames a file; forgetting the old snapshot (--keep-last 1) and a gc free
# exactly the old versions' stored bytes (the files are random: stored raw, so that is
# their sizes), which is what defrag-stat --by-source promised. Before the fix the
# organized tree's old entry at the same path lost its name but kept its inode record, so
# gc kept the old bytes forever. Afterwards no inode record is without a name, every kept
# file reads back bit-exact, verify is clean and defrag-recover rebuilds equal views. The
# same for a --replace onto another filesystem (tmpfs).
set -eu
. "$(dirname "$0")/lib.sh"
DFS_NEEDS="defrag-ingest defrag-forget defrag-gc defrag-verify defrag-recover defrag-stat defragfs dfs-treecmp bench_index_size" dfs_setup

store=$W/store
mnt=$W/mnt
m2=$W/m2
src=$W/src
mkdir -p "$mnt" "$m2" "$src/docs/sub"
rnd() { head -c "$2" /dev/urandom >"$1"; }
for i in 1 2 3; do rnd "$src/docs/k$i.bin" 300000; done
rnd "$src/docs/c.bin" 400000
rnd "$src/docs/sub/s1.bin" 200000
for i in 1 2 3; do seq 1 $((i * 3000)) >"$src/docs/t$i.txt"; done
G=$DFS_BIN/defrag-gc
j() { jq -r ".$1" "$2"; }
count() { "$DFS_BIN/bench_index_size" "$1" | awk -v f="$2" '$1 == f { print $2; exit }'; }
# every inode record has a name, but the organized root and /.sources (no hard links here,
# one snapshot per source)
named() {
	local i d
	i=$(count "$1" inodes)
	d=$(count "$1" dirents)
	[ "$i" -eq $((d + 2)) ] || { echo "$i inode records, $d names"; return 1; }
}
packbytes() { du -sb "$1/packs" | cut -f1; }

dfs_ingest --store "$store" --name s "$src" >/dev/null || fail "first ingest"
sleep 1
rnd "$src/docs/c.bin" 400000				# other bytes: 400000 freed
rm -r "$src/docs/sub"; rnd "$src/docs/sub" 100000	# a directory becomes a file: 200000
rm "$src/docs/k2.bin"; mkdir "$src/docs/k2.bin"		# a file becomes a directory: 300000
rnd "$src/docs/k2.bin/in.bin" 150000
mv "$src/docs/k3.bin" "$src/docs/k3-moved.bin"		# same bytes elsewhere: nothing
old=900000
dfs_ingest --store "$store" --name s --allow-deletions "$src" >/dev/null || fail "second ingest"

"$DFS_BIN/defrag-forget" --store "$store" s --keep-last 1 >/dev/null || fail "forget --keep-last 1"
"$DFS_BIN/defrag-stat" --store "$store" --by-source --json >"$W/bs.json"
promised=$(j garbage_stored_bytes "$W/bs.json")
# stored bytes: the raw bytes and, in each chunk record of more than one 16 KiB block, a
# table of 8-byte block checksums (0.05%; chunk boundaries vary with the random bytes)
stored_of() { [ "$1" -ge "$2" ] && [ "$1" -le $(($2 + $2 / 1000)) ]; }
stored_of "$promised" $old && pass "--by-source: the old versions are garbage ($promised bytes)" ||
	{ cat "$W/bs.json"; fail "--by-source garbage $promised, the old versions are $old"; }
"$G" --store "$store" --dry-run --json >"$W/dry.json" || fail "gc --dry-run"
[ "$(j swept_stored_bytes "$W/dry.json")" = "$promised" ] && pass "gc's dry run promises the same" ||
	{ cat "$W/dry.json"; fail "dry run"; }
before=$(packbytes "$store")
"$G" --store "$store" --json >"$W/g.json" || { cat "$W/g.json"; fail "gc"; }
freed=$((before - $(packbytes "$store")))
[ "$(j swept_stored_bytes "$W/g.json")" = "$promised" ] && [ "$(j contents_swept "$W/g.json")" = 3 ] &&
	[ $((freed - old)) -lt 1048576 ] && [ $((old - freed)) -lt 1048576 ] &&
	pass "gc swept the 3 old versions ($promised bytes, as promised), $freed bytes freed on disk" ||
	{ cat "$W/g.json"; fail "gc swept $(j swept_stored_bytes "$W/g.json"), freed $freed of $old"; }
named "$store" && pass "no inode record is left without a name" || fail "nameless records"
"$DFS_BIN/defrag-verify" --store "$store" --read-data >"$W/v" 2>&1 &&
	pass "verify --read-data clean after gc" || { tail "$W/v"; fail "verify"; }
dfs_mount "$store" "$mnt"
"$DFS_BIN/dfs-treecmp" --ignore-atime --ignore-ctime "$src" "$mnt/.sources/s" >"$W/cmp" 2>&1 &&
	pass "every kept file reads back bit-exact" || { head "$W/cmp"; fail "view differs"; }
dfs_all_reachable "$src" "$mnt" && [ "$(dfs_content_set "$mnt" | wc -l)" = 8 ] &&
	pass "the organized tree has the 8 kept contents, nothing else" ||
	{ dfs_content_set "$mnt" | wc -l; fail "organized tree"; }
cp -a "$store" "$W/rec"
"$DFS_BIN/defrag-recover" --store "$W/rec" >"$W/rec.out" 2>&1 ||
	{ cat "$W/rec.out"; fail "recover"; }
dfs_mount "$W/rec" "$m2"
"$DFS_BIN/dfs-treecmp" "$mnt" "$m2" >"$W/cmp2" 2>&1 &&
	"$DFS_BIN/dfs-treecmp" "$mnt/.sources/s" "$m2/.sources/s" >>"$W/cmp2" 2>&1 &&
	"$DFS_BIN/dfs-treecmp" "$mnt/.history" "$m2/.history" >>"$W/cmp2" 2>&1 &&
	pass "recovered index: views and history tree-compare equal" ||
	{ head "$W/cmp2"; fail "recovered views"; }
dfs_umount "$m2"
dfs_umount "$mnt"
named "$W/rec" && pass "recovered index: no record without a name" || fail "recovered: nameless"
rm -rf "$W/rec"

# --replace onto another filesystem: the old drive's files are the old snapshot's only
mkdir -p "$W/a" "$W/tmpfs"
rnd "$W/a/same.bin" 250000
rnd "$W/a/gone.bin" 350000
rnd "$W/a/other.bin" 120000
dfs_ingest --store "$store" --name r "$W/a" >/dev/null || fail "ingest r"
mount -t tmpfs tmpfs "$W/tmpfs"
DFS_CLEAN_MOUNTS="${DFS_CLEAN_MOUNTS:-} $W/tmpfs"
cp -a "$W/a/same.bin" "$W/tmpfs/"
rnd "$W/tmpfs/other.bin" 130000		# same name, other bytes
sleep 1
dfs_ingest --store "$store" --name r --replace --allow-deletions "$W/tmpfs" >/dev/null || fail "--replace"
"$DFS_BIN/defrag-forget" --store "$store" r --keep-last 1 >/dev/null || fail "forget r --keep-last 1"
"$G" --store "$store" --json >"$W/g2.json" || { cat "$W/g2.json"; fail "gc 2"; }
stored_of "$(j swept_stored_bytes "$W/g2.json")" $((350000 + 120000)) &&
	pass "--replace: the old drive's own files are freed" ||
	{ cat "$W/g2.json"; fail "--replace: swept $(j swept_stored_bytes "$W/g2.json")"; }
named "$store" && pass "--replace: no record without a name" || fail "--replace: nameless records"
dfs_mount "$store" "$mnt"
"$DFS_BIN/dfs-treecmp" --ignore-atime --ignore-ctime "$W/tmpfs" "$mnt/.sources/r" >"$W/cmp3" 2>&1 &&
	"$DFS_BIN/dfs-treecmp" --ignore-atime --ignore-ctime "$src" "$mnt/.sources/s" >>"$W/cmp3" 2>&1 &&
	pass "--replace: both sources read back bit-exact" || { head "$W/cmp3"; fail "views after --replace"; }
dfs_umount "$mnt"
umount "$W/tmpfs"
"$DFS_BIN/defrag-verify" --store "$store" --read-data >"$W/v2" 2>&1 &&
	pass "verify --read-data clean at the end" || { tail "$W/v2"; fail "verify at the end"; }
dfs_finish
