#!/usr/bin/env bash
# bench_ab.sh - two builds of defrag-ingest side by side on one corpus, in one run: the
# ratio of their wall times is what a change cost (or saved), with the machine's noise
# shared by both.
#
#   bash bench/bench_ab.sh OLD_BUILD NEW_BUILD [ROUNDS] [RANDOM_MB]
#     OLD_BUILD, NEW_BUILD  build trees holding bin/defrag-ingest (Release or RelWithDebInfo)
#     ROUNDS                rounds (default 7); the order of the pair alternates
#     RANDOM_MB             MiB of incompressible data in the corpus (default 256)
# Corpus (page cache warm: read once before the first round): /usr/share/doc, /usr/include
# and /usr/share/perl5 as loose files, plus RANDOM_MB of /dev/urandom in 8 files, plus the
# same loose trees again under another folder (a backup: dedup).
# Each round, for each build: an ingest into an empty store (with the organized tree),
# then a no-change re-ingest of the same source; wall times from
# the wall clock. Prints the medians and the ratios NEW/OLD as a
# markdown table on stdout.
set -eu
# the corpora sit beside the stores, on their filesystem (defrag-ingest(8), Guards)
export DEFRAGFS_ALLOW_SAME_FILESYSTEM=1
[ $# -ge 2 ] || { echo "usage: $0 OLD_BUILD NEW_BUILD [ROUNDS] [RANDOM_MB]" >&2; exit 2; }
old=$(cd "$1/bin" && pwd)
new=$(cd "$2/bin" && pwd)
rounds=${3:-7}
mb=${4:-256}
for b in "$old" "$new"; do
	[ -x "$b/defrag-ingest" ] || { echo "missing $b/defrag-ingest" >&2; exit 1; }
done
w=$(mktemp -d "${TMPDIR:-/tmp}/defragfs-ab.XXXXXX")
trap 'rm -rf "$w"' EXIT
src=$w/src
mkdir -p "$src/home" "$src/backup/home" "$src/data"
for d in /usr/share/doc /usr/include /usr/share/perl5; do
	[ -d "$d" ] || continue
	cp -a "$d" "$src/home/"
	cp -a "$d" "$src/backup/home/"
done
for i in 1 2 3 4 5 6 7 8; do
	head -c $((mb * 1024 * 1024 / 8)) /dev/urandom >"$src/data/r$i.bin"
done
find "$src" -type f -exec cat {} + >/dev/null
files=$(find "$src" -type f | wc -l)
bytes=$(du -sb "$src" | cut -f1)
echo "corpus: $files files, $((bytes / 1048576)) MiB; $rounds rounds" >&2

run() {	# run BIN TAG: fresh ingest, then a no-change re-ingest; appends "TAG first again"
	local bin=$1 tag=$2 s t1 t2
	rm -rf "$w/store"
	s=$(date +%s%N)
	"$bin/defrag-ingest" --store "$w/store" --name drv --progress=never "$src" >/dev/null
	t1=$(( ($(date +%s%N) - s) / 1000000 ))
	s=$(date +%s%N)
	"$bin/defrag-ingest" --store "$w/store" --name drv --progress=never "$src" >/dev/null
	t2=$(( ($(date +%s%N) - s) / 1000000 ))
	echo "$tag $t1 $t2" >>"$w/times"
	echo "  $tag: $t1 ms, re-ingest $t2 ms" >&2
}
for r in $(seq 1 "$rounds"); do
	if [ $((r % 2)) = 1 ]; then run "$old" old; run "$new" new; else run "$new" new; run "$old" old; fi
done
med() {	# med TAG COLUMN
	awk -v t="$1" -v c="$2" '$1 == t { print $c }' "$w/times" | sort -g |
		awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
o1=$(med old 2); n1=$(med new 2); o2=$(med old 3); n2=$(med new 3)
echo "| step (median of $rounds, s) | old | new | new / old |"
echo "|---|---:|---:|---:|"
row() {	# row LABEL OLD_MS NEW_MS
	awk -v l="$1" -v o="$2" -v n="$3" 'BEGIN { printf "| %s | %.2f | %.2f | %.3f |\n", l, o / 1000, n / 1000, n / o }'
}
row "ingest into an empty store" "$o1" "$n1"
row "no-change re-ingest" "$o2" "$n2"
