#!/usr/bin/env bash
# bench_walk_peers.sh - tree walks through defragfs beside the same walks through
# squashfuse (a read-only FUSE peer over a squashfs image of the same tree) and on the
# native directory, in the same run (issue 6: find, ls -lR, du -s within 2x of native).
#
#   bash bench/bench_walk_peers.sh [BUILD_DIR] [NFILES] [ROUNDS]
#     BUILD_DIR  build tree holding bin/defrag-ingest and bin/defragfs (default: build)
#     NFILES     files of the tree (bench_gen.py tree: 10-40 bytes, 1000 per directory;
#                default 100000)
#     ROUNDS     rounds of every measurement (default 3); the table gives min-max
#   Needs root, /dev/fuse, python3, squashfuse and mksquashfs (Debian packages squashfuse
#   and squashfs-tools). Work data in a mktemp dir, unmounted and removed on exit.
#
# Cases, each timed with the command's output to /dev/null:
#   native warm      the source directory, dentries and inodes cached
#   native cold      the same after `echo 2 > /proc/sys/vm/drop_caches` (dentries and
#                    inodes dropped; directory blocks stay in the page cache)
#   FUSE fresh       a new mount of each filesystem (its kernel caches empty), page cache
#                    of the store or image warm
#   FUSE warm        the same command again on that mount
# defragfs is mounted with default_permissions (the recommended fstab line), squashfuse
# with its defaults. Prints one markdown table on stdout; progress on stderr.
set -eu
# the corpora sit beside the stores, on their filesystem (defrag-ingest(8), Guards)
export DEFRAGFS_ALLOW_SAME_FILESYSTEM=1
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$src/build}
nfiles=${2:-100000}
rounds=${3:-3}
bin=$(cd "$build/bin" && pwd)
for b in squashfuse mksquashfs python3; do
	command -v $b >/dev/null || { echo "needs $b" >&2; exit 1; }
done
w=$(mktemp -d "${TMPDIR:-/tmp}/defragfs-bench-peers.XXXXXX")
cleanup() {
	for m in "$w/md" "$w/mq"; do mountpoint -q "$m" && fusermount3 -u "$m"; done
	rm -rf "$w"
}
trap cleanup EXIT
mkdir -p "$w/md" "$w/mq"

echo "generating $nfiles files" >&2
python3 "$src/bench/bench_gen.py" tree "$w/t" "$nfiles"
"$bin/defrag-ingest" --store "$w/s" --name t --progress=never "$w/t" >/dev/null
mksquashfs "$w/t" "$w/t.sqfs" -quiet -no-progress >/dev/null
find "$w/s" "$w/t.sqfs" -type f -exec cat {} + >/dev/null

secs() {	# secs CMD...: wall seconds of CMD, output discarded
	local t0 t1
	t0=$(date +%s.%N)
	"$@" >/dev/null 2>&1
	t1=$(date +%s.%N)
	echo "$t1 - $t0" | bc -l
}
walk() {	# walk OP DIR
	case $1 in
	find) find "$2" ;;
	ls) ls -lR "$2" ;;
	du) du -s "$2" ;;
	esac
}
mount_d() {
	"$bin/defragfs" "$w/s" "$w/md" -f -o default_permissions >>"$w/d.log" 2>&1 &
	for _ in $(seq 1 100); do mountpoint -q "$w/md" && return 0; sleep 0.05; done
	echo "defragfs did not mount" >&2
	exit 1
}
mount_q() {
	squashfuse "$w/t.sqfs" "$w/mq"
	for _ in $(seq 1 100); do mountpoint -q "$w/mq" && return 0; sleep 0.05; done
	echo "squashfuse did not mount" >&2
	exit 1
}
declare -A lo hi
note() {	# note KEY SECONDS: min and max over the rounds
	local k=$1 v=$2
	if [ -z "${lo[$k]:-}" ] || [ "$(echo "$v < ${lo[$k]}" | bc -l)" = 1 ]; then lo[$k]=$v; fi
	if [ -z "${hi[$k]:-}" ] || [ "$(echo "$v > ${hi[$k]}" | bc -l)" = 1 ]; then hi[$k]=$v; fi
}
for r in $(seq 1 "$rounds"); do
	for op in find ls du; do
		echo "round $r: $op" >&2
		walk $op "$w/t" >/dev/null 2>&1
		note "$op native-warm" "$(secs walk $op "$w/t")"
		sync
		echo 2 >/proc/sys/vm/drop_caches
		note "$op native-cold" "$(secs walk $op "$w/t")"
		mount_q
		note "$op squashfuse-fresh" "$(secs walk $op "$w/mq")"
		note "$op squashfuse-warm" "$(secs walk $op "$w/mq")"
		fusermount3 -u "$w/mq"
		mount_d
		note "$op defragfs-fresh" "$(secs walk $op "$w/md/.sources/t")"
		note "$op defragfs-warm" "$(secs walk $op "$w/md/.sources/t")"
		fusermount3 -u "$w/md"
		wait
	done
done
range() { printf '%.3f-%.3f' "${lo[$1]}" "${hi[$1]}"; }
echo "| $nfiles files, s (min-max of $rounds) | native warm | native cold | squashfuse fresh | squashfuse warm | defragfs fresh | defragfs warm |"
echo "|---|---|---|---|---|---|---|"
for op in find ls du; do
	name=$op
	[ $op = ls ] && name="ls -lR"
	[ $op = du ] && name="du -s"
	echo "| $name | $(range "$op native-warm") | $(range "$op native-cold") |" \
		"$(range "$op squashfuse-fresh") | $(range "$op squashfuse-warm") |" \
		"$(range "$op defragfs-fresh") | $(range "$op defragfs-warm") |"
done
