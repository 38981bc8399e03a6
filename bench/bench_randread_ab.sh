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
# Prints the medians and the daemon's peak RSS as a markdown table on stdout.
set -eu
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
umount_it() {
	mountpoint -q "$m" && { fusermount3 -u "$m" 2>/dev/null || umount -l "$m"; }
	[ -n "$dpid" ] && wait "$dpid" 2>/dev/null
	dpid=""
	return 0
}
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

step() {	# step BIN STORE TAG ROUND
	local i k res pp="" c=-
	sync
	echo 3 >/proc/sys/vm/drop_caches
	"$1/defragfs" "$2" "$m" -f -o ro 2>>"$w/daemon.log" &
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
	res=$(python3 "$src_dir/bench/bench_randread.py" "$m/.sources/drv/models/model.bin" 2000 "$4")
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
done
# same bytes: every row of a round has one digest
bad=$(awk '{ if (($2 in d) && d[$2] != $7) print $2; d[$2] = $7 }' "$w/res")
[ -z "$bad" ] || { echo "digests differ in rounds: $bad" >&2; exit 1; }
med() {	# med TAG COLUMN
	awk -v t="$1" -v c="$2" '$1 == t { print $c }' "$w/res" | sort -n |
		awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "-" }'
}
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), \`bash bench/bench_randread_ab.sh $1 $2 $rounds $mb\`," \
	"load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| cold, $mb MiB incompressible file, 2000 random 4 KiB preads | old | new | new on old store |"
echo "|---|---:|---:|---:|"
echo "| p50, us (median of $rounds rounds) | $(med old 3) | $(med new 3) | $(med new-on-old 3) |"
echo "| p99, us | $(med old 4) | $(med new 4) | $(med new-on-old 4) |"
echo "| mean, us | $(med old 5) | $(med new 5) | $(med new-on-old 5) |"
echo "| daemon peak RSS, MiB | $(( $(med old 8) / 1024 )) | $(( $(med new 8) / 1024 )) |" \
	"$(( $(med new-on-old 8) / 1024 )) |"
echo "| threads started during the reads (clone3) | $(med old 9) | $(med new 9) |" \
	"$(med new-on-old 9) |"
