#!/usr/bin/env bash
# bench_ingest.sh - ingest throughput and memory, as ratios against baselines measured
# in the same run (the machine is shared and noisy: absolute figures drift, ratios less).
#
#   bash bench/bench_ingest.sh [BUILD_DIR] [SIZE_MB] [NFILES] [PARTS]
#     BUILD_DIR  build tree holding bin/defrag-ingest (default: build)
#     SIZE_MB    MiB of each large-data case (default 1024)
#     NFILES     files of the small-file tree (default 1000000)
#     PARTS      files the large data is split into (default 8; 1 = one big file)
#   Work data in a mktemp dir under ${TMPDIR:-/tmp}, removed on exit unless BENCH_KEEP=1
#   (then its path is printed: its small/ and s2/ can feed BENCH_TREE_DIR of
#   bench_mount.sh; remove it by hand).
#
# Cases (page cache warm: every input is read once before it is timed):
#   unique compressible  PARTS files cut from a tar of /usr/include, every 4 KiB block
#                        prefixed with a distinct counter (bench_gen.py text), so no
#                        chunk repeats and the compression ratio is that of the headers
#   incompressible       PARTS files of /dev/urandom
#   fully duplicate      the compressible tree again under another source name
#   small files          NFILES files of 10..40 bytes, 1000 per directory (bench_gen.py)
#   no-change re-ingest  the small-file tree again under the same source name
# Baselines: `cat` (read ceiling), `zstd -3 -T1` and `zstd -3 -T2` of the compressible
# data (the store's codec at the store's default level 3, one and two cores),
# `openssl dgst -sha256` (one core, SHA-NI when present: the hash every chunk goes
# through, same libcrypto as the store), `cp` + `sync -f` of the
# random data (copy ceiling), and `find` + `cat` of the small tree (stat and read every
# file, one core). Peak RSS by /usr/bin/time -f %M. Each ingest's --json summary is
# checked (dedup and compression ratios printed below the table).
# Prints one markdown table on stdout; progress on stderr.
set -eu
# the corpora sit beside the stores, on their filesystem (defrag-ingest(8), Guards)
export DEFRAGFS_ALLOW_SAME_FILESYSTEM=1
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$src/build}
mb=${2:-1024}
nfiles=${3:-1000000}
parts=${4:-8}
bin=$(cd "$build/bin" && pwd)
[ -x "$bin/defrag-ingest" ] || { echo "missing $bin/defrag-ingest" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (GNU time)" >&2; exit 1; }
w=$(mktemp -d "${TMPDIR:-/tmp}/defragfs-bench.XXXXXX")
if [ "${BENCH_KEEP:-0}" = 1 ]; then
	trap 'echo "kept $w" >&2' EXIT
else
	trap 'rm -rf "$w"' EXIT
fi
say() { echo "[$(date +%T)] $*" >&2; }

say "generating $mb MiB compressible, $mb MiB random ($parts files each), $nfiles small files in $w"
tar -cf "$w/seed.tar" /usr/include 2>/dev/null || true
python3 "$src/bench/bench_gen.py" text "$w/seed.tar" "$w/text" "$mb" "$parts"
rm -f "$w/seed.tar"
mkdir -p "$w/rand"
for k in $(seq 0 $((parts - 1))); do
	head -c $((mb * 1048576 / parts)) /dev/urandom >"$w/rand/part-$k.bin"
done
python3 "$src/bench/bench_gen.py" tree "$w/small" "$nfiles"
# write the generated data back before timing anything: otherwise its writeback (GBs of
# data and 1M inodes) runs during the baselines (cp + sync -f waits for all of it)
sync -f "$w"
bytes=$(cat "$w"/text/* | wc -c)
rbytes=$(cat "$w"/rand/* | wc -c)

# run NAME CMD... : times CMD (stdout to $w/NAME.out), sets T (seconds) and R (peak RSS KiB)
run() {
	local name=$1 t0 t1 rc=0
	shift
	say "run $name: $*"
	t0=$(date +%s.%N)
	/usr/bin/time -o "$w/$name.time" -f '%M' "$@" >"$w/$name.out" 2>"$w/$name.err" || rc=$?
	t1=$(date +%s.%N)
	if [ $rc -ne 0 ]; then
		echo "$name failed (exit $rc): $*" >&2
		tail -n 20 "$w/$name.err" >&2
		exit 1
	fi
	T=$(printf '%.3f' "$(echo "$t1 - $t0" | bc -l)")
	R=$(tail -n 1 "$w/$name.time")
}
ingest() { run "$@"; }
mbs() { echo "scale=0; $1 / 1048576 / $2" | bc -l; }
ratio() { printf '%.2f' "$(echo "scale=4; $1 / $2" | bc -l)"; }
jf() {	# jf CASE KEY: a key of that ingest's --json summary (src_elapsed: the source phase)
	python3 -c 'import json,sys
d = json.load(open(sys.argv[1]))
v = d["sources"][0]["elapsed_seconds"] if sys.argv[2] == "src_elapsed" else d.get(sys.argv[2], "-")
print(round(v, 2) if isinstance(v, float) else v)' "$w/$1.out" "$2"
}
ing=("$bin/defrag-ingest" --progress=never --json)

# warm the page cache, then the baselines
cat "$w"/text/* "$w"/rand/* >/dev/null
find "$w/small" -type f -exec cat {} + >/dev/null
run cat_text cat "$w"/text/*; t_cat=$T
run zstd1 zstd -3 -T1 -q -c "$w"/text/*; t_z1=$T
run zstd2 zstd -3 -T2 -q -c "$w"/text/*; t_z2=$T
run sha openssl dgst -sha256 "$w"/text/*; t_sha=$T
run cp_rand bash -c 'cp -r "$1" "$2" && sync -f "$2"' _ "$w/rand" "$w/copy"; t_cp=$T
rm -rf "$w/copy"
run find_cat bash -c 'find "$1" -type f -exec cat {} + >/dev/null' _ "$w/small"; t_fc=$T

ingest text "${ing[@]}" --store "$w/s" "$w/text"; t_text=$T r_text=$R
ingest rand "${ing[@]}" --store "$w/s" "$w/rand"; t_rand=$T r_rand=$R
ingest dup "${ing[@]}" --store "$w/s" --name text2 --alias "$w/text"; t_dup=$T r_dup=$R
ingest small "${ing[@]}" --store "$w/s2" "$w/small"; t_small=$T r_small=$R
ingest again "${ing[@]}" --store "$w/s2" "$w/small"; t_again=$T r_again=$R
store_mb=$(du -sm "$w/s" | cut -f1)
store2_mb=$(du -sm "$w/s2" | cut -f1)

echo "| case | seconds | throughput | ratio to baseline | peak RSS MiB |"
echo "|---|---|---|---|---|"
echo "| baseline: cat of the compressible data | $t_cat | $(mbs "$bytes" "$t_cat") MB/s | - | - |"
echo "| baseline: zstd -3 -T1 (1 core) | $t_z1 | $(mbs "$bytes" "$t_z1") MB/s | - | - |"
echo "| baseline: zstd -3 -T2 (2 cores) | $t_z2 | $(mbs "$bytes" "$t_z2") MB/s | - | - |"
echo "| baseline: openssl dgst -sha256 (1 core) | $t_sha | $(mbs "$bytes" "$t_sha") MB/s | - | - |"
echo "| baseline: cp -r + sync of the random data | $t_cp | $(mbs "$rbytes" "$t_cp") MB/s | - | - |"
echo "| baseline: find -exec cat of the small tree | $t_fc | $(echo "scale=0; $nfiles / $t_fc" | bc -l) files/s | - | - |"
echo "| unique compressible, $mb MiB in $parts files | $t_text | $(mbs "$bytes" "$t_text") MB/s | $(ratio "$t_z1" "$t_text") x zstd -T1, $(ratio "$t_z2" "$t_text") x zstd -T2 | $((r_text / 1024)) |"
echo "| incompressible, $mb MiB in $parts files | $t_rand | $(mbs "$rbytes" "$t_rand") MB/s | $(ratio "$t_cp" "$t_rand") x cp+sync | $((r_rand / 1024)) |"
echo "| fully duplicate (compressible again, new name) | $t_dup | $(mbs "$bytes" "$t_dup") MB/s | $(ratio "$t_sha" "$t_dup") x openssl sha256, $(ratio "$t_cat" "$t_dup") x cat | $((r_dup / 1024)) |"
echo "| $nfiles small files, first ingest | $t_small | $(echo "scale=0; $nfiles / $t_small" | bc -l) files/s | $(ratio "$t_fc" "$t_small") x find+cat | $((r_small / 1024)) |"
echo "| no-change re-ingest of the same tree | $t_again | $(echo "scale=0; $nfiles / $t_again" | bc -l) files/s | $(ratio "$t_fc" "$t_again") x find+cat | $((r_again / 1024)) |"
echo
for c in text rand dup small again; do
	echo "- $c: files $(jf $c files), bytes_read $(jf $c bytes_read), new_raw_bytes $(jf $c new_raw_bytes), new_stored_bytes $(jf $c new_stored_bytes), dedup_ratio $(jf $c dedup_ratio), compression_ratio $(jf $c compression_ratio), elapsed_seconds $(jf $c elapsed_seconds) (of which the source walk/read/store phase $(jf $c src_elapsed), organize_seconds $(jf $c organize_seconds))"
done
echo "- store sizes: large-data store ${store_mb} MiB, small-file store ${store2_mb} MiB"
# A fast store is worth nothing if it lost bytes: both stores must verify clean.
for s in "$w/s" "$w/s2"; do
	if "$bin/defrag-verify" --store "$s" --read-data >"$w/verify.out" 2>&1; then
		echo "- $(basename "$s"): defrag-verify --read-data clean"
	else
		echo "- $(basename "$s"): defrag-verify --read-data FOUND PROBLEMS:"
		head -n 20 "$w/verify.out"
		exit 1
	fi
done
