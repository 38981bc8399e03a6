#!/usr/bin/env bash
# bench_seqread_ab.sh - a cold sequential read of a large incompressible file through the
# mount, two builds side by side with squashfuse and the native file in one run (issue 20).
#
#   bash bench/bench_seqread_ab.sh OLD_BUILD NEW_BUILD [ROUNDS] [FILE_MB]
#     OLD_BUILD, NEW_BUILD  build trees holding bin/defrag-ingest and bin/defragfs
#     ROUNDS                rounds (default 3); the order of the four readers alternates
#     FILE_MB               size of the file of /dev/urandom (default 1024)
# One store (OLD_BUILD's defrag-ingest), read by both daemons; one squashfs image of the
# file's directory (mksquashfs -comp zstd, read with squashfuse); the native file on the
# work directory's filesystem. Each step: `sync; echo 3 > /proc/sys/vm/drop_caches`, a
# fresh mount, `dd bs=1M` of the file to /dev/null (SEQAB_READER=cat: `cat`, as
# bench_peers.sh reads, 128 KiB at a time): MB/s (10^6 bytes a second), the
# daemon's peak RSS and CPU seconds. The bytes read through each mount are compared with
# the file once at the end (cmp). Prints the rows and the medians as markdown on stdout.
# Needs: squashfs-tools, squashfuse, fusermount3.
set -eu
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export DEFRAGFS_ALLOW_SAME_FILESYSTEM=1
[ $# -ge 2 ] || { echo "usage: $0 OLD_BUILD NEW_BUILD [ROUNDS] [FILE_MB]" >&2; exit 2; }
old=$(cd "$1/bin" && pwd)
new=$(cd "$2/bin" && pwd)
rounds=${3:-3}
mb=${4:-1024}
reader=${SEQAB_READER:-dd}
case $reader in dd | cat) ;; *) echo "SEQAB_READER: dd or cat" >&2; exit 2 ;; esac
for t in mksquashfs squashfuse fusermount3; do
	command -v $t >/dev/null || { echo "$t missing (apt-get install squashfs-tools squashfuse fuse3)" >&2; exit 2; }
done
# SEQAB_DIR=DIR keeps the file, the store and the image in DIR and reuses them in a later
# run: a store read an hour after it was written, not straight after (the VM's disk may
# still hold freshly written data in the host's cache).
dpid=""
umount_it() { bench_umount "$m" "$dpid"; dpid=""; }
bench_workdir "${SEQAB_DIR:-}" seqab umount_it
m=$w/mnt
mkdir -p "$m" "$w/src/drv"
if [ ! -f "$w/image.sqfs" ] || [ "$(stat -c %s "$w/src/drv/model.bin" 2>/dev/null)" != $((mb << 20)) ]; then
	rm -rf "$w/store" "$w/image.sqfs"
	head -c $((mb << 20)) /dev/urandom >"$w/src/drv/model.bin"
	"$old/defrag-ingest" --store "$w/store" --name drv --progress=never "$w/src/drv" >/dev/null
	mksquashfs "$w/src/drv" "$w/image.sqfs" -comp zstd -quiet -no-progress >/dev/null
fi

mount_it() {	# mount_it TAG: starts the reader of TAG on $m, sets dpid and the path in $f
	local i
	case $1 in
	native) f=$w/src/drv/model.bin; return 0 ;;
	old | new)
		local b=$old
		[ "$1" = new ] && b=$new
		"$b/defragfs" "$w/store" "$m" -f -o ro 2>>"$w/daemon.log" &
		f=$m/.sources/drv/model.bin ;;
	squashfuse)
		squashfuse -f "$w/image.sqfs" "$m" 2>>"$w/daemon.log" &
		f=$m/model.bin ;;
	esac
	dpid=$!
	for i in $(seq 1 400); do
		mountpoint -q "$m" && return 0
		kill -0 "$dpid" 2>/dev/null || { dpid=""; return 1; }
		sleep 0.05
	done
	return 1
}

step() {	# step TAG ROUND
	local s e k=0 cpu=0 mbs
	sync
	echo 3 >/proc/sys/vm/drop_caches
	mount_it "$1"
	s=$(date +%s%N)
	if [ "$reader" = cat ]; then cat "$f" >/dev/null; else dd if="$f" of=/dev/null bs=1M 2>/dev/null; fi
	e=$(date +%s%N)
	if [ -n "$dpid" ]; then
		k=$(awk '/^VmHWM/ {print $2}' "/proc/$dpid/status")
		# utime + stime, clock ticks
		cpu=$(awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' \
			"/proc/$dpid/stat")
	fi
	umount_it
	mbs=$(awk -v b=$((mb << 20)) -v ns=$((e - s)) 'BEGIN { printf "%.0f", b * 1000 / ns }')
	echo "$1 $2 $mbs $((k / 1024)) $cpu" >>"$w/res"
	echo "  round $2 $1: $mbs MB/s, VmHWM $((k / 1024)) MiB, cpu $cpu s," \
		"load $(cut -d' ' -f1 /proc/loadavg)" >&2
}
order=(old new squashfuse native)
for r in $(seq 1 "$rounds"); do
	if [ $((r % 2)) = 1 ]; then
		for t in "${order[@]}"; do step "$t" "$r"; done
	else
		for ((i = ${#order[@]} - 1; i >= 0; i--)); do step "${order[$i]}" "$r"; done
	fi
done
# the same bytes through every reader
for t in old new squashfuse; do
	mount_it $t
	cmp "$f" "$w/src/drv/model.bin" || { echo "$t: the bytes differ" >&2; exit 1; }
	umount_it
done
med() { bench_med "$w/res" "$1" "$2"; }
rows() { awk -v t="$1" '$1 == t { printf "%s%s", s, $3; s = " / " }' "$w/res"; }
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), \`${SEQAB_DIR:+SEQAB_DIR=$SEQAB_DIR }${SEQAB_READER:+SEQAB_READER=$SEQAB_READER }bash bench/bench_seqread_ab.sh $1 $2 $rounds $mb\`," \
	"load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
what="dd bs=1M"
[ "$reader" = cat ] && what=cat
echo "| cold $what of a $mb MiB incompressible file | MB/s, median of $rounds | rounds | daemon peak RSS, MiB | daemon CPU, s |"
echo "|---|---:|---:|---:|---:|"
for t in old new squashfuse native; do
	echo "| $t | $(med $t 3) | $(rows $t) | $(med $t 4) | $(med $t 5) |"
done
n=$(med new 3)
echo
echo "new / squashfuse $(awk -v a="$n" -v b="$(med squashfuse 3)" 'BEGIN { printf "%.2f", a / b }')x," \
	"new / native $(awk -v a="$n" -v b="$(med native 3)" 'BEGIN { printf "%.2f", a / b }')x," \
	"new / old $(awk -v a="$n" -v b="$(med old 3)" 'BEGIN { printf "%.2f", a / b }')x"
