#!/usr/bin/env bash
# Huge files.
# 1. A sparse 300 GiB file (truncate, then data at the start, at an odd offset past 1 GiB,
#    at 150 GiB and in the last bytes) ingests bit-exact with its holes: the mount shows
#    the same SEEK_DATA/SEEK_HOLE map and the same bytes in every data region, zeros in
#    a hole, and the gate (defrag-verify --against, which compares the hole map) is clean.
# 2. A file too large for one commit's op log (64 MiB of op log, about 200 GiB at the
#    default chunking; here DFS_FAULT_OPLOG_MAX=262144 of a DFS_TEST_FAULTS build and
#    4 KiB chunks make it a 64 MiB file) is stored across commits: exit 0, every file of
#    the drive bit-exact, verify and the gate clean. Before the fix the commit failed
#    with E2BIG at every run (exit 3). Then crashes at the points around the part commits
#    of a new version of it: the view keeps the old version whole (a part committed
#    before the crash is garbage nothing names), verify is clean, and a rerun stores the
#    new version.
set -eu
. "$(dirname "$0")/lib.sh"
DFS_NEEDS="defrag-ingest defragfs defrag-verify dfs-holemap" dfs_setup

G=1073741824
mnt=$W/mnt
mkdir -p "$mnt"

# put SIZE random bytes at OFFSET of FILE (its size unchanged when they fit)
put_at() {
	head -c "$3" /dev/urandom | dd of="$1" bs=64K seek="$2" oflag=seek_bytes \
		conv=notrunc status=none
}

# ---- 1. a sparse 300 GiB file ------------------------------------------------------------
src=$W/sparse
store=$W/store-sparse
mkdir -p "$src/d"
f=$src/d/huge.img
truncate -s 300G "$f"
put_at "$f" 0 8192
put_at "$f" $((G + 12345)) 1048576
put_at "$f" $((150 * G)) 102400
put_at "$f" $((300 * G - 70000)) 70000
echo "beside the big one" >"$src/d/small.txt"
"$DFS_BIN/dfs-holemap" "$f" >"$W/map.src"
[ "$(wc -l <"$W/map.src")" -ge 5 ] || { cat "$W/map.src"; fail "the source is not sparse"; }

t0=$(date +%s%N)
dfs_ingest --store "$store" --name sp "$src" >"$W/sparse.out" ||
	{ cat "$W/sparse.out"; fail "ingest of the sparse file"; }
t1=$(date +%s%N)
echo "ingest of a 300 GiB sparse file: $(( (t1 - t0) / 1000000 )) ms"

dfs_mount "$store" "$mnt"
m=$mnt/.sources/sp/d/huge.img
[ "$(stat -c %s "$m")" = 322122547200 ] && pass "size 300 GiB in the mount" ||
	fail "size in the mount: $(stat -c %s "$m")"
"$DFS_BIN/dfs-holemap" "$m" >"$W/map.mnt"
if cmp -s "$W/map.src" "$W/map.mnt"; then
	pass "SEEK_DATA/SEEK_HOLE through the mount: the source's map ($(($(wc -l <"$W/map.src") - 1)) data regions)"
else
	diff "$W/map.src" "$W/map.mnt" || true
	fail "the hole map differs through the mount"
fi
if cmp <("$DFS_BIN/dfs-holemap" --data "$f") <("$DFS_BIN/dfs-holemap" --data "$m"); then
	pass "every data region reads the same through the mount"
else
	fail "data regions differ"
fi
z=$(dd if="$m" bs=4096 skip=$((200 * G / 4096)) count=1 status=none | tr -d '\0' | wc -c)
[ "$z" = 0 ] && pass "a hole at 200 GiB reads as zeros" || fail "a hole reads $z non-zero bytes"
if cmp <(tail -c 70000 "$f") <(tail -c 70000 "$m"); then
	pass "the last 70000 bytes (the region at the very end)"
else
	fail "the end of the file differs"
fi
dfs_umount "$mnt"

# The gate reads the whole file (holes too) before it compares the hole maps: minutes.
t0=$(date +%s%N)
rc=0
"$DFS_BIN/defrag-verify" --store "$store" --against "$src" --name sp >"$W/gate.out" 2>&1 || rc=$?
t1=$(date +%s%N)
echo "gate over the 300 GiB sparse file: $(( (t1 - t0) / 1000000 )) ms"
[ $rc -eq 0 ] && grep -q "clean" "$W/gate.out" && pass "the gate is clean, hole map compared" ||
	{ cat "$W/gate.out"; fail "gate: exit $rc"; }
rm -rf "$store"

