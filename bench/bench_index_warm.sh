#!/usr/bin/env bash
# bench_index_warm.sh - cold reads through the mount with the index warm-up on (the
# default) and off (-o index_warm=0), side by side, on a store whose index is not trivial
# (issue 20; docs/BENCHMARKS.md, "The index in the page cache").
#
#   bash bench/bench_index_warm.sh BUILD [ROUNDS]
#     BUILD   build tree holding bin/defrag-ingest and bin/defragfs
#     ROUNDS  rounds (default 5); the order of the two mounts alternates
#   IWARM_DIR=DIR keeps the drive and the store in DIR and reuses them in a later run.
# The drive: this machine's /usr/share/doc, /usr/include and /usr/bin, a second copy of
# them under another root, and a 1 GiB file of /dev/urandom (bench_peers's medium nvme1
# and nvme2 without the tarballs and the image). Each step: a fresh mount, then
# `sync; echo 3 > /proc/sys/vm/drop_caches` (as bench_peers: the daemon's first requests
# come before the drop, so the warm-up has to notice that its files left the cache), then
#   seq   cat of the 1 GiB file: MB/s, and the disk's read requests (/proc/diskstats of the
#         store's device) in the step
#   rand  bench_randread.py, 2000 random 4 KiB preads of it: p50 / p99 us
#   tar   tar cf - of the organized tree piped to wc -c: MB/s
# Prints the rows and the medians as markdown on stdout; progress on stderr.
set -eu
export DEFRAGFS_ALLOW_SAME_FILESYSTEM=1
[ $# -ge 1 ] || { echo "usage: $0 BUILD [ROUNDS]" >&2; exit 2; }
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$(cd "$1/bin" && pwd)
. "$src/bench/lib.sh"
rounds=${2:-5}
dpid=""
umount_it() { bench_umount "$m" "$dpid"; dpid=""; }
bench_workdir "${IWARM_DIR:-}" iwarm umount_it
m=$w/mnt
mkdir -p "$m"
if [ ! -d "$w/store/index" ]; then
	rm -rf "$w/drv" "$w/store"
	mkdir -p "$w/drv/models" "$w/drv/backup-2024"
	cp -a /usr/share/doc "$w/drv/doc"
	cp -a /usr/include "$w/drv/include"
	cp -a /usr/bin "$w/drv/bin"
	cp -a "$w/drv/doc" "$w/drv/include" "$w/drv/bin" "$w/drv/backup-2024/"
	head -c 1G /dev/urandom >"$w/drv/models/model.bin"
	"$bin/defrag-ingest" --store "$w/store" --name drv --progress=never "$w/drv" >/dev/null
fi
dev=$(stat -c %d "$w/store/index")
dev=$(awk -v d="$dev" 'BEGIN { printf "%d:%d", int(d / 256), d % 256 }')
reads() { awk -v d="$dev" '$1 ":" $2 == d { print $4 }' /proc/diskstats; }
say() { echo "bench_index_warm: $*" >&2; }

step() {	# step TAG ROUND
	local opts=ro s e r0 r1 i p50 p99 n t0 t1
	[ "$1" = off ] && opts=ro,index_warm=0
	mount1() {
		"$bin/defragfs" "$w/store" "$m" -f -o "$opts" 2>>"$w/daemon.log" &
		dpid=$!
		for i in $(seq 1 400); do
			mountpoint -q "$m" && ls "$m" >/dev/null && break
			sleep 0.05
		done
		sync
		echo 3 >/proc/sys/vm/drop_caches
	}
	mount1
	r0=$(reads); s=$(date +%s%N)
	cat "$m/.sources/drv/models/model.bin" >/dev/null
	e=$(date +%s%N); r1=$(reads)
	umount_it
	mount1
	read -r p50 p99 _ < <(python3 "$src/bench/bench_randread.py" \
		"$m/.sources/drv/models/model.bin" 2000)
	umount_it
	mount1
	t0=$(date +%s%N)
	n=$(tar -C "$m" -cf - . 2>/dev/null | wc -c)
	t1=$(date +%s%N)
	umount_it
	echo "$1 $2 $(awk -v b=$((1 << 30)) -v ns=$((e - s)) 'BEGIN { printf "%.0f", b * 1000 / ns }')" \
		"$((r1 - r0)) $p50 $p99 $(awk -v b="$n" -v ns=$((t1 - t0)) 'BEGIN { printf "%.0f", b * 1000 / ns }')" \
		>>"$w/res"
	say "round $2 $1: $(tail -n 1 "$w/res" | cut -d' ' -f3-), load $(cut -d' ' -f1 /proc/loadavg)"
}
for r in $(seq 1 "$rounds"); do
	if [ $((r % 2)) = 1 ]; then step warm "$r"; step off "$r"; else step off "$r"; step warm "$r"; fi
done
med() { bench_med "$w/res" "$1" "$2"; }
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), \`bash bench/bench_index_warm.sh $1 $rounds\`," \
	"load average $(cut -d' ' -f1-3 /proc/loadavg); index/ $(du -sh "$w/store/index" | cut -f1)," \
	"store $(du -sh "$w/store" | cut -f1)"
echo
echo "| medians of $rounds | cold cat, MB/s | its disk reads | rand p50, us | rand p99, us | tar, MB/s |"
echo "|---|---:|---:|---:|---:|---:|"
for t in warm off; do
	echo "| $t | $(med $t 3) | $(med $t 4) | $(med $t 5) | $(med $t 6) | $(med $t 7) |"
done
echo
echo "warm / off: cat $(awk -v a="$(med warm 3)" -v b="$(med off 3)" 'BEGIN { printf "%.2f", a / b }')x," \
	"rand p50 $(awk -v a="$(med warm 5)" -v b="$(med off 5)" 'BEGIN { printf "%.2f", a / b }')x," \
	"tar $(awk -v a="$(med warm 7)" -v b="$(med off 7)" 'BEGIN { printf "%.2f", a / b }')x"
echo
echo "every round (tag round cat-MB/s disk-reads p50 p99 tar-MB/s):"
sed 's/^/    /' "$w/res"
