#!/usr/bin/env bash
# A sequential read of a large file does not fill the chunk cache: the chunks a stream
# has been served whole leave it, although the kernel has several reads of the stream in
# flight and the daemon's threads serve them in any order (issue 20: a third of a cold
# stream's chunks stayed, 256 MiB of fresh heap faulted in per GiB read, half the speed).
# Measured as the daemon's peak RSS over two reads of a file larger than the cache.
set -eu
. "$(dirname "$0")/lib.sh"
dfs_setup
if [ "${DFS_VALGRIND:-0}" = 1 ] || ldd "$DFS_BIN/defragfs" | grep -q libasan; then
	echo "skip: the peak RSS of a sanitized daemon is its allocator's"
	exit 77
fi

src=$W/src
store=$W/store
mnt=$W/mnt
mkdir -p "$src" "$mnt"
head -c $((256 << 20)) /dev/urandom >"$src/big.bin"
sum=$(sha256sum <"$src/big.bin")
dfs_ingest --store "$store" --name sm "$src" >/dev/null || fail "ingest"
rm "$src/big.bin"
dfs_mount "$store" "$mnt" "cache_size=128M"
pid=$(eval echo "\$_dfs_pid_$(echo "$mnt" | md5sum | cut -c1-8)")
f=$(find "$mnt/.sources" -name big.bin -type f | head -n1)
[ -n "$f" ] || fail "big.bin not in the view"
# cold, as a user meets it: the packs out of the page cache (the daemon's reads slower
# than the kernel's, which keeps several of them in flight: 1 MiB reads, eight of its
# 128 KiB requests at once)
dfs_cold_packs "$store"
rss0=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
got=$(dd if="$f" bs=1M status=none | sha256sum)
[ "$got" = "$sum" ] && pass "the bytes read are the bytes ingested" || fail "the bytes read differ"
hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
grow=$(((hwm - rss0) >> 10))
# served chunks gone, the read-ahead's 2 MiB and the kernel's reads in flight are left
[ "$grow" -le 40 ] && pass "the daemon grew by $grow MiB over a 256 MiB stream (cache 128 MiB)" ||
	fail "the daemon grew by $grow MiB over a stream (cache 128 MiB)"
echo "peak RSS: $((rss0 >> 10)) MiB at the mount, $((hwm >> 10)) MiB after the read"
dfs_umount "$mnt"
dfs_finish
