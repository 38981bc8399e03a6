#!/usr/bin/env bash
# Location hints (contents v2: each chunk extent records the pack and offset its chunk was
# written at; store_chunk_read_hint). Every step reads every file through a fresh mount,
# whole (cmp) and at random 4 KiB offsets (part reads of version 2 records), against the
# source, and counts what the hints did (DFS_FAULT_HINT_COUNTS: "USED STALE" as the
# daemon stops) with no error in the daemon's log:
#  - right after ingest: the hints serve the reads, none is stale;
#  - after a gc that rewrote every pack (--live-threshold 100: the kept chunks moved to
#    new packs, their hints name packs that are gone): stale hints, the index serves;
#  - after defrag-recover of that store (the op logs carry the contents as written);
#  - stores written with bent hints (DFS_FAULT_HINTS: "off" 8 bytes into the record,
#    "pack" the next pack) and without hints ("none", as before version 2): the same bytes;
#  - a store whose packs are in S3 (a one-node Ceph with radosgw, rgw.sh; skipped when
#    the Ceph binaries are absent): hints read through the pack cache, and again after a
#    gc that rewrote the packs.
# Needs a DFS_TEST_FAULTS build (else skipped, said).
set -eu
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/rgw.sh"
DFS_NEEDS="defrag-ingest defrag-forget defrag-gc defrag-recover defrag-verify defragfs" dfs_setup

mnt=$W/mnt
mkdir -p "$mnt" "$W/a/docs" "$W/a/only" "$W/b/mine"
# raw chunks (incompressible: version 2 records, part reads), compressed ones (text),
# a file b shares with a (its contents' hints come from the chunks family), holes
head -c 9M /dev/urandom >"$W/a/only/big.bin"
for i in 1 2 3; do head -c $((i * 300000)) /dev/urandom >"$W/a/only/r$i.bin"; done
for i in 1 2 3 4; do seq 1 $((i * 30000)) >"$W/a/docs/t$i.txt"; done
head -c 5M /dev/urandom >"$W/b/mine/m.bin"
cp "$W/a/docs/t4.txt" "$W/b/mine/t4.txt"
cat "$W/a/only/r2.bin" "$W/b/mine/m.bin" >"$W/b/mine/cat.bin"
truncate -s 20M "$W/b/mine/sparse.img"
dd if=/dev/urandom of="$W/b/mine/sparse.img" bs=1M count=2 seek=9 conv=notrunc status=none