# ---- 2. a file too large for one commit's op log -----------------------------------------
src=$W/drv
store=$W/store
mkdir -p "$src/a" "$src/z"
echo "before the big one" >"$src/a/first.txt"
# 64 copies of one random MiB: 16,000 extents (4 KiB chunks), few distinct chunks
head -c 1048576 /dev/urandom >"$W/blk1"
for i in $(seq 1 64); do cat "$W/blk1"; done >"$src/a/big.bin"
head -c 300000 /dev/urandom >"$src/a/other.bin"
echo "after the big one" >"$src/z/last.txt"
ingest_small() {	# ingest_small STORE [ENV...]: the drive, 4 KiB chunks, op log limit 256 KiB
	local st=$1
	shift
	env DFS_FAULT_OPLOG_MAX=262144 "$@" "$DFS_BIN/defrag-ingest" --store "$st" --name drv \
		--progress=never -v --chunk-min 1K --chunk-avg 4K --chunk-max 16K "$src"
}
DFS_FAULT_COUNT=$W/count0 ingest_small "$W/probe" >/dev/null 2>&1 || true
if [ ! -s "$W/count0" ]; then
	echo "not a DFS_TEST_FAULTS build: the op-log cases are skipped"
	dfs_finish
	exit $?
fi
rm -rf "$W/probe"

for run in first rerun; do
	rc=0
	ingest_small "$store" >"$W/$run.out" 2>&1 || rc=$?
	parts=$(grep -c "part [0-9]* of a content too large for one commit" "$W/$run.out" || true)
	if [ $run = first ]; then
		[ $rc -eq 0 ] && [ "$parts" -ge 2 ] &&
			pass "first run: exit 0, the big file stored in $parts parts and a last commit" ||
			{ cat "$W/$run.out"; fail "first run: exit $rc, $parts parts"; }
	else
		[ $rc -eq 0 ] && [ "$parts" = 0 ] && pass "rerun: exit 0, nothing to store again" ||
			{ cat "$W/$run.out"; fail "rerun: exit $rc, $parts parts"; }
	fi
done
"$DFS_BIN/defrag-verify" --store "$store" >"$W/v.out" 2>&1 && pass "verify clean" ||
	{ cat "$W/v.out"; fail "verify"; }
"$DFS_BIN/defrag-verify" --store "$store" --against "$src" \
	--name drv >"$W/g.out" 2>&1 && pass "the gate is clean" || { cat "$W/g.out"; fail "gate"; }
dfs_mount "$store" "$mnt"
"$DFS_BIN/dfs-treecmp" --ignore-atime --ignore-ctime "$src" "$mnt/.sources/drv" >"$W/cmp" 2>&1 &&
	pass "every file of the drive bit-exact" || { head "$W/cmp"; fail "the view differs"; }
dfs_umount "$mnt"

# Crashes around the part commits of a new version: the op count of a probe run, then
# crash points over its last operations (where the parts and the last commit are).
cp "$src/a/big.bin" "$W/big.v1"
head -c 1048576 /dev/urandom >"$W/blk2"
for i in $(seq 1 64); do cat "$W/blk2"; done >"$src/a/big.bin"
cp -a "$store" "$W/base"
cp -a "$W/base" "$W/probe"
DFS_FAULT_COUNT=$W/count ingest_small "$W/probe" >/dev/null 2>&1 || fail "probe ingest"
rm -rf "$W/probe"
total=$(cat "$W/count")
step=3
[ "${DFS_SOAK:-0}" = 1 ] && step=1
mid=0
for n in $(seq $((total - 40)) "$step" "$total"); do
	sc=$W/s-$n
	cp -a "$W/base" "$sc"
	rc=0
	ingest_small "$sc" DFS_FAULT_AT="$n" DFS_FAULT_CRASH=1 >"$W/crash.out" 2>&1 || rc=$?
	parts=$(grep -c "part [0-9]* of a content too large" "$W/crash.out" || true)
	"$DFS_BIN/defrag-verify" --store "$sc" >"$W/v.out" 2>&1 ||
		{ cat "$W/v.out"; fail "crash at op $n ($parts parts): verify"; }
	dfs_mount "$sc" "$mnt"
	m=$mnt/.sources/drv/a/big.bin
	if cmp -s "$m" "$W/big.v1"; then
		[ "$parts" -gt 0 ] && mid=$((mid + 1))
	elif ! cmp -s "$m" "$src/a/big.bin"; then
		fail "crash at op $n (exit $rc, $parts parts): big.bin is neither version"
	fi
	dfs_umount "$mnt"
	ingest_small "$sc" >"$W/rerun.out" 2>&1 ||
		{ cat "$W/rerun.out"; fail "crash at op $n: the rerun failed"; }
	dfs_mount "$sc" "$mnt"
	"$DFS_BIN/dfs-treecmp" --ignore-atime --ignore-ctime "$src" "$mnt/.sources/drv" \
		>"$W/cmp" 2>&1 || { head "$W/cmp"; fail "crash at op $n: the rerun differs"; }
	dfs_umount "$mnt"
	rm -rf "$sc"
done
[ $mid -ge 2 ] &&
	pass "crashes over ops $((total - 40))..$total: $mid after some parts, the old version whole; every rerun exact" ||
	fail "only $mid crash points fell between the parts and the last commit"
dfs_finish
