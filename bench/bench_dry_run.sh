#!/usr/bin/env bash
# The dry run's answer (issue 23, item 4): "would add N to the store" against what the
# ingest then adds, on a backup of a backup.
#   bash bench/bench_dry_run.sh [BUILD_DIR]
# Corpus (page cache warm), from this machine's trees:
#   d1  /usr/share/doc and /usr/include (text: most files small, many stored inline)
#   d2  a later backup of d1 (1% of the .h files edited) plus /usr/share/perl5
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
cp -a "$w/d1/." "$w/d2/"
find "$w/d2/include" -name '*.h' | awk 'NR % 100 == 0' |
	while read -r f; do echo "/* edited */" >>"$f"; done
[ -d /usr/share/perl5 ] && cp -a /usr/share/perl5 "$w/d2/perl5"
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
for d in d1 d2; do
	"$bin/defrag-ingest" --store "$s" --dry-run --json "$w/$d" >"$w/dry-$d.json"
	before=$(packs)
	"$bin/defrag-ingest" --store "$s" --progress=never "$w/$d" >/dev/null
	after=$(packs)
	python3 - "$w/dry-$d.json" "$d" $((after - before)) <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
real = int(sys.argv[3])
w = j["would_add_bytes"]
print("%s: would add %d (content %d, metadata %d, of which new contents' %s); "
      "real growth %d; error %+.1f%%" % (sys.argv[2], w, j["new_stored_bytes"],
      j["would_add_metadata_bytes"], j.get("new_content_metadata_bytes"), real,
      100.0 * (w - real) / real))
PY
done
