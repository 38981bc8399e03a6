#!/usr/bin/env bash
# defrag-verify --repair: a flipped byte in a chunk record is found, named, and repaired
# from the source drive (a fresh record appended, the index repointed); afterwards verify
# --read-data is clean, the mount reads the right bytes, an index rebuilt from the packs
# alone picks the good copy, and a chunk whose source bytes changed is not "repaired".
# Damage to a metadata record or a pack header is found by the pack pass of verify.
# First: the checkpoint an ingest leaves is a whole index, and a writer refuses one put
# back after later commits.
set -eu
. "$(dirname "$0")/lib.sh"
DFS_NEEDS="defrag-ingest defrag-verify defrag-recover defragfs" dfs_setup

src=$W/src
store=$W/store
mnt=$W/mnt
mkdir -p "$mnt" "$src/a" "$src/b"
head -c 3M /dev/urandom >"$src/a/random.bin"
cp "$src/a/random.bin" "$src/b/copy.bin"	# the same chunks, two files
seq 1 300000 >"$src/b/numbers.txt"
dfs_ingest --store "$store" --name r "$src" || fail "ingest"

# The checkpoint the ingest left (checkpoints/NAME, the newest sorts last) is a whole
# index: a copy of the store whose index/ is that checkpoint verifies clean and shows the
# same source, byte for byte.
cpt=$(ls -d "$store"/checkpoints/*/ 2>/dev/null | sort | tail -n 1)
if [ -z "$cpt" ]; then
	fail "no checkpoint after an ingest"
else
	mkdir "$W/fromcp"
	cp -a "$store/config" "$store/packs" "$W/fromcp/"
	cp -a "$cpt" "$W/fromcp/index"
	if "$DFS_BIN/defrag-verify" --store "$W/fromcp" >"$W/vcp" 2>&1 &&
		dfs_mount "$W/fromcp" "$mnt"; then
		"$DFS_BIN/dfs-treecmp" --ignore-atime --ignore-ctime "$src" "$mnt/.sources/r" \
			>"$W/cmp" 2>&1 && pass "the newest checkpoint is a whole index" ||
			{ head "$W/cmp"; fail "the store from its checkpoint shows other bytes"; }
		dfs_umount "$mnt"
	else
		cat "$W/vcp"
		fail "the store from its checkpoint does not verify or mount"
	fi
	rm -rf "$W/fromcp"
	# ... but not after later commits: a writer on that older index refuses (it would
	# reuse their sequence numbers) and changes nothing; defrag-recover brings back all.
	dfs_ingest --store "$store" --name r2 "$src/b" >/dev/null || fail "second ingest"
	dfs_ingest --store "$store" --name r3 "$src/a" >/dev/null || fail "third ingest"
	mkdir "$W/stale"
	cp -a "$store/config" "$store/packs" "$W/stale/"
	cp -a "$cpt" "$W/stale/index"
	sums() { (cd "$W/stale/packs" && find . -type f -exec sha256sum {} + | sort); }
	sums >"$W/packs-before"
	rc=0
	"$DFS_BIN/defrag-ingest" --store "$W/stale" --name r4 --progress=never "$src/b" \
		>"$W/stale.out" 2>&1 || rc=$?
	sums >"$W/packs-after"
	[ $rc -ne 0 ] && grep -q "older than the packs" "$W/stale.out" &&
		grep -q "defrag-recover" "$W/stale.out" && cmp -s "$W/packs-before" "$W/packs-after" &&
		pass "a writer refuses an index older than the packs, changing nothing" ||
		{ cat "$W/stale.out"; fail "writer on an older index (exit $rc)"; }
	rc=0
	"$DFS_BIN/defrag-recover" --store "$W/stale" >"$W/stale.rec" 2>&1 || rc=$?
	if [ $rc -eq 0 ] && dfs_mount "$W/stale" "$mnt"; then
		"$DFS_BIN/dfs-treecmp" --ignore-atime --ignore-ctime "$src/b" "$mnt/.sources/r2" \
			>"$W/cmp" 2>&1 &&
			"$DFS_BIN/dfs-treecmp" --ignore-atime --ignore-ctime "$src/a" \
			"$mnt/.sources/r3" >>"$W/cmp" 2>&1 &&
			pass "defrag-recover then brings back the later commits" ||
			{ head "$W/cmp"; fail "later commits after recover"; }
		dfs_umount "$mnt"
	else
		cat "$W/stale.rec"
		fail "defrag-recover of the store with an older index (exit $rc)"
	fi
	rm -rf "$W/stale"
fi

flip() {	# flip PACK OFFSET: two bytes changed by some means other than defragfs
	printf '\xff\x00' | dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null
}
dfs_flip_in "$store" "$src/a/random.bin" || fail "could not damage the chunk"

rc=0
"$DFS_BIN/defrag-verify" --store "$store" >"$W/v1" 2>&1 || rc=$?
[ $rc -eq 1 ] && grep -q "DAMAGED chunk" "$W/v1" && grep -q "random.bin" "$W/v1" &&
	grep -q "copy.bin" "$W/v1" && pass "damage found, both files named" ||
	{ cat "$W/v1"; fail "verify before repair (exit $rc)"; }

rc=0
"$DFS_BIN/defrag-verify" --store "$store" --repair >"$W/v2" 2>&1 || rc=$?
[ $rc -eq 2 ] && pass "--repair without --against is a usage error" ||
	{ cat "$W/v2"; fail "--repair alone: exit $rc"; }

# a copy of the source elsewhere is not the source: refused before anything is compared
cp -a "$src" "$W/changed"
rc=0
"$DFS_BIN/defrag-verify" --store "$store" --against "$W/changed" --name r --repair \
	>"$W/v3" 2>&1 || rc=$?
[ $rc -eq 2 ] && grep -q "is not the source 'r'" "$W/v3" && ! grep -q "REPAIRED" "$W/v3" &&
	pass "a copy of the source is refused (exit 2)" ||
	{ cat "$W/v3"; fail "--against a copy of the source (exit $rc)"; }

# a changed source cannot repair: its bytes no longer hash to the chunk id
cp -p "$src/a/random.bin" "$W/random.keep"
cp -p "$src/b/copy.bin" "$W/copy.keep"
printf 'X' | dd of="$src/a/random.bin" bs=1 seek=100 conv=notrunc 2>/dev/null
printf 'X' | dd of="$src/b/copy.bin" bs=1 seek=100 conv=notrunc 2>/dev/null
rc=0
"$DFS_BIN/defrag-verify" --store "$store" --against "$src" --name r --repair \
	>"$W/v3" 2>&1 || rc=$?
[ $rc -eq 1 ] && ! grep -q "REPAIRED" "$W/v3" && pass "a changed source repairs nothing" ||
	{ cat "$W/v3"; fail "repair from a changed source (exit $rc)"; }
cat "$W/random.keep" >"$src/a/random.bin" && touch -r "$W/random.keep" "$src/a/random.bin"
cat "$W/copy.keep" >"$src/b/copy.bin" && touch -r "$W/copy.keep" "$src/b/copy.bin"

rc=0
"$DFS_BIN/defrag-verify" --store "$store" --against "$src" --name r --repair \
	>"$W/v4" 2>&1 || rc=$?
[ $rc -eq 0 ] && grep -q "REPAIRED chunk" "$W/v4" && grep -q "1 chunks repaired" "$W/v4" &&
	pass "repaired from the source" || { cat "$W/v4"; fail "repair (exit $rc)"; }

"$DFS_BIN/defrag-verify" --store "$store" --read-data >"$W/v5" 2>&1 &&
	pass "read-data clean after repair" || { cat "$W/v5"; fail "still damaged"; }

dfs_mount "$store" "$mnt"
cmp "$src/a/random.bin" "$mnt/.sources/r/a/random.bin" &&
	cmp "$src/b/copy.bin" "$mnt/.sources/r/b/copy.bin" &&
	pass "mount reads the repaired bytes" || fail "mount after repair"
dfs_umount "$mnt"

# the index is a cache: rebuilt from the packs, the good copy must win over the bad one
# (exit 1: recover says the damaged range itself could not be read, which is true)
rc=0
"$DFS_BIN/defrag-recover" --store "$store" >"$W/rec" 2>&1 || rc=$?
[ $rc -le 1 ] && grep -q "damaged ranges" "$W/rec" && pass "recover reports the damaged range" ||
	{ cat "$W/rec"; fail "recover (exit $rc)"; }
"$DFS_BIN/defrag-verify" --store "$store" --read-data --against "$src" --name r >"$W/v6" 2>&1 &&
	pass "rebuilt index uses the repaired copy" || { cat "$W/v6"; fail "after recover"; }

# damage outside any chunk: a metadata record (what an index rebuild replays) and a pack
# header; the chunk pass cannot see them, the pack pass must
for where in meta header; do
	rm -rf "$W/s2"
	cp -a "$store" "$W/s2"
	# the newest pack: the repair's, which ends with that commit's META record
	newest=$(ls "$W/s2"/packs/*/*.pack | sort | tail -n 1)
	if [ $where = meta ]; then
		flip "$newest" $(( $(stat -c %s "$newest") - 8 ))
	else
		flip "$newest" 20
	fi
	rc=0
	"$DFS_BIN/defrag-verify" --store "$W/s2" >"$W/v7" 2>&1 || rc=$?
	[ $rc -eq 1 ] && grep -q "DAMAGED pack" "$W/v7" && pass "verify finds a damaged $where" ||
		{ cat "$W/v7"; fail "damaged $where not found (exit $rc)"; }
done

# chunks larger than the 1 MiB read buffer: repair must read whole chunks
big=$W/bigsrc
mkdir -p "$big"
head -c 12M /dev/urandom >"$big/large.bin"
dfs_ingest --store "$W/s3" --name big --chunk-min 1048576 --chunk-avg 2097152 \
	--chunk-max 8388608 "$big" >/dev/null || fail "ingest with 8 MiB chunks"
dfs_flip_in "$W/s3" "$big/large.bin" || fail "could not damage the large chunk"
rc=0
"$DFS_BIN/defrag-verify" --store "$W/s3" --against "$big" --name big --repair >"$W/v8" 2>&1 ||
	rc=$?
[ $rc -eq 0 ] && grep -q "1 chunks repaired" "$W/v8" && pass "a chunk over 1 MiB repaired" ||
	{ cat "$W/v8"; fail "large-chunk repair (exit $rc)"; }
dfs_finish
