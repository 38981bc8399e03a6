#!/usr/bin/env bash
# bench_gc.sh - what defrag-gc costs (issue 19).
#   bash bench/bench_gc.sh [BUILD_DIR] [LIVE_MB] [FILES]
#     BUILD_DIR  a build tree holding bin/ (default build-rel; Release or RelWithDebInfo)
#     LIVE_MB    MiB of incompressible live data the gc rewrites (default 1024)
#     FILES      small files for the memory run (default 1000000)
# 1. Rewrite: a store holding LIVE_MB of random data in 64 files (source "live") and as
#    much again in another source that is forgotten; `defrag-gc --live-threshold 100`
#    then rewrites every pack (the forgotten source's packs are dropped, the live ones
#    copied: LIVE_MB of live records). Beside it, in the same run: `cp` of as many bytes
#    of pack files (the live source's packs) to another directory of the same
#    filesystem, then `sync`. Wall times and the
#    ratio gc / (cp + sync); the page cache is dropped before each.
# 2. Memory: a store of FILES small files (distinct contents, 1000 per directory), half
#    of them in a forgotten source; peak RSS (/usr/bin/time) of `defrag-gc` sweeping
#    them, and of `defrag-stat --by-source`.
# Prints a markdown table on stdout; the work directory is removed at the end.
set -eu
export DEFRAGFS_ALLOW_SAME_FILESYSTEM=1
bin=$(cd "${1:-build-rel}/bin" && pwd)
mb=${2:-1024}
nfiles=${3:-1000000}
w=$(mktemp -d "${TMPDIR:-/tmp}/defragfs-gc.XXXXXX")
trap 'rm -rf "$w"' EXIT
now() { date +%s.%N; }
dropcache() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }
rss() { grep 'Maximum resident' "$1" | awk '{printf "%.1f", $NF / 1024}'; }

mkdir -p "$w/live" "$w/dead"
for i in $(seq 1 64); do
	head -c $((mb * 1048576 / 64)) /dev/urandom >"$w/live/f$i"
	head -c $((mb * 1048576 / 64)) /dev/urandom >"$w/dead/f$i"
done
"$bin/defrag-ingest" --progress=never --store "$w/s" --name live "$w/live" >/dev/null 2>&1
"$bin/defrag-ingest" --progress=never --store "$w/s" --name dead "$w/dead" >/dev/null 2>&1
"$bin/defrag-forget" --store "$w/s" dead >/dev/null
rm -rf "$w/live" "$w/dead"
livebytes=$(du -sb "$w/s/packs" | cut -f1)
# the baseline copies as many bytes as the gc will: the first packs (the live source's),
# in id order, up to LIVE_MB
find "$w/s/packs" -name '*.pack' -printf '%f %p %s\n' | sort | awk -v max=$((mb * 1048576)) \
	'{ if (sum < max) { print $2; sum += $3 } }' >"$w/cplist"
cpbytes=$(xargs stat -c %s <"$w/cplist" | paste -sd+ | bc)
dropcache
t0=$(now)
mkdir "$w/copy"
xargs cp -t "$w/copy" <"$w/cplist"
sync
t1=$(now)
rm -rf "$w/copy"
dropcache
t2=$(now)
/usr/bin/time -v "$bin/defrag-gc" --store "$w/s" --live-threshold 100 --json >"$w/gc.json" 2>"$w/gc.time"
t3=$(now)
cp_s=$(echo "$t1 - $t0" | bc -l)
gc_s=$(echo "$t3 - $t2" | bc -l)
copied=$(jq -r .copied_bytes "$w/gc.json")
echo "| measure | value |"
echo "|---|---|"
printf "| packs before gc (live + forgotten) | %d MiB |\n" $((livebytes / 1048576))
printf "| live bytes the gc copied | %d MiB |\n" $((copied / 1048576))
printf "| cp + sync of %d MiB of those packs | %.2f s |\n" $((cpbytes / 1048576)) "$cp_s"
printf "| defrag-gc --live-threshold 100 | %.2f s |\n" "$gc_s"
printf "| gc / (cp + sync), same run | %.2f |\n" \
	"$(echo "$gc_s / $cp_s" | bc -l)"
printf "| gc peak RSS | %s MiB |\n" "$(rss "$w/gc.time")"
rm -rf "$w/s"

# memory: many small files, half forgotten
mkdir -p "$w/m/keep" "$w/m/drop"
python3 - "$w/m" "$nfiles" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    half = "keep" if i % 2 == 0 else "drop"
    d = os.path.join(root, half, "d%05d" % (i // 2000))
    if i % 2000 < 2:
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%07d" % i), "w") as f:
        f.write("file %d of the gc memory benchmark\n" % i)
PY
"$bin/defrag-ingest" --progress=never --store "$w/ms" --name keep "$w/m/keep" >/dev/null 2>&1
"$bin/defrag-ingest" --progress=never --store "$w/ms" --name drop "$w/m/drop" >/dev/null 2>&1
rm -rf "$w/m"
/usr/bin/time -v "$bin/defrag-stat" --store "$w/ms" --by-source --json >/dev/null 2>"$w/st.time"
"$bin/defrag-forget" --store "$w/ms" drop >/dev/null
t4=$(now)
/usr/bin/time -v "$bin/defrag-gc" --store "$w/ms" --json >"$w/gc2.json" 2>"$w/gc2.time"
t5=$(now)
printf "| store of %d files: defrag-stat --by-source peak RSS | %s MiB |\n" "$nfiles" \
	"$(rss "$w/st.time")"
printf "| same, half forgotten: defrag-gc (%s contents swept) | %.2f s, peak RSS %s MiB |\n" \
	"$(jq -r .contents_swept "$w/gc2.json")" "$(echo "$t5 - $t4" | bc -l)" "$(rss "$w/gc2.time")"
