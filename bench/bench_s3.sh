#!/usr/bin/env bash
# Packs on S3 (issue 24): a one-node Ceph with radosgw on the loopback address
# (tests/integration/rgw.sh: a mon, one bluestore OSD on a sparse file, pools of size 1),
# against a local store, in one run.
#   bash bench/bench_s3.sh [BUILD_DIR]     (as root; ceph-mon ceph-osd radosgw installed)
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

t0=$(now)
"$DFS_BIN/defrag-ingest" --progress=never --store "$W/local" --name s "$W/src" >/dev/null
t1=$(now)
tl=$(secs "$t0" "$t1")
t0=$(now)
"$DFS_BIN/defrag-ingest" --progress=never --store "$W/s3" --name s --packs s3://bench/s \
	--s3-endpoint "$DFS_S3_ENDPOINT" "$W/src" >/dev/null
t1=$(now)
ts=$(secs "$t0" "$t1")
echo "1. ingest: local $tl s ($(mbs "$bytes" "$tl") MB/s), into RGW $ts s ($(mbs "$bytes" "$ts") MB/s)"

lp=$(find "$W/local/packs" -name '*.pack' | wc -l)
lb=$(find "$W/local/packs" -name '*.pack' -printf '%s\n' | awk '{s+=$1}END{print s}')
list=$(curl -sS --aws-sigv4 "aws:amz:us-east-1:s3" \
	--user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
	-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$DFS_S3_ENDPOINT/bench?list-type=2&prefix=s%2F")
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
