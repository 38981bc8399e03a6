#!/usr/bin/env bash
# bench_randread_ab.sh - cold random 4 KiB reads through the mount, two builds side by side
# in one run (issue 20): each build ingests the same corpus into its own store, then the
# rounds alternate the builds, each read step on a fresh mount after
# `sync; echo 3 > /proc/sys/vm/drop_caches`.
#
#   bash bench/bench_randread_ab.sh OLD_BUILD NEW_BUILD [ROUNDS] [MODEL_MB]
#     OLD_BUILD, NEW_BUILD  build trees holding bin/defrag-ingest and bin/defragfs
#     ROUNDS                rounds (default 5); the order of the builds alternates
#     MODEL_MB              size of the incompressible file read (default 400)
# Corpus: /usr/include and /usr/share/doc (an index with other entries than the file's),
# and models/model.bin (MODEL_MB of /dev/urandom). A third column, "new on old store",
# is NEW_BUILD's daemon on OLD_BUILD's store (contents written without what NEW_BUILD
# adds, when the format allows it; skipped when the mount fails).
# Each step: bench/bench_randread.py of the model file, 2000 random 4 KiB preads with the
# round's seed: p50 and p99 in us. The digests of a round must agree (same bytes read).
# With perf, the threads the daemon starts during the reads (clone3 calls) are counted.
# With mksquashfs and squashfuse installed (SQUASHFS=0 leaves them out), each round also
# reads the same file the same way through squashfuse, from `mksquashfs models/ -comp
# zstd` (the model directory only: the image of the whole corpus takes minutes to build),
# on a fresh squashfuse mount after dropping the caches: the issue's peer for this read.
# Prints the medians and the daemon's peak RSS as a markdown table on stdout.
set -eu
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export DEFRAGFS_ALLOW_SAME_FILESYSTEM=1
[ $# -ge 2 ] || { echo "usage: $0 OLD_BUILD NEW_BUILD [ROUNDS] [MODEL_MB]" >&2; exit 2; }
src_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
old=$(cd "$1/bin" && pwd)
new=$(cd "$2/bin" && pwd)
rounds=${3:-5}
mb=${4:-400}
w=$(mktemp -d "${TMPDIR:-/tmp}/defragfs-rrab.XXXXXX")
m=$w/mnt
dpid=""
umount_it() { bench_umount "$m" "$dpid"; dpid=""; }
trap 'umount_it; rm -rf "$w"' EXIT
mkdir -p "$m" "$w/src/models"
cp -a /usr/include "$w/src/include"
cp -a /usr/share/doc "$w/src/doc"
head -c $((mb << 20)) /dev/urandom >"$w/src/models/model.bin"
for t in old new; do
	b=$old
	[ $t = new ] && b=$new
	s=$(date +%s%N)
	"$b/defrag-ingest" --store "$w/store-$t" --name drv --progress=never "$w/src" >/dev/null
	echo "ingest $t: $(( ($(date +%s%N) - s) / 1000000 )) ms, stored: packs" \
		"$(du -sb "$w/store-$t/packs" | cut -f1), index $(du -sb "$w/store-$t/index" |
		cut -f1), all $(du -sb "$w/store-$t" | cut -f1) bytes" >&2
done

sq=0
if [ "${SQUASHFS:-1}" = 1 ] && command -v mksquashfs >/dev/null && command -v squashfuse >/dev/null
then
	s=$(date +%s%N)
	mksquashfs "$w/src/models" "$w/model.sqfs" -comp zstd -quiet -no-progress >/dev/null
	echo "mksquashfs: $(( ($(date +%s%N) - s) / 1000000 )) ms, $(stat -c %s "$w/model.sqfs")" \
		"bytes ($(mksquashfs -version | head -1 | cut -d' ' -f3), squashfuse" \
		"$(squashfuse --version 2>&1 | head -1 | cut -d' ' -f2))" >&2
	sq=1
fi

step() {	# step BIN STORE TAG ROUND (TAG squashfuse: BIN and STORE unused)
	local i k res pp="" c=- f=$m/.sources/drv/models/model.bin
	sync
	echo 3 >/proc/sys/vm/drop_caches
	if [ "$3" = squashfuse ]; then
		squashfuse -f "$w/model.sqfs" "$m" 2>>"$w/daemon.log" &
		f=$m/model.bin
	else
		"$1/defragfs" "$2" "$m" -f -o ro 2>>"$w/daemon.log" &
	fi
	dpid=$!
	for i in $(seq 1 400); do
		mountpoint -q "$m" && break
		kill -0 "$dpid" 2>/dev/null || { dpid=""; return 1; }
		sleep 0.05
	done
	if command -v perf >/dev/null; then
		perf stat -x, -e syscalls:sys_enter_clone3 -p "$dpid" -o "$w/perf" 2>/dev/null &
		pp=$!
		sleep 0.2
	fi
	res=$(python3 "$src_dir/bench/bench_randread.py" "$f" 2000 "$4")
	k=$(awk '/^VmHWM/ {print $2}' "/proc/$dpid/status")
	if [ -n "$pp" ]; then
		kill -INT "$pp"
		wait "$pp" || true
		c=$(awk -F, '/clone3/ {print $1}' "$w/perf")
	fi
	umount_it
	echo "$3 $4 $res $k ${c:--}" >>"$w/res"
	echo "  round $4 $3: $res, VmHWM $((k / 1024)) MiB, clone3 ${c:--}" >&2
}
for r in $(seq 1 "$rounds"); do
	if [ $((r % 2)) = 1 ]; then
		step "$old" "$w/store-old" old "$r"; step "$new" "$w/store-new" new "$r"
	else
		step "$new" "$w/store-new" new "$r"; step "$old" "$w/store-old" old "$r"
	fi
	step "$new" "$w/store-old" new-on-old "$r" || echo "  new on old store: no mount" >&2
	[ $sq = 0 ] || step - - squashfuse "$r"
done
# same bytes: every row of a round has one digest
bad=$(awk '{ if (($2 in d) && d[$2] != $7) print $2; d[$2] = $7 }' "$w/res")
[ -z "$bad" ] || { echo "digests differ in rounds: $bad" >&2; exit 1; }
med() { bench_med "$w/res" "$1" "$2"; }
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), \`bash bench/bench_randread_ab.sh $1 $2 $rounds $mb\`," \
	"load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
cols="old new new-on-old"
[ $sq = 0 ] || cols="$cols squashfuse"
row() {	# row LABEL COLUMN [kib]
	local t v line="| $1 |"
	for t in $cols; do
		v=$(med "$t" "$2")
		[ "${3:-}" = kib ] && [ "$v" != - ] &&
			v=$(awk -v v="$v" 'BEGIN { printf "%d", v / 1024 }')
		line="$line $v |"
	done
	echo "$line"
}
echo "| cold, $mb MiB incompressible file, 2000 random 4 KiB preads | old | new |" \
	"new on old store |$([ $sq = 0 ] || echo " squashfuse |")"
echo "|---|---:|---:|---:|$([ $sq = 0 ] || echo "---:|")"
row "p50, us (median of $rounds rounds)" 3
row "p99, us" 4
row "mean, us" 5
row "daemon peak RSS, MiB" 8 kib
row "threads started during the reads (clone3)" 9
echo
for t in $cols; do
	echo "rounds, $t (p50 / p99 us): $(awk -v t="$t" '$1 == t { printf "%s%s / %s", n++ ? ", " : "", $3, $4 }' "$w/res")"
done
