#!/usr/bin/env bash
# History: every completed ingest is a snapshot. Ingest, change 5% of the files, delete
# 1%, re-ingest: /.history/NAME/<first time> is byte-identical to a copy of the first
# state, the newest snapshot and /.sources/NAME to the second; /.history is not listed
# by the root (listed with -o sources=visible); the second snapshot costs index entries
# for what changed only (shared directories); defrag-recover rebuilds the same history.
set -eu
. "$(dirname "$0")/lib.sh"
DFS_NEEDS="defrag-ingest defrag-forget defrag-gc defrag-stat defrag-verify defrag-recover defragfs dfs-treecmp bench_index_size" dfs_setup

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
# Dropping snapshots: three states A (common, g1), B (g1 gone, d/g2 new), C (d/g2 gone,
# c3 new). --snapshot (dry run), --keep-last 2 (drops A), --keep-within 1s (drops B);
# never the newest. A mount that follows sees each one go; gc then frees what only the
# dropped snapshots held (g1 and g2), and the rest reads back bit-exact.
s3=$W/s3
st3=$W/st3
F=$DFS_BIN/defrag-forget
stored() { "$DFS_BIN/defrag-stat" --store "$1" --json | jq '.stored_bytes'; }
mkdir -p "$s3/d"
head -c 100000 /dev/urandom >"$s3/d/common"
head -c 150000 /dev/urandom >"$s3/g1"
dfs_ingest --store "$st3" --name s "$s3" || fail "ingest A"
sleep 1
rm "$s3/g1"
head -c 120000 /dev/urandom >"$s3/d/g2"
dfs_ingest --store "$st3" --name s --allow-deletions "$s3" || fail "ingest B"
sleep 1
rm "$s3/d/g2"
head -c 80000 /dev/urandom >"$s3/c3"
dfs_ingest --store "$st3" --name s --allow-deletions "$s3" || fail "ingest C"
dfs_mount "$st3" "$mnt" follow_interval=1
mapfile -t s3s < <(ls "$mnt/.history/s")
[ ${#s3s[@]} -eq 3 ] || fail "three snapshots expected: ${s3s[*]}"
cmp -s "$mnt/.history/s/${s3s[0]}/g1" "$mnt/.history/s/${s3s[0]}/g1" ||
	fail "g1 in the first snapshot"	# looked up: the kernel caches the names
rc=0; "$F" --store "$st3" --snapshot "${s3s[2]}" s >"$W/f" 2>&1 || rc=$?
[ $rc -eq 2 ] && grep -q "never dropped" "$W/f" && pass "the newest snapshot is refused (exit 2)" ||
	{ cat "$W/f"; fail "newest snapshot ($rc)"; }
rc=0; "$F" --store "$st3" --snapshot 20000101T000000Z s >"$W/f" 2>&1 || rc=$?
[ $rc -eq 2 ] && grep -q "has no snapshot 20000101T000000Z" "$W/f" &&
	pass "an unknown snapshot is refused (exit 2)" || { cat "$W/f"; fail "unknown ($rc)"; }
before=$(stored "$st3")
"$F" --store "$st3" --snapshot "${s3s[0]}" --dry-run --json s >"$W/f.json" || fail "dry run"
[ "$(jq -c '.forgotten[0] | [.snapshots_dropped, .snapshots_kept, .files, .directories]' "$W/f.json")" = \
	"[[\"${s3s[0]}\"],2,1,1]" ] && [ "$(ls "$mnt/.history/s" | wc -l)" -eq 3 ] &&
	pass "--snapshot --dry-run: g1 and A's copy of d only it names, nothing changed" ||
	{ cat "$W/f.json"; fail "dry run"; }
"$F" --store "$st3" --keep-last 2 s >"$W/f" 2>&1 || { cat "$W/f"; fail "--keep-last 2"; }
grep -q "dropped 1 snapshot (${s3s[0]}), 2 kept" "$W/f" && pass "--keep-last 2 drops the oldest" ||
	{ cat "$W/f"; fail "--keep-last 2 said"; }
wait_for() {	# wait_for SECONDS TEST...
	local end=$(( $(date +%s) + $1 ))
	shift
	while [ "$(date +%s)" -le $end ]; do "$@" && return 0; sleep 0.2; done
	return 1
}
n_hist() { [ "$(ls "$mnt/.history/s" | wc -l)" -eq "$1" ]; }
wait_for 15 n_hist 2 && [ ! -e "$mnt/.history/s/${s3s[0]}" ] &&
	[ ! -e "$mnt/.history/s/${s3s[0]}/g1" ] &&
	pass "live follow: the dropped snapshot leaves /.history (listing and cached name)" ||
	{ ls -la "$mnt/.history/s"; fail "dropped snapshot still shown"; }
sleep 1
"$F" --store "$st3" --keep-within 1s --json s >"$W/f.json" || fail "--keep-within"
[ "$(jq -c '.forgotten[0].snapshots_dropped' "$W/f.json")" = "[\"${s3s[1]}\"]" ] &&
	pass "--keep-within 1s drops all but the newest" || { cat "$W/f.json"; fail "keep-within"; }
wait_for 15 n_hist 1 && pass "live follow: one snapshot left" || fail "follow: $(ls "$mnt/.history/s")"
"$DFS_BIN/dfs-treecmp" --ignore-atime --ignore-ctime "$s3" "$mnt/.sources/s" >"$W/cmp5" 2>&1 &&
	pass "the newest snapshot is intact" || { head "$W/cmp5"; fail "newest changed"; }
dfs_umount "$mnt"
"$F" --store "$st3" --keep-last 1 s >"$W/f" 2>&1 && grep -q "no snapshot to drop" "$W/f" &&
	pass "nothing left to drop: exit 0" || { cat "$W/f"; fail "keep-last 1 again"; }
"$DFS_BIN/defrag-gc" --store "$st3" >"$W/gc" 2>&1 || { cat "$W/gc"; fail "gc"; }
freed=$((before - $(stored "$st3")))
[ $freed -ge 270000 ] && [ $freed -le 274096 ] &&
	pass "gc frees what only the dropped snapshots held ($freed bytes; g1 + g2 = 270000)" ||
	{ cat "$W/gc"; fail "gc freed $freed bytes, expected 270000"; }
"$DFS_BIN/defrag-verify" --store "$st3" --read-data >"$W/v" 2>&1 && pass "verify --read-data clean" ||
	{ tail -n 5 "$W/v"; fail "verify after snapshot forget + gc"; }
cp -a "$st3" "$W/rec3"
"$DFS_BIN/defrag-recover" --store "$W/rec3" >"$W/rec.out" 2>&1 || { cat "$W/rec.out"; fail "recover"; }
dfs_mount "$st3" "$mnt"
dfs_mount "$W/rec3" "$m2"
"$DFS_BIN/dfs-treecmp" --ignore-atime --ignore-ctime "$s3" "$mnt/.sources/s" >"$W/cmp6" 2>&1 &&
	"$DFS_BIN/dfs-treecmp" "$mnt/.sources/s" "$m2/.sources/s" >>"$W/cmp6" 2>&1 &&
	[ "$(ls "$m2/.history/s")" = "${s3s[2]}" ] &&
	pass "after gc: the source reads back bit-exact, recover gives the same view and history" ||
	{ head "$W/cmp6"; ls "$m2/.history/s"; fail "after gc"; }
dfs_umount "$m2"
dfs_umount "$mnt"

# Forgetting a whole source forgets every snapshot: x and y, then y gone and z new; after
# forgetting the source and a gc no chunk and no srcmap entry is left (y, only in the
# first snapshot, too). No file changes content here: a changed file's old organized
# record outlives the organized build (found on main too), which would keep its chunks.
s4=$W/s4
mkdir -p "$s4"
head -c 50000 /dev/urandom >"$s4/x"; head -c 60000 /dev/urandom >"$s4/y"
dfs_ingest --store "$W/st4" --name w "$s4" || fail "ingest w"
rm "$s4/y"; head -c 70000 /dev/urandom >"$s4/z"
dfs_ingest --store "$W/st4" --name w --allow-deletions "$s4" || fail "re-ingest w"
"$F" --store "$W/st4" w >"$W/f" 2>&1 || { cat "$W/f"; fail "forget w"; }
"$DFS_BIN/defrag-gc" --store "$W/st4" >"$W/gc" 2>&1 || { cat "$W/gc"; fail "gc after forget w"; }
[ "$("$DFS_BIN/defrag-stat" --store "$W/st4" --json | jq '.chunks')" -eq 0 ] &&
	[ "$(srcmap "$W/st4")" -eq 0 ] && pass "forgetting w and a gc leave no chunk, no srcmap entry" ||
	{ cat "$W/gc"; "$DFS_BIN/bench_index_size" "$W/st4"; fail "left after forgetting w"; }
dfs_finish
