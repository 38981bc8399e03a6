#!/usr/bin/env bash
# A cold sequential read loads the stream's chunks past the page cache (O_DIRECT reads of
# consecutive pack records, issue 20) and still serves only checked bytes: the bytes read
# are the bytes ingested, the packs are not left in the page cache, and a flipped byte in a
# chunk in the middle of the stream (loaded by the read-ahead, not by the reader) fails the
# read with EIO instead of being served.
set -eu
. "$(dirname "$0")/lib.sh"
dfs_setup

src=$W/src
store=$W/store
mnt=$W/mnt
mkdir -p "$src" "$mnt"
# two packs (64 MiB each): runs end at a pack's end
head -c $((96 << 20)) /dev/urandom >"$src/big.bin"
sum=$(sha256sum <"$src/big.bin")
dfs_ingest --store "$store" --name sd "$src" >/dev/null || fail "ingest"
cached() {	# bytes of the packs in the page cache
	fincore --bytes --noheadings --output RES "$store"/packs/*/*.pack |
		awk '{ s += $1 } END { print s + 0 }'
}
direct=0
p1=$(ls "$store"/packs/*/*.pack | head -n1)
dd if="$p1" of=/dev/null bs=4096 count=1 iflag=direct status=none 2>/dev/null && direct=1

dfs_mount "$store" "$mnt"
f=$(find "$mnt/.sources" -name big.bin -type f | head -n1)
[ -n "$f" ] || fail "big.bin not in the view"
dfs_cold_packs "$store"
got=$(dd if="$f" bs=1M status=none | sha256sum)
[ "$got" = "$sum" ] && pass "the bytes of a cold stream are the bytes ingested" ||
	fail "the bytes read differ"
c=$(cached)
if [ $direct = 1 ]; then
	# the reader's own loads before the stream is seen (the first chunks), the packs'
	# headers, and chunks a reader got to before the read-ahead did
	[ "$c" -le $((16 << 20)) ] && pass "the stream left $((c >> 10)) KiB of 96 MiB of packs in the page cache" ||
		fail "the stream left $((c >> 10)) KiB of the packs in the page cache (O_DIRECT not used?)"
else
	echo "the packs' filesystem refuses O_DIRECT: buffered reads ($((c >> 10)) KiB cached)"
fi
# the same file again, warm in the daemon's view: the fallback paths give the same bytes
got=$(dd if="$f" bs=128k status=none | sha256sum)
[ "$got" = "$sum" ] && pass "a second read gives the same bytes" || fail "the second read differs"
dfs_umount "$mnt"

# a flipped byte 40 MiB into the file: the chunk the read-ahead loads fails its check
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
