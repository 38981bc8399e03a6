#!/usr/bin/env bash
# bench_tar_cuts.sh - what the cuts around tar members (ingest/tarcut.c) save and cost
# (issue 20, store size): stored bytes (defrag-stat --json, du -sb of the store), chunks,
# and ingest time, for a base build and this build at several --tar-floor values, in one
# run, on:
#   peers    the small corpus of bench/bench_peers.sh (its corpus step, run as it is
#            there: three drives, include.tar beside include/, doc.tar.gz)
#   include  a copy of /usr/include and a tar of it beside it
#   small    20,000 generated text files of 50 B .. 6 KB, and a tar of them beside them
#            (the worst case for small members: chunk count and record overhead)
#   notar    /usr/share/doc and /usr/bin, no tar in them (the cost when there is none)
#
#   bash bench/bench_tar_cuts.sh BASE_BIN NEW_BIN [FLOORS [CORPORA]]
#     BASE_BIN, NEW_BIN  directories holding defrag-ingest and defrag-stat
#     FLOORS             --tar-floor values for NEW_BIN (default "0 1 2049 32768")
#     CORPORA            default "peers include small notar"
#   PEERS_SIZE=medium: bench_peers.sh's medium corpus instead of its small one.
#   SQUASHFS=1: also mksquashfs -comp zstd (as bench_peers.sh runs it) of peers and include.
# Prints one table row per (corpus, build): corpus | build | ingest s (wall) | user+sys s
# | chunks | unique chunk MB | stored MB (packs' chunk bytes) | store du MB.
# The sources are read from the page cache (each is read once before the runs).
set -eu
export DEFRAGFS_ALLOW_SAME_FILESYSTEM=1
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
base=$(cd "$1" && pwd)
new=$(cd "$2" && pwd)
floors=${3:-0 1 2049 32768}
corpora=${4:-peers include small notar}
w=$(mktemp -d "${TMPDIR:-/tmp}/defragfs-bench-tar.XXXXXX")
trap 'rm -rf "$w"' EXIT
say() { echo "bench_tar_cuts: $*" >&2; }

# peers: the corpus step of bench_peers.sh, as written there (small)
size=${PEERS_SIZE:-small}
d=$w/peers
sed -n '/^# ---- the corpus/,/^drives=/p' "$src/bench/bench_peers.sh" | sed 's/^d=\$w\/drives$//' \
	>"$w/corpus.sh"
(. "$w/corpus.sh")
mkdir -p "$w/include" "$w/small/tree"
cp -a /usr/include "$w/include/include"
tar -C "$w/include" -cf "$w/include/include.tar" include
python3 - "$w/small/tree" <<'PY'
import os, random, sys
r = random.Random(20)
words = [("".join(r.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(r.randint(2, 9))))
         for _ in range(5000)]
for i in range(20000):
    dd = os.path.join(sys.argv[1], "d%03d" % (i // 200))
    os.makedirs(dd, exist_ok=True)
    n = int(50 * (120 ** r.random()))		# 50 B .. 6 KB, log-uniform
    text, size = [], 0
    while size < n:
        text.append(r.choice(words))
        size += len(text[-1]) + 1
    with open(os.path.join(dd, "f%05d.txt" % i), "w") as f:
        f.write(" ".join(text)[:n])
PY
tar -C "$w/small" -cf "$w/small/tree.tar" tree
mkdir -p "$w/notar"
for c in peers include small; do
	tar -C "$w/$c" -cf - . | wc -c >/dev/null	# page cache warm
done
tar -cf - /usr/share/doc /usr/bin 2>/dev/null | wc -c >/dev/null

run() {	# run CORPUS LABEL BIN [FLOOR]: one fresh store, the corpus's sources ingested
	local c=$1 label=$2 bin=$3 fl=${4:-} st=$w/store t0 t1 args=() rc=0
	rm -rf "$st"
	[ -n "$fl" ] && args=(--tar-floor "$fl")
	case $c in
	peers) srcs=("$w/peers/nvme1" "$w/peers/nvme2" "$w/peers/hdd0") ;;
	notar) srcs=(/usr/share/doc /usr/bin) ;;
	*) srcs=("$w/$c") ;;
	esac
	sync
	/usr/bin/time -f "%e %U %S" -o "$w/time" "$bin/defrag-ingest" --store "$st" \
		"${args[@]}" "${srcs[@]}" >/dev/null 2>"$w/ingest.err" || rc=$?
	[ $rc -eq 0 ] || { cat "$w/ingest.err" >&2; say "$c $label: ingest exit $rc"; }
	"$bin/defrag-stat" --store "$st" --json >"$w/stat.json"
	python3 - "$c" "$label" "$w/time" "$w/stat.json" "$(du -sb "$st" | cut -f1)" <<'PY'
import json, sys
c, label, tf, sf, du = sys.argv[1:6]
e, u, s = (float(x) for x in open(tf).read().split()[-3:])
j = json.load(open(sf))
print("| %s | %s | %.1f | %.1f | %d | %.1f | %.1f | %.1f |" % (
    c, label, e, u + s, j["chunks"], j["unique_bytes"] / 1e6, j["stored_bytes"] / 1e6,
    int(du) / 1e6))
PY
}

echo "| corpus | build | ingest s | user+sys s | chunks | unique chunk MB | stored MB |" \
	"store du MB |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
squash() {	# squash CORPUS: the image's size, as a row
	local t
	rm -f "$w/image.sqfs"
	/usr/bin/time -f "%e %U %S" -o "$w/time" mksquashfs "$w/$1" "$w/image.sqfs" -comp zstd \
		-quiet -no-progress >/dev/null
	t=$(tail -1 "$w/time")
	echo "| $1 | squashfs -comp zstd | ${t%% *} |" \
		"$(echo "$t" | awk '{ print $2 + $3 }') | - | - | - |" \
		"$(du -sb "$w/image.sqfs" | awk '{ printf "%.1f", $1 / 1e6 }') |"
	rm -f "$w/image.sqfs"
}

for c in $corpora; do
	if [ "${SQUASHFS:-0}" = 1 ] && { [ $c = peers ] || [ $c = include ]; }; then
		squash $c
	fi
	run $c base "$base"
	for fl in $floors; do
		run $c "floor $fl" "$new" "$fl"
	done
done
