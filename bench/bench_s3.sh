#!/usr/bin/env bash
# Packs on S3 (issue 24): a one-node Ceph with radosgw on the loopback address
# (tests/integration/rgw.sh: a mon, one bluestore OSD on a sparse file, pools of size 1),
# against a local store, in one run.
#   bash bench/bench_s3.sh [BUILD_DIR [BASE_BUILD_DIR [ROUNDS]]]
#                                          (as root; ceph-mon ceph-osd radosgw installed)
# With BASE_BUILD_DIR (another build, e.g. of the commit before a change), figure 1 is
# ROUNDS (default 3) rounds of: local ingest, ingest into RGW with BUILD_DIR, the same with
# BASE_BUILD_DIR, alternating which goes first (the machine is shared: noise hits both);
# then figures 2 and 3 for BUILD_DIR as usual.
# Corpus (page cache warm): /usr/include and /usr/share/doc copied, and 128 MiB of
# incompressible bytes (4 files of 32 MiB).
# Figures:
#   1. ingest into a local store and into RGW (time, MB/s of the corpus);
#   2. bytes uploaded (the sum of the objects' sizes: each pack is put once) against the
#      local store's pack bytes, and the number of packs of each;
#   3. a sequential read of every file through the mount (tar to /dev/null of
#      /.sources): the local store; the S3 store with an empty pack cache (cold); the
#      same again with the cache the first read filled (warm), on a fresh mount so the
#      kernel and chunk caches are empty; and the bytes the cache fetched.
set -eu
build=${1:-build}
DFS_BIN=$(cd "$build/bin" && pwd)
export DFS_BIN
export DEFRAGFS_ALLOW_SAME_FILESYSTEM=1	# the corpus sits beside the store
W=$(mktemp -d /tmp/defragfs-bench-s3.XXXXXX)
export W
_dfs_pass=0 _dfs_fail=0
_dfs_pids=()
. "$(dirname "$0")/../tests/integration/lib.sh"
. "$(dirname "$0")/../tests/integration/rgw.sh"
trap '_dfs_cleanup' EXIT
dfs_rgw_skip_unless_installed
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", b-a}'; }
mbs() { awk -v n="$1" -v t="$2" 'BEGIN{printf "%.1f", n/1e6/t}'; }

mkdir -p "$W/src" "$W/mnt"
cp -a /usr/include "$W/src/include"
cp -a /usr/share/doc "$W/src/doc"
mkdir -p "$W/src/bin"
for i in 1 2 3 4; do head -c 32M /dev/urandom >"$W/src/bin/r$i.bin"; done
bytes=$(du -sb --apparent-size "$W/src" | cut -f1)
echo "corpus: $(find "$W/src" -type f | wc -l) files, $bytes bytes"

t0=$(now)
dfs_rgw_start "$W/ceph"
echo "radosgw ready in $(secs "$t0" "$(now)") s ($(cat /proc/$(pgrep -n radosgw)/status | awk '/VmRSS/{print $2/1024}') MiB RSS radosgw)"

ingest_s3() {	# ingest_s3 BIN STORE PREFIX: seconds of an ingest into s3://bench/PREFIX
	local t0 t1
	t0=$(now)
	"$1/defrag-ingest" --progress=never --store "$2" --name s --packs "s3://bench/$3" \
		--s3-endpoint "$DFS_S3_ENDPOINT" "$W/src" >/dev/null
	t1=$(now)
	secs "$t0" "$t1"
}
ingest_local() {	# ingest_local STORE: seconds of an ingest into a local store
	local t0 t1
	t0=$(now)
	"$DFS_BIN/defrag-ingest" --progress=never --store "$1" --name s "$W/src" >/dev/null
	t1=$(now)
	secs "$t0" "$t1"
}
if [ -n "${2:-}" ]; then
	BASE_BIN=$(cd "$2/bin" && pwd)
	for r in $(seq 1 "${3:-3}"); do
		rm -rf "$W/local"
		tl=$(ingest_local "$W/local")
		if [ $((r % 2)) -eq 1 ]; then
			tn=$(ingest_s3 "$DFS_BIN" "$W/s3n$r" "n$r")
			tb=$(ingest_s3 "$BASE_BIN" "$W/s3b$r" "b$r")
		else
			tb=$(ingest_s3 "$BASE_BIN" "$W/s3b$r" "b$r")
			tn=$(ingest_s3 "$DFS_BIN" "$W/s3n$r" "n$r")
		fi
		echo "1. round $r: local $tl s ($(mbs "$bytes" "$tl") MB/s), into RGW: this" \
			"build $tn s ($(mbs "$bytes" "$tn") MB/s), base build $tb s" \
			"($(mbs "$bytes" "$tb") MB/s)"
		[ "$r" -eq 1 ] || rm -rf "$W/s3n$r" "$W/s3b$r"
	done
	mv "$W/s3n1" "$W/s3"
	prefix=n1
else
	tl=$(ingest_local "$W/local")
	ts=$(ingest_s3 "$DFS_BIN" "$W/s3" s)
	prefix=s
	echo "1. ingest: local $tl s ($(mbs "$bytes" "$tl") MB/s), into RGW $ts s ($(mbs "$bytes" "$ts") MB/s)"
fi

lp=$(find "$W/local/packs" -name '*.pack' | wc -l)
lb=$(find "$W/local/packs" -name '*.pack' -printf '%s\n' | awk '{s+=$1}END{print s}')
list=$(curl -sS --aws-sigv4 "aws:amz:us-east-1:s3" \
	--user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
	-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$DFS_S3_ENDPOINT/bench?list-type=2&prefix=$prefix%2F")
sp=$(echo "$list" | grep -o '<Size>[0-9]*' | wc -l)
sb=$(echo "$list" | grep -o '<Size>[0-9]*' | cut -c7- | awk '{s+=$1}END{print s}')
echo "2. bytes uploaded $sb in $sp objects; local store's packs $lb bytes in $lp files" \
	"($(awk -v a="$sb" -v b="$lb" 'BEGIN{printf "%+.2f%%", (a-b)*100/b}'))"

readall() {	# readall STORE MNT [OPTS]: seconds of a tar of every file of /.sources
	local t0 t1
	dfs_mount "$1" "$2" "${3:-}"
	t0=$(now)
	tar -C "$2/.sources" -cf - . | cat >/dev/null
	t1=$(now)
	dfs_umount "$2"
	secs "$t0" "$t1"
}
rl=$(readall "$W/local" "$W/mnt")
rc=$(readall "$W/s3" "$W/mnt" "pack_cache=$W/pc,pack_cache_size=4G")
cached=$(du -sb "$W/pc" | cut -f1)
rw=$(readall "$W/s3" "$W/mnt" "pack_cache=$W/pc,pack_cache_size=4G")
echo "3. read everything: local $rl s ($(mbs "$bytes" "$rl") MB/s); S3 cold $rc s" \
	"($(mbs "$bytes" "$rc") MB/s); S3 warm $rw s ($(mbs "$bytes" "$rw") MB/s);" \
	"pack cache after the cold read $cached bytes"
dfs_rgw_stop
