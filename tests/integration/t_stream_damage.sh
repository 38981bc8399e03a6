#!/usr/bin/env bash
# A damaged chunk in the middle of a cold sequential read, loaded by the read-ahead
# threads rather than by the reader, is never served: the read fails with EIO at it, what
# came before it is the file's bytes, and the daemon logs it (the flipped byte of t_mount
# sits in a file's first chunk, which the reader loads itself before any read-ahead).
set -eu
. "$(dirname "$0")/lib.sh"
dfs_setup

src=$W/src
store=$W/store
mnt=$W/mnt
mkdir -p "$src" "$mnt"
# two packs (64 MiB each)
head -c $((96 << 20)) /dev/urandom >"$src/big.bin"
sum=$(sha256sum <"$src/big.bin")
dfs_ingest --store "$store" --name sd "$src" >/dev/null || fail "ingest"
dfs_mount "$store" "$mnt"
f=$(find "$mnt/.sources" -name big.bin -type f | head -n1)
[ -n "$f" ] || fail "big.bin not in the view"
dfs_cold_packs "$store"
got=$(dd if="$f" bs=1M status=none | sha256sum)
[ "$got" = "$sum" ] && pass "the bytes of a cold stream are the bytes ingested" ||
	fail "the bytes read differ"
dfs_umount "$mnt"

# a flipped byte 40 MiB into the file, in a chunk the read-ahead loads
dfs_flip_in "$store" "$src/big.bin" $((40 << 20)) || fail "could not damage the chunk"
dfs_mount "$store" "$mnt"
dfs_cold_packs "$store"
if dd if="$f" of="$W/out" bs=1M status=none 2>"$W/eio.err"; then
	fail "a damaged chunk in the middle of a stream was read without error"
else
	grep -q "Input/output error" "$W/eio.err" && pass "damaged chunk in a stream: EIO" ||
		{ cat "$W/eio.err"; fail "damaged chunk in a stream: wrong error"; }
fi
n=$(stat -c %s "$W/out")
[ "$n" -le $((40 << 20)) ] && cmp -s -n "$n" "$W/out" "$src/big.bin" &&
	pass "what was served before the damage ($((n >> 20)) MiB) is the file's bytes" ||
	fail "$n bytes served up to the damage, or they differ"
grep -q "unreadable" "$W"/daemon-*.log && pass "the daemon logged the damaged chunk" ||
	fail "no log line for the damaged chunk"
dfs_umount "$mnt"
dfs_finish
