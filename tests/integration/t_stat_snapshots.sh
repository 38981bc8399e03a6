#!/usr/bin/env bash
# issue 19, item 2: defrag-stat --by-source per snapshot: logical bytes, the stored bytes
# only that snapshot references (what dropping it and a gc free) and those it shares.
# Three snapshots of s (files random, stored raw: bytes = sizes): a.bin only in the
# first, c.bin's second version only in the second, its third version only in the
# newest; b.bin in the second and third (shared); c.bin's first version in the first and,
# restored under another name, the third (not contiguous: shared); k1 shared with source
# t. defrag-forget --snapshot of the second and a gc free what was promised for it (and
# on disk within 1 MiB), then the first; verify, bit-exact reads, recover. Then
# defrag-stat --du of an organized directory.
set -eu
. "$(dirname "$0")/lib.sh"
DFS_NEEDS="defrag-ingest defrag-forget defrag-gc defrag-verify defrag-recover defrag-stat defragfs dfs-treecmp" dfs_setup

store=$W/store
mnt=$W/mnt
m2=$W/m2
src=$W/s
mkdir -p "$mnt" "$m2" "$src" "$W/t"
rnd() { head -c "$2" /dev/urandom >"$1"; }
j() { jq -r "$1" "$2"; }
ing() { dfs_ingest --store "$store" --allow-deletions "$@" >/dev/null; }
for i in 1 2 3; do rnd "$src/k$i.bin" 300000; done
cp "$src/k1.bin" "$W/t/"
rnd "$src/a.bin" 200000
rnd "$src/c.bin" 100000
cp "$src/c.bin" "$W/c1"
ing --name s "$src" || fail "ingest 1"
ing --name t "$W/t" || fail "ingest t"
sleep 1
rm "$src/a.bin"; rnd "$src/c.bin" 110000; rnd "$src/b.bin" 150000
ing --name s "$src" || fail "ingest 2"
sleep 1
rnd "$src/c.bin" 120000; cp "$W/c1" "$src/restored.bin"
ing --name s "$src" || fail "ingest 3"

