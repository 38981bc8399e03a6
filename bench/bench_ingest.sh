#!/usr/bin/env bash
# Ingest throughput and memory, as ratios against baselines measured in the same run.
#   bash bench/bench_ingest.sh [BUILD_DIR] [SIZE_MB] [NFILES]
# Cases (page cache warm): unique compressible data (a tar of /usr/include and
# /usr/share/doc, repeated with variations), incompressible data (urandom), fully
# duplicate data (the same bytes again under another source name), many small files,
# and a no-change re-ingest of the small-file tree. Baselines: `cat` of the same files
# (the read ceiling), `dd conv=fdatasync` of the random file (the copy ceiling) and
# `zstd -3 -T1` of the compressible file (the codec ceiling, one core).
# Prints one markdown table; peak RSS from /usr/bin/time when present.
set -eu
build=${1:-build}
mb=${2:-1024}
nfiles=${3:-200000}
bin=$(cd "$build/bin" && pwd)
w=$(mktemp -d /tmp/defragfs-bench.XXXXXX)
trap 'rm -rf "$w"' EXIT
mkdir -p "$w/text" "$w/rand" "$w/small"

# corpus
tar -cf - /usr/include /usr/share/doc 2>/dev/null >"$w/seed.tar" || true
: >"$w/text/big.txt"
i=0
while [ "$(stat -c %s "$w/text/big.txt")" -lt $((mb * 1048576)) ]; do
	# variations keep it unique: each copy gets a different header
	printf 'variation %d\n' "$i" >>"$w/text/big.txt"
	sed "s/\\b\\([a-z]\\)/\\1$i/" "$w/seed.tar" 2>/dev/null | head -c $((64 * 1048576)) \
		>>"$w/text/big.txt"
	i=$((i + 1))
done
truncate -s $((mb * 1048576)) "$w/text/big.txt"
head -c $((mb * 1048576)) /dev/urandom >"$w/rand/big.bin"
for d in $(seq 0 99); do mkdir -p "$w/small/d$d"; done
seq 1 "$nfiles" | while read -r n; do
	printf 'file %d %s\n' "$n" "$((n * 7919))" >"$w/small/d$((n % 100))/f$n"
done

secs() { /usr/bin/env python3 -c 'import time; print(time.monotonic())' 2>/dev/null ||
	date +%s.%N; }
run() {	# run NAME CMD... -> seconds and peak RSS KiB
	local t0 t1 rss=- out
	t0=$(date +%s.%N)
	if [ -x /usr/bin/time ]; then
		out=$(/usr/bin/time -f '%M' "$@" 2>&1 >/dev/null | tail -n 1)
		rss=$out
	else
		"$@" >/dev/null 2>&1
	fi
	t1=$(date +%s.%N)
	echo "$(echo "$t1 - $t0" | bc -l) $rss"
}
mbs() { echo "scale=1; $1 / 1048576 / $2" | bc -l; }

cat "$w/text/big.txt" >/dev/null; cat "$w/rand/big.bin" >/dev/null
read -r t_cat _ < <(run cat "$w/text/big.txt")
read -r t_zstd _ < <(run zstd -3 -T1 -q -c "$w/text/big.txt")
read -r t_dd _ < <(run dd if="$w/rand/big.bin" of="$w/copy" bs=8M conv=fdatasync)
rm -f "$w/copy"
read -r t_text r_text < <(run "$bin/defrag-ingest" --store "$w/s" --progress=never "$w/text")
read -r t_rand r_rand < <(run "$bin/defrag-ingest" --store "$w/s" --progress=never "$w/rand")
read -r t_dup r_dup < <(run "$bin/defrag-ingest" --store "$w/s" --progress=never --name text2 "$w/text")
read -r t_small r_small < <(run "$bin/defrag-ingest" --store "$w/s2" --progress=never "$w/small")
read -r t_again r_again < <(run "$bin/defrag-ingest" --store "$w/s2" --progress=never "$w/small")
bytes=$((mb * 1048576))
echo "| case | seconds | MB/s or files/s | ratio to baseline | peak RSS KiB |"
echo "|---|---|---|---|---|"
echo "| cat (read ceiling) | $t_cat | $(mbs $bytes "$t_cat") MB/s | 1 | - |"
echo "| zstd -3 -T1 (codec ceiling, 1 core) | $t_zstd | $(mbs $bytes "$t_zstd") MB/s | 1 | - |"
echo "| unique compressible | $t_text | $(mbs $bytes "$t_text") MB/s | $(echo "scale=2; $t_zstd / $t_text" | bc -l) x zstd | $r_text |"
echo "| dd + fdatasync (copy ceiling) | $t_dd | $(mbs $bytes "$t_dd") MB/s | 1 | - |"
echo "| incompressible | $t_rand | $(mbs $bytes "$t_rand") MB/s | $(echo "scale=2; $t_dd / $t_rand" | bc -l) x dd | $r_rand |"
echo "| fully duplicate | $t_dup | $(mbs $bytes "$t_dup") MB/s | $(echo "scale=2; $t_cat / $t_dup" | bc -l) x cat | $r_dup |"
echo "| $nfiles small files | $t_small | $(echo "scale=0; $nfiles / $t_small" | bc -l) files/s | - | $r_small |"
echo "| no-change re-ingest | $t_again | $(echo "scale=0; $nfiles / $t_again" | bc -l) files/s | - | $r_again |"