# check_reads STORE SRCROOT TAG [OPTS]: a fresh mount; every regular file of SRCROOT's
# sources (the directories under it, one source each) compared whole and at 64 random
# 4 KiB offsets; "USED STALE" of the daemon in $W/counts-TAG. 0 when every byte agrees
# and the daemon logged no error.
check_reads() {
	local st=$1 root=$2 tag=$3 opts=${4:-} log=$W/daemon-mnt.log rc=0 s
	: >"$log"
	rm -f "$W/counts-$tag"
	DFS_FAULT_HINT_COUNTS=$W/counts-$tag dfs_mount "$st" "$mnt" "$opts" || return 1
	for s in "$root"/*/; do
		s=$(basename "$s")
		python3 - "$root/$s" "$mnt/.sources/$s" <<'EOF' || rc=1
import os, random, sys
src, m = sys.argv[1], sys.argv[2]
rnd = random.Random(7)
bad = 0
for d, _, fs in os.walk(src):
    for f in sorted(fs):
        a = os.path.join(d, f)
        b = os.path.join(m, os.path.relpath(a, src))
        size = os.path.getsize(a)
        with open(a, 'rb') as x, open(b, 'rb') as y:
            xf, yf = x.fileno(), y.fileno()
            for _ in range(64 if size > 4096 else 1):
                off = rnd.randrange(0, max(size - 4096, 1)) & ~4095 if size > 4096 else 0
                if os.pread(xf, 4096, off) != os.pread(yf, 4096, off):
                    print("random read differs: %s @%d" % (b, off)); bad += 1; break
            if x.read() != y.read():
                print("whole read differs: %s" % b); bad += 1
sys.exit(1 if bad else 0)
EOF
	done
	dfs_umount "$mnt"
	[ -s "$W/counts-$tag" ] || { echo "no hint counts written"; return 1; }
	if grep -Ei "error|unreadable|bad record|another record|mismatch|missing" "$log"; then
		return 1
	fi
	return $rc
}
used() { cut -d' ' -f1 "$W/counts-$1"; }
stale() { cut -d' ' -f2 "$W/counts-$1"; }

# a DFS_TEST_FAULTS build writes the counts; else nothing here can be told apart
store=$W/store
dfs_ingest --store "$store" --name a "$W/a" || fail "ingest a"
dfs_ingest --store "$store" --name b "$W/b" || fail "ingest b"
mkdir -p "$W/ab"
ln -s "$W/a" "$W/ab/a"
ln -s "$W/b" "$W/ab/b"
ok=0
check_reads "$store" "$W/ab" fresh || ok=$?
if [ ! -s "$W/counts-fresh" ]; then
	echo "skip: not a DFS_TEST_FAULTS build (no hint counts)"
	exit 77
fi
[ $ok = 0 ] && [ "$(used fresh)" -gt 20 ] && [ "$(stale fresh)" = 0 ] &&
	pass "after ingest: every file reads right, $(used fresh) chunk reads served by hints, none stale" ||
	fail "after ingest: counts $(cat "$W/counts-fresh" 2>/dev/null)"

# a gc that moves every kept chunk: forget a, rewrite every pack that has garbage
"$DFS_BIN/defrag-forget" --store "$store" a >/dev/null || fail "forget a"
"$DFS_BIN/defrag-gc" --store "$store" --live-threshold 100 --json >"$W/gc.json" ||
	{ cat "$W/gc.json"; fail "gc"; }
moved=$(jq -r .copied_bytes "$W/gc.json")
[ "$(jq -r .packs_rewritten "$W/gc.json")" -ge 1 ] && [ "$moved" -gt 5000000 ] &&
	pass "gc rewrote $(jq -r .packs_rewritten "$W/gc.json") packs, $moved bytes of b's chunks moved" ||
	{ cat "$W/gc.json"; fail "gc moved nothing"; }
rm "$W/ab/a"
check_reads "$store" "$W/ab" gc && [ "$(stale gc)" -gt 0 ] &&
	pass "after the gc: b reads right, $(stale gc) stale hints fell back to the index (used $(used gc))" ||
	fail "after gc: counts $(cat "$W/counts-gc" 2>/dev/null)"
"$DFS_BIN/defrag-verify" --store "$store" --read-data >"$W/v" 2>&1 && pass "verify --read-data clean" ||
	{ tail "$W/v"; fail "verify"; }

# recover rebuilds the index from the packs (the op logs carry the contents with hints)
rm -rf "$store/index"
"$DFS_BIN/defrag-recover" --store "$store" >"$W/rec" 2>&1 || { tail "$W/rec"; fail "recover"; }
check_reads "$store" "$W/ab" rec && [ "$(stale rec)" -gt 0 ] &&
	pass "after defrag-recover: b reads right (hints used $(used rec), stale $(stale rec))" ||
	fail "after recover: counts $(cat "$W/counts-rec" 2>/dev/null)"
ln -s "$W/a" "$W/ab/a"

# bent hints, and none: the same bytes, nothing logged
for f in off pack none; do
	DFS_FAULT_HINTS=$f dfs_ingest --store "$W/st-$f" --name a "$W/a" || fail "ingest ($f)"
	DFS_FAULT_HINTS=$f dfs_ingest --store "$W/st-$f" --name b "$W/b" || fail "ingest b ($f)"
	if [ $f = none ]; then
		check_reads "$W/st-$f" "$W/ab" $f && [ "$(used $f)" = 0 ] && [ "$(stale $f)" = 0 ] &&
			pass "contents without hints (as before version 2) read right" ||
			fail "no hints: counts $(cat "$W/counts-$f" 2>/dev/null)"
	else
		check_reads "$W/st-$f" "$W/ab" $f && [ "$(used $f)" = 0 ] && [ "$(stale $f)" -gt 20 ] &&
			pass "hints bent ($f): every file reads right, $(stale $f) stale, none served" ||
			fail "bent hints ($f): counts $(cat "$W/counts-$f" 2>/dev/null)"
	fi
done

# ---- packs in S3 ----------------------------------------------------------------------
if ! (dfs_rgw_skip_unless_installed >/dev/null); then
	echo "# skipped the S3 part: the Ceph binaries are absent"
	dfs_finish
fi
dfs_rgw_start "$W/ceph" || { fail "one-node Ceph with radosgw did not start"; dfs_finish; }
s3=$W/store-s3
pc="pack_cache=$W/pc,pack_cache_size=64M"
dfs_ingest --store "$s3" --name a --packs "s3://dfs-h/h" --s3-endpoint "$DFS_S3_ENDPOINT" "$W/a" &&
	dfs_ingest --store "$s3" --name b "$W/b" || fail "ingest into S3"
check_reads "$s3" "$W/ab" s3 "$pc" && [ "$(used s3)" -gt 20 ] && [ "$(stale s3)" = 0 ] &&
	pass "packs in S3: every file reads right through the pack cache, $(used s3) reads by hints" ||
	fail "S3: counts $(cat "$W/counts-s3" 2>/dev/null)"
"$DFS_BIN/defrag-forget" --store "$s3" a >/dev/null || fail "forget a (S3)"
"$DFS_BIN/defrag-gc" --store "$s3" --live-threshold 100 --json >"$W/gc3.json" ||
	{ cat "$W/gc3.json"; fail "gc (S3)"; }
rm "$W/ab/a"
rm -rf "$W/pc"
check_reads "$s3" "$W/ab" s3gc "$pc" && [ "$(stale s3gc)" -gt 0 ] &&
	pass "packs in S3, after a gc that rewrote $(jq -r .packs_rewritten "$W/gc3.json") packs: b reads right ($(stale s3gc) stale hints)" ||
	fail "S3 after gc: counts $(cat "$W/counts-s3gc" 2>/dev/null)"
dfs_finish
