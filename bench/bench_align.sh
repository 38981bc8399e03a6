#!/usr/bin/env bash
# Copy alignment (issue 18): what it costs an ingest, and what it does to the organized
# tree's redundancy.
#   bash bench/bench_align.sh [BUILD_DIR] [OLD_BUILD_DIR]
# Corpus (page cache warm): three "drives" with the duplication of real backups, built
# from this machine's trees:
#   d1  /usr/share/doc, /usr/include, /usr/share/perl5 and /usr/bin (text and binaries)
#   d2  a later backup of d1 under backup-2024/ (1% of the .h files edited, 1% of the
#       doc/ folders removed), plus a copy of perl5 under another name
#   d3  an old copy of d1's doc/ as old-doc/, and a tarball of it
#   d4  a small drive: a copy of 20 of d1's doc folders (an append build into a full store)
# then d1 again with one file added (one source changed: a full build).
# Each drive is ingested in turn into one store with defrag-ingest --json; the figures:
#   - organize_align_seconds / the ingest's wall time, per drive: what alignment adds,
#     and what it read (directories of views read, signatures loaded from the index,
#     loaded directories listed to verify a match, sources whose alignments it replayed);
#   - the index's size (index/, and its table files after a flush) at the end: with
#     BUILD_DIR it holds alignment's records, with OLD_BUILD_DIR (before them) it does not
#     (both vary with RocksDB's compaction state); bench_index_size: the bytes of its keys
#     and values, the derived records apart;
#   - the organized tree's apparent size / its distinct content (by user.defrag.hash),
#     through a fresh mount, with BUILD_DIR and, if given, OLD_BUILD_DIR (a build
#     without alignment) on the same corpus.
set -eu
# the corpora sit beside the stores, on their filesystem (defrag-ingest(8), Guards)
export DEFRAGFS_ALLOW_SAME_FILESYSTEM=1
build=${1:-build}
old=${2:-}
bin=$(cd "$build/bin" && pwd)
w=$(mktemp -d /tmp/defragfs-bench-align.XXXXXX)
cleanup() {
	mountpoint -q "$w/mnt" 2>/dev/null && fusermount3 -u "$w/mnt"
	rm -rf "$w"
}
trap cleanup EXIT
d=$w/drives
mkdir -p "$d/d1" "$d/d2" "$d/d3" "$w/mnt"
cp -a /usr/share/doc "$d/d1/doc"
cp -a /usr/include "$d/d1/include"
[ -d /usr/share/perl5 ] && cp -a /usr/share/perl5 "$d/d1/perl5"
cp -a /usr/bin "$d/d1/bin"
cp -a "$d/d1/." "$d/d2/backup-2024"
find "$d/d2/backup-2024/include" -name '*.h' | awk 'NR % 100 == 0' |
	while read -r f; do echo "/* edited */" >>"$f"; done
find "$d/d2/backup-2024/doc" -mindepth 1 -maxdepth 1 -type d | awk 'NR % 100 == 0' |
	xargs -r rm -rf
[ -d /usr/share/perl5 ] && cp -a /usr/share/perl5 "$d/d2/perl-libs"
cp -a "$d/d1/doc" "$d/d3/old-doc"
tar -C "$d/d1" -cf "$d/d3/doc-backup.tar" doc
mkdir -p "$d/d4/some-docs"
find "$d/d1/doc" -mindepth 1 -maxdepth 1 -type d | LC_ALL=C sort | head -n 20 |
	xargs -r cp -a -t "$d/d4/some-docs"
echo "corpus: $(du -sh --apparent-size "$d" | cut -f1), $(find "$d" -type f | wc -l) files"

redundancy() { # redundancy BIN LABEL: ingest the three drives, mount, measure
	local b=$1 label=$2 s=$w/store-$2 x step
	for step in d1 d2 d3 d4 d1+; do
		x=${step%+}
		if [ "$step" = d1+ ]; then
			echo "one more file" >"$d/d1/doc/added-later.txt"
		fi
		sync
		"$b/defrag-ingest" --store "$s" --progress=never --json "$d/$x" >"$w/$label-$x.json"
		python3 - "$w/$label-$x.json" "$label" "$step" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
a = j.get("organize_align_seconds")
line = "%-5s %s: ingest %.2f s, organize %.2f s" % (sys.argv[2], sys.argv[3],
       j["elapsed_seconds"], j.get("organize_seconds", 0))
if a is not None:
    line += ", alignment %.3f s (%.1f%% of the ingest), %d alignments" % (
        a, 100 * a / j["elapsed_seconds"], len(j.get("alignments", [])))
if "organize_align_dirs_read" in j:
    line += "; dirs read %d, loaded %d, listed %d, sources replayed %d" % (
        j["organize_align_dirs_read"], j["organize_align_dirs_loaded"],
        j["organize_align_dirs_listed"], j["organize_align_replayed"])
print(line)
PY
	done
	rm -f "$d/d1/doc/added-later.txt"
	echo "$label index: $(du -sb "$s/index" | cut -f1) bytes in index/, $(find "$s/index" \
		-maxdepth 1 -name '*.sst' -printf '%s\n' | awk '{ t += $1 } END { print t + 0 }') in its table files"
	"$bin/bench_index_size" "$s" | tail -n 2 | sed "s/^/$label index: /"
	"$b/defragfs" "$s" "$w/mnt"
	python3 "$(dirname "$0")/redundancy.py" "$w/mnt" "$label"
	fusermount3 -u "$w/mnt"
	rm -rf "$s"
}

redundancy "$bin" new
[ -n "$old" ] && redundancy "$(cd "$old/bin" && pwd)" old
exit 0
