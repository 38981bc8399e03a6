#!/usr/bin/env bash
# The dry run's answer (issue 23, item 4): "would add N to the store" against what the
# ingest then adds, for a second drive (a later backup of the first) after the first.
#   bash bench/bench_dry_run.sh [BUILD_DIR]
# Corpus (page cache warm): the drives of bench_align.sh, from this machine's trees:
#   d1  /usr/share/doc, /usr/include, /usr/share/perl5 and /usr/bin (text and binaries;
#       most text files small, stored inline in their records)
#   d2  a later backup of d1 under backup-2024/ (1% of the .h files edited, 1% of the
#       doc/ folders removed), plus a copy of perl5 under another name: it aligns to d1
# Steps, into one new store: a dry run of d1 (no store yet), the ingest of d1, a dry run
# of d2, the ingest of d2. For each dry run: would_add_bytes (content, metadata) against
# the real growth of the committed pack bytes (defrag-stat's pack_bytes).
set -eu
export DEFRAGFS_ALLOW_SAME_FILESYSTEM=1	# the corpus sits beside the store
build=${1:-build}
bin=$(cd "$build/bin" && pwd)
w=$(mktemp -d /tmp/defragfs-bench-dry.XXXXXX)
trap 'rm -rf "$w"' EXIT
mkdir -p "$w/d1" "$w/d2"
cp -a /usr/share/doc "$w/d1/doc"
cp -a /usr/include "$w/d1/include"
[ -d /usr/share/perl5 ] && cp -a /usr/share/perl5 "$w/d1/perl5"
cp -a /usr/bin "$w/d1/bin"
cp -a "$w/d1/." "$w/d2/backup-2024"
find "$w/d2/backup-2024/include" -name '*.h' | awk 'NR % 100 == 0' |
	while read -r f; do echo "/* edited */" >>"$f"; done
find "$w/d2/backup-2024/doc" -mindepth 1 -maxdepth 1 -type d | awk 'NR % 100 == 0' |
	xargs -r rm -rf
[ -d /usr/share/perl5 ] && cp -a /usr/share/perl5 "$w/d2/perl-libs"
echo "d1: $(find "$w/d1" -type f | wc -l) files, $(du -sb "$w/d1" | cut -f1) bytes;" \
	"d2: $(find "$w/d2" -type f | wc -l) files"
s=$w/store
packs() {
	if [ -d "$s/index" ]; then
		"$bin/defrag-stat" --store "$s" --json |
			python3 -c 'import json,sys; print(json.load(sys.stdin)["pack_bytes"])'
	else
		echo 0
	fi
}
# the store's average metadata per file (the estimate before the per-file record):
# pack bytes that are not chunk records, over the files stored
avg_meta() {
	"$bin/defrag-stat" --store "$s" --json | python3 -c 'import json,sys
j = json.load(sys.stdin)
files = sum(x["files"] for x in j["sources"])
print((j["pack_bytes"] - j["stored_bytes"] - j["chunks"] * 56) / files)'
}
for d in d1 d2; do
	"$bin/defrag-ingest" --store "$s" --dry-run --json "$w/$d" >"$w/dry-$d.json"
	before=$(packs)
	avg=0
	[ "$before" -gt 0 ] && avg=$(avg_meta)
	"$bin/defrag-ingest" --store "$s" --progress=never "$w/$d" >/dev/null
	after=$(packs)
	python3 - "$w/dry-$d.json" "$d" $((after - before)) "$avg" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
real, avg = int(sys.argv[3]), float(sys.argv[4])
w = j["would_add_bytes"]
print("%s: would add %d (content %d, metadata %d, of which new contents' %s); "
      "real growth %d; error %+.1f%%" % (sys.argv[2], w, j["new_stored_bytes"],
      j["would_add_metadata_bytes"], j.get("new_content_metadata_bytes"), real,
      100.0 * (w - real) / real))
if avg:
    old = j["new_stored_bytes"] + avg * j["files"]
    print("%s: with the store's average metadata per file (%.0f B) it would say %d: "
          "error %+.1f%%" % (sys.argv[2], avg, old, 100.0 * (old - real) / real))
PY
done