S=$DFS_BIN/defrag-stat
# near "E1 E2 ..." "A1 A2 ...": each stored figure A is E, the raw bytes, plus the 8-byte
# block checksums of chunk records of more than one 16 KiB block (0.05%; the chunk
# boundaries vary with the random bytes): E <= A <= E + E/1000. Counts are exact.
near() {
	local -a e a
	local i
	read -r -a e <<<"$1"
	read -r -a a <<<"$2"
	[ ${#e[@]} -eq ${#a[@]} ] || return 1
	for i in "${!e[@]}"; do
		[ "${a[$i]}" -ge "${e[$i]}" ] && [ "${a[$i]}" -le $((e[i] + e[i] / 1000)) ] || return 1
	done
}
"$S" --store "$store" --by-source --json >"$W/bs.json" || fail "stat --by-source"
sq() { j ".sources[] | select(.name == \"s\") | $1" "$W/bs.json"; }
[ "$(sq '.snapshots | length')" = 3 ] && pass "three snapshots reported" ||
	{ cat "$W/bs.json"; fail "snapshots: $(sq '.snapshots | length')"; }
[ "$(sq '[.snapshots[].logical_bytes] | join(" ")')" = "1200000 1160000 1270000" ] &&
	[ "$(sq '[.snapshots[].files] | join(" ")')" = "5 5 6" ] &&
	pass "each snapshot's files and logical bytes" ||
	fail "logical: $(sq '[.snapshots[].logical_bytes] | join(" ")'), files $(sq '[.snapshots[].files] | join(" ")')"
near "200000 110000 120000" "$(sq '[.snapshots[].unique_stored_bytes] | join(" ")')" &&
	pass "only one snapshot: a.bin, c.bin v2, c.bin v3 (a restored version is shared)" ||
	fail "unique per snapshot: $(sq '[.snapshots[].unique_stored_bytes] | join(" ")')"
# shared: k1-k3 in each, + c1 (1st, 3rd), b (2nd, 3rd)
near "1000000 1050000 1150000" "$(sq '[.snapshots[].shared_stored_bytes] | join(" ")')" &&
	pass "the stored bytes each snapshot shares" ||
	fail "shared per snapshot: $(sq '[.snapshots[].shared_stored_bytes] | join(" ")')"
near "1280000 300000" "$(sq .unique_stored_bytes) $(sq .shared_stored_bytes)" &&
	[ "$(sq .view_files)" = 6 ] && [ "$(sq .logical_bytes)" = 1270000 ] &&
	pass "the source's figures: only s, shared with t, its view" ||
	fail "source: $(sq .unique_stored_bytes) only, $(sq .shared_stored_bytes) shared, $(sq .view_files) files"
"$S" --store "$store" --by-source >"$W/bs.txt"
grep -q "^  snapshot [0-9T]*Z (newest): 6 files" "$W/bs.txt" &&
	[ "$(grep -c 'dropping it and a gc free this' "$W/bs.txt")" = 2 ] &&
	pass "text report: a line per snapshot" || { cat "$W/bs.txt"; fail "text report"; }

# drop the second snapshot: what was promised for it is freed
packbytes() { du -sb "$store/packs" | cut -f1; }
drop() {	# drop INDEX: forget snapshot INDEX of s (as listed now) and gc; sets promised, swept, freed
	local name
	"$S" --store "$store" --by-source --json >"$W/bs.json"
	name=$(sq ".snapshots[$1].name")
	promised=$(sq ".snapshots[$1].unique_stored_bytes")
	"$DFS_BIN/defrag-forget" --store "$store" s --snapshot "$name" >/dev/null ||
		fail "forget --snapshot $name"
	local before
	before=$(packbytes)
	# every pack with a dead byte rewritten: what is freed on disk is what was swept
	"$DFS_BIN/defrag-gc" --store "$store" --live-threshold 100 --json >"$W/g.json" || fail "gc"
	freed=$((before - $(packbytes)))
	swept=$(j .swept_stored_bytes "$W/g.json")
}
slack=$((1 << 20))	# record headers, the gc's META records, a pack directory
drop 1
[ "$swept" = "$promised" ] && near 110000 "$promised" &&
	[ $((freed - promised)) -lt $slack ] && [ $((promised - freed)) -lt $slack ] &&
	pass "dropping the second snapshot: gc swept the $promised bytes promised, freed $freed" ||
	{ cat "$W/g.json"; fail "second snapshot: promised $promised, swept $swept, freed $freed"; }
drop 0
[ "$swept" = "$promised" ] && near 200000 "$promised" &&
	[ $((freed - promised)) -lt $slack ] && [ $((promised - freed)) -lt $slack ] &&
	pass "dropping the first: gc swept the $promised bytes promised, freed $freed" ||
	{ cat "$W/g.json"; fail "first snapshot: promised $promised, swept $swept, freed $freed"; }
"$S" --store "$store" --by-source --json >"$W/bs.json"
[ "$(sq '.snapshots | length')" = 1 ] && [ "$(j .garbage_stored_bytes "$W/bs.json")" = 0 ] &&
	[ "$(sq '.snapshots[0].unique_stored_bytes')" = "$(sq .unique_stored_bytes)" ] &&
	pass "one snapshot left, no garbage: it owns what the source owns" ||
	{ cat "$W/bs.json"; fail "after the drops"; }
"$DFS_BIN/defrag-verify" --store "$store" --read-data >"$W/v" 2>&1 &&
	pass "verify --read-data clean" || { tail "$W/v"; fail "verify"; }
dfs_mount "$store" "$mnt"
"$DFS_BIN/dfs-treecmp" --ignore-atime --ignore-ctime "$src" "$mnt/.sources/s" >"$W/cmp" 2>&1 &&
	"$DFS_BIN/dfs-treecmp" --ignore-atime --ignore-ctime "$W/t" "$mnt/.sources/t" >>"$W/cmp" 2>&1 &&
	pass "every kept file reads back bit-exact" || { head "$W/cmp"; fail "views differ"; }
cp -a "$store" "$W/rec"
"$DFS_BIN/defrag-recover" --store "$W/rec" >"$W/rec.out" 2>&1 || { cat "$W/rec.out"; fail "recover"; }
dfs_mount "$W/rec" "$m2"
"$DFS_BIN/dfs-treecmp" "$mnt" "$m2" >"$W/cmp2" 2>&1 &&
	"$DFS_BIN/dfs-treecmp" "$mnt/.history" "$m2/.history" >>"$W/cmp2" 2>&1 &&
	pass "recovered index: the organized tree and the history tree-compare equal" ||
	{ head "$W/cmp2"; fail "recovered views"; }
dfs_umount "$m2"
dfs_umount "$mnt"

# --du PATH: an organized directory's files, the stored bytes only its files reference in
# the tree (x2, x3) and those shared with the rest of it (x1, also in q/)
mkdir -p "$W/u/p" "$W/u/q"
for i in 1 2 3; do rnd "$W/u/p/x$i.bin" $((i * 100000)); done
cp "$W/u/p/x1.bin" "$W/u/q/"
for i in 1 2 3; do rnd "$W/u/q/y$i.bin" 70000; done
dfs_ingest --store "$W/st2" --name u "$W/u" >/dev/null || fail "ingest u"
dfs_mount "$W/st2" "$mnt"
dir=$(dirname "$(find "$mnt" -name x2.bin)")
dir=${dir#"$mnt"/}
dfs_umount "$mnt"
"$S" --store "$W/st2" --du "$dir" --json >"$W/du.json" || fail "--du $dir"
[ "$(j '[.files, .logical_bytes] | join(" ")' "$W/du.json")" = "3 600000" ] &&
	near "500000 100000" "$(j '[.unique_stored_bytes, .shared_stored_bytes] | join(" ")' "$W/du.json")" && pass "--du $dir: 3 files, 500000 only there, 100000 shared" ||
	{ cat "$W/du.json"; fail "--du $dir"; }
"$S" --store "$W/st2" --du / --json >"$W/du2.json" || fail "--du /"
[ "$(j '[.files, .logical_bytes] | join(" ")' "$W/du2.json")" = "7 910000" ] &&
	near "810000 0" "$(j '[.unique_stored_bytes, .shared_stored_bytes] | join(" ")' "$W/du2.json")" && pass "--du /: the whole tree, nothing shared" ||
	{ cat "$W/du2.json"; fail "--du /"; }
rc=0
"$S" --store "$W/st2" --du "$dir/x2.bin" >/dev/null 2>"$W/du.err" || rc=$?
[ $rc -eq 2 ] && grep -q "no such directory" "$W/du.err" && pass "--du of a file: exit 2" ||
	fail "--du of a file: exit $rc"
dfs_finish
