#!/usr/bin/env bash
# Copy alignment at scale (issue 18, "Scale"): what an append build costs once the store
# holds many directories, with alignment's records in the index and without them.
#   bash bench/bench_align_scale.sh [BUILD_DIR] [OLD_BUILD_DIR] [NDIRS]
# A synthetic store of NDIRS directories (default 20000) of 10 small distinct files each
# (the 100M files / 10M directories shape), page cache warm:
#   big    NDIRS directories under 100 top folders (a full build)
#   copy   a small drive: a copy of 5 of big's top folders under another name, and 40
#          files of its own (an append build: the copy aligns)
#   new    a small unrelated drive: 4 directories of 10 files (an append build)
#   big+   big again with one file changed (one source changed: a full build)
# For each run: the ingest's and the organize step's wall time, alignment's time, and what
# it read (directories of views read, signatures loaded, loaded directories listed to
# verify a match; postings looked up); then the index's size (index/ and its table
# files, which vary with RocksDB's compaction state; and bench_index_size: the bytes of
# its keys and values, the derived records apart). With OLD_BUILD_DIR
# (a build before the records) the same runs follow, for the comparison.
set -eu
build=${1:-build}
old=${2:-}
ndirs=${3:-20000}
w=$(mktemp -d "${TMPDIR:-/tmp}/defragfs-bench-align-scale.XXXXXX")
trap 'rm -rf "$w"' EXIT

python3 - "$w" "$ndirs" <<'PY'
import os, sys
w, n = sys.argv[1], int(sys.argv[2])
def put(p, data):
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "w") as f:
        f.write(data)
for d in range(n):
    top = "t%03d" % (d % 100)
    for i in range(10):
        put("%s/big/%s/d%06d/f%d.txt" % (w, top, d, i), "dir %d file %d of the big drive\n" % (d, i))
for i in range(40):
    put("%s/copy/own/g%02d.txt" % (w, i), "the copy drive's own file %d\n" % i)
for d in range(4):
    for i in range(10):
        put("%s/new/n%d/h%d.txt" % (w, d, i), "an unrelated drive, dir %d file %d\n" % (d, i))
PY
for t in 000 001 002 003 004; do cp -a "$w/big/t$t" "$w/copy/old-t$t"; done
find "$w" -type f -exec cat {} + >/dev/null
echo "corpus: $(find "$w/big" -type d | wc -l) directories and $(find "$w/big" -type f | wc -l) files in big"

run() { # BIN LABEL
	local b=$1 label=$2 s=$w/store-$2 step x rss
	for step in big copy new big+; do
		x=${step%+}
		[ "$step" = big+ ] && echo changed >>"$w/big/t007/d000007/f3.txt"
		sync
		rss=$( { /usr/bin/time -f '%M' "$b/defrag-ingest" --store "$s" --name "$x" \
			--progress=never --allow-same-filesystem --json "$w/$x" >"$w/$label-$step.json"; } 2>&1 | tail -n 1)
		python3 - "$w/$label-$step.json" "$label" "$step" "$rss" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
line = "%-4s %-5s ingest %6.2f s, organize %5.2f s, alignment %6.3f s, max RSS %4d MiB" % (
    sys.argv[2], sys.argv[3], j["elapsed_seconds"], j.get("organize_seconds", 0),
    j.get("organize_align_seconds", 0), int(sys.argv[4]) // 1024)
if "organize_align_dirs_read" in j:
    line += "; dirs read %d, loaded %d, listed %d" % (j["organize_align_dirs_read"],
        j["organize_align_dirs_loaded"], j["organize_align_dirs_listed"])
if "organize_align_lookups" in j:
    line += ", lookups %d" % j["organize_align_lookups"]
print(line)
PY
	done
	sed -i '$ d' "$w/big/t007/d000007/f3.txt"	# as it was, for the next build
	echo "$label index: $(du -sb "$s/index" | cut -f1) bytes in index/, $(find "$s/index" \
		-maxdepth 1 -name '*.sst' -printf '%s\n' | awk '{ t += $1 } END { print t + 0 }') in its table files"
	"$sizer" "$s" | tail -n 2 | sed "s/^/$label index: /"
	rm -rf "$s"
}
sizer=$(cd "$build/bin" && pwd)/bench_index_size	# the index's bytes, records apart
run "$(cd "$build/bin" && pwd)" new
[ -n "$old" ] && run "$(cd "$old/bin" && pwd)" old
exit 0
