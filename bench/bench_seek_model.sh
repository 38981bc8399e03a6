#!/usr/bin/env bash
# bench_seek_model.sh - cold random 4 KiB reads through the mount with the store on a
# model of a disk with a head (issue 20): dfs-faultfs seek_us=N,keep_cache between the
# store and the daemon, so that a read not starting where the last one ended waits N us
# (its loop is single-threaded: waits add up as on one head). Three mounts side by side:
# the default (auto: the model is FUSE, so no head), -o rotational=1, -o index_warm=0.
#
#   bash bench/bench_seek_model.sh BUILD [ROUNDS] [READS] [SEEK_US]
#     BUILD    build tree holding bin/defrag-ingest, bin/defragfs and bin/dfs-faultfs
#     ROUNDS   rounds (default 3); the order of the mounts alternates
#     READS    random reads a step (default 300)
#     SEEK_US  the model's seek (default 4000); "none": no model, the store read where it
#              is (the work directory's own disk), for the same options side by side
#   SEEKM_DIR=DIR keeps the drive and the store in DIR (reused by a later run).
# The drive: /usr/include and 512 MiB of /dev/urandom. Each step: the model and a fresh
# mount over it, `sync; echo 3 > /proc/sys/vm/drop_caches`, bench_randread.py of the
# file: p50 / p99 / mean us. The model has no elevator and no NCQ: its figures are ratios,
# not a disk's.
set -eu
export DEFRAGFS_ALLOW_SAME_FILESYSTEM=1
[ $# -ge 1 ] || { echo "usage: $0 BUILD [ROUNDS] [READS] [SEEK_US]" >&2; exit 2; }
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$(cd "$1/bin" && pwd)
. "$src/bench/lib.sh"
rounds=${2:-3}
reads=${3:-300}
seek=${4:-4000}
dpid="" fpid=""
down() { bench_umount "$m" "$dpid"; bench_umount "$disk" "$fpid"; dpid="" fpid=""; }
bench_workdir "${SEEKM_DIR:-}" seekm down
disk=$w/disk
m=$w/mnt
mkdir -p "$m" "$disk"
if [ ! -d "$w/store/index" ]; then
	rm -rf "$w/drv" "$w/store"
	mkdir -p "$w/drv"
	cp -a /usr/include "$w/drv/include"
	head -c 512M /dev/urandom >"$w/drv/model.bin"
	"$bin/defrag-ingest" --store "$w/store" --name drv --progress=never "$w/drv" >/dev/null
fi
step() {	# step OPTS ROUND
	local i st=$w/store
	if [ "$seek" != none ]; then
		"$bin/dfs-faultfs" "$w/store" "$disk" -o "seek_us=$seek,keep_cache" \
			2>>"$w/faultfs.log" &
		fpid=$!
		for i in $(seq 1 200); do mountpoint -q "$disk" && break; sleep 0.05; done
		st=$disk
	fi
	"$bin/defragfs" "$st" "$m" -f -o "$1" 2>>"$w/daemon.log" &
	dpid=$!
	for i in $(seq 1 400); do mountpoint -q "$m" && ls "$m" >/dev/null && break; sleep 0.05; done
	sync
	echo 3 >/proc/sys/vm/drop_caches
	read -r p50 p99 mean _ < <(python3 "$src/bench/bench_randread.py" \
		"$m/.sources/drv/model.bin" "$reads")
	down
	echo "$1 $2 $p50 $p99 $mean" >>"$w/res"
	echo "bench_seek_model: round $2 $1: p50 $p50 p99 $p99 mean $mean us" >&2
}
set -- ro ro,rotational=1 ro,index_warm=0
for r in $(seq 1 "$rounds"); do
	if [ $((r % 2)) = 1 ]; then for o in "$@"; do step "$o" "$r"; done
	else for ((i = $#; i >= 1; i--)); do step "${!i}" "$r"; done; fi
done
med() { bench_med "$w/res" "$1" "$2"; }
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), \`bash bench/bench_seek_model.sh BUILD $rounds $reads $seek\`," \
	"load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| mount options, medians of $rounds | p50, us | p99, us | mean, us |"
echo "|---|---:|---:|---:|"
for o in "$@"; do echo "| $o | $(med "$o" 3) | $(med "$o" 4) | $(med "$o" 5) |"; done
echo
echo "every round (options round p50 p99 mean):"
sed 's/^/    /' "$w/res"
