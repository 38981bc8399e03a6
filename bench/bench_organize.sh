#!/usr/bin/env bash
# bench_organize.sh - what the organized-tree build costs as a store grows (issue 5).
#
#   bash bench/bench_organize.sh [BUILD_DIR] [NFILES]
#     BUILD_DIR  build tree holding bin/defrag-ingest, bin/defrag-reclassify (default: build)
#     NFILES     files of each small-file tree (default 1000000)
#   Work data in a mktemp dir under ${TMPDIR:-/tmp}, removed on exit.
#
# Two trees of NFILES tiny files (bench_gen.py tree; the second with other bytes), one
# store, page cache warm. Runs, each timed by its own --json (elapsed_seconds for the
# whole run, organize_seconds for the organized-tree build):
#   first      ingest of tree A into an empty store (a full build of A)
#   no change  the same ingest again (the build is skipped)
#   second     ingest of tree B as a second source (an append build: only B is placed)
#   touched    one file of A changed, A ingested again (a full build of A and B)
#   reclassify defrag-reclassify (a full build of A and B, by hand)
# The organizer's share of each run is organize_seconds / elapsed_seconds; the append
# build's cost against the first build's shows that it follows what is added, not what
# the store holds. Prints one markdown table on stdout; progress on stderr.
set -eu
# the corpora sit beside the stores, on their filesystem (defrag-ingest(8), Guards)
export DEFRAGFS_ALLOW_SAME_FILESYSTEM=1
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$src/build}
nfiles=${2:-1000000}
bin=$(cd "$build/bin" && pwd)
w=$(mktemp -d "${TMPDIR:-/tmp}/defragfs-bench-org.XXXXXX")
trap 'rm -rf "$w"' EXIT

echo "generating 2 x $nfiles files" >&2
python3 "$src/bench/bench_gen.py" tree "$w/a" "$nfiles"
python3 "$src/bench/bench_gen.py" tree "$w/b" "$nfiles"
find "$w/b" -type f -name 'f1*' -exec sh -c 'for f; do echo b >>"$f"; done' sh {} +
find "$w/a" "$w/b" -type f -exec cat {} + >/dev/null	# warm the page cache

field() { sed -n "s/.*\"$1\": \([0-9.e+-]*\).*/\1/p" "$2" | head -n 1; }
row() {	# NAME JSON
	local el org
	el=$(field elapsed_seconds "$2")
	org=$(field organize_seconds "$2")
	printf '| %s | %.2f | %.2f | %.1f%% | %s |\n' "$1" "$el" "$org" \
		"$(echo "100 * $org / $el" | bc -l)" \
		"$(grep -o '"organize_skipped": [a-z]*\|"organize_append": [a-z]*' "$2" |
			tr '\n' ' ' | sed 's/"organize_//g; s/"//g')"
}
ingest() {	# NAME DIR JSON
	"$bin/defrag-ingest" --store "$w/s" --name "$1" --progress=never --json "$2" >"$3"
}
echo "| run | ingest s | organize s | organize / ingest | mode |"
echo "|---|---|---|---|---|"
echo "first ingest of A" >&2
ingest a "$w/a" "$w/j1"
row "first: A ($nfiles files) into an empty store" "$w/j1"
echo "no-change re-ingest of A" >&2
ingest a "$w/a" "$w/j2"
row "no change: A again" "$w/j2"
echo "second source B" >&2
ingest b "$w/b" "$w/j3"
row "second: B ($nfiles files) beside A" "$w/j3"
echo "A with one file changed" >&2
f=$(find "$w/a" -type f | head -n 1)
echo changed >>"$f"
ingest a "$w/a" "$w/j4"
row "touched: one file of A changed" "$w/j4"
echo "reclassify" >&2
t0=$(date +%s.%N)
"$bin/defrag-reclassify" --store "$w/s" >/dev/null
t1=$(date +%s.%N)
printf '| reclassify (A and B, full build) | %.2f | - | - | full |\n' "$(echo "$t1 - $t0" | bc -l)"
