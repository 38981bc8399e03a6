#!/usr/bin/env bash
# bench_mount.sh - read performance through a defragfs mount, as ratios against the same
# commands on the native source directory measured in the same run (the machine is
# shared and noisy: absolute figures drift, ratios less).
#
#   bash bench/bench_mount.sh [BUILD_DIR] [SIZE_MB] [NFILES] [CACHE] [NRAND]
#     BUILD_DIR  build tree holding bin/defrag-ingest and bin/defragfs (default: build)
#     SIZE_MB    size of each large file (default 1024)
#     NFILES     files of the small-file tree (default 1000000)
#     CACHE      the daemon's -o cache_size (default 256M, the daemon's default)
#     NRAND      random 4 KiB reads per file (default 20000)
#   Needs root (or fuse access) and /dev/fuse. Work data and mount point in a mktemp dir
#   under ${TMPDIR:-/tmp}; always unmounted and removed on exit.
#   BENCH_TREE_DIR=DIR (optional): reuse DIR/small (the tree) and DIR/s2 (a store into
#   which DIR/small was already ingested, e.g. a BENCH_KEEP=1 bench_ingest.sh work dir)
#   instead of generating and ingesting the tree (1M small files take many minutes);
#   DIR is only read, never removed.
#   BENCH_MOUNT_OPTS=OPTS (optional): more -o options for every mount (default
#   "default_permissions", as in the recommended fstab line: the kernel then checks modes
#   and caches the POSIX ACL answers, which ls -l asks for each file; set it empty to
#   measure the mount without, where every ACL query is a FUSE round trip).
#
# Data: one SIZE_MB compressible file (bench_gen.py text: /usr/include text, unique
# chunks), one SIZE_MB file of /dev/urandom, and an NFILES small-file tree
# (bench_gen.py tree, 1000 files per directory), ingested as the sources text and rand
# (store s) and small (store s2), read back as MNT/.sources/NAME. Before every mount the
# store's files are read once (warm page cache); every session is a fresh daemon (cold
# chunk cache, cold kernel dentry/attr/page caches of the mount), run with -f as in
# tests/integration/lib.sh.
# Measured (native = the same command on the ingested source directory, page cache warm):
#   sequential   `cat FILE >/dev/null`, first read on a fresh mount, then a second read
#   random       bench_randread.py: NRAND random 4 KiB preads, p50/p99 latency (fresh
#                mount; digests of mount and native must match)
#   tree         find, ls -lR, du -s over the small tree: first run on a fresh mount
#                (cold) and a second run (warm), native: second of two runs (warm)
#   daemon RSS   VmHWM of the daemon at the end of each session, against CACHE + 64 MiB
# Prints markdown tables on stdout; progress on stderr.
set -eu
# the corpora sit beside the stores, on their filesystem (defrag-ingest(8), Guards)
export DEFRAGFS_ALLOW_SAME_FILESYSTEM=1
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$src/build}
mb=${2:-1024}
nfiles=${3:-1000000}
cache=${4:-256M}
nrand=${5:-20000}
mopts=${BENCH_MOUNT_OPTS-default_permissions}
bin=$(cd "$build/bin" && pwd)
for b in defrag-ingest defragfs; do
	[ -x "$bin/$b" ] || { echo "missing $bin/$b" >&2; exit 1; }
done
w=$(mktemp -d "${TMPDIR:-/tmp}/defragfs-benchm.XXXXXX")
mnt=$w/mnt
pid=
cleanup() {
	if mountpoint -q "$mnt" 2>/dev/null; then
		fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
	fi
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		sleep 1
		kill "$pid" 2>/dev/null || true
	fi
	rm -rf "$w"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
say() { echo "[$(date +%T)] $*" >&2; }
mkdir -p "$mnt"

say "generating 2 x $mb MiB in $w"
tar -cf "$w/seed.tar" /usr/include 2>/dev/null || true
python3 "$src/bench/bench_gen.py" text "$w/seed.tar" "$w/text" "$mb" 1
rm -f "$w/seed.tar"
mkdir -p "$w/rand"
head -c $((mb * 1048576)) /dev/urandom >"$w/rand/part-0.bin"
say "ingesting"
for s in text rand; do
	"$bin/defrag-ingest" --progress=never --store "$w/s" "$w/$s" >/dev/null
done
bytes=$((mb * 1048576))

# tm CMD... : T = wall seconds of CMD (stdout to /dev/null)
tm() {
	local t0 t1
	t0=$(date +%s.%N)
	"$@" >/dev/null
	t1=$(date +%s.%N)
	T=$(printf '%.3f' "$(echo "$t1 - $t0" | bc -l)")
}
mbs() { echo "scale=0; $1 / 1048576 / $2" | bc -l; }
ratio() { printf '%.2f' "$(echo "scale=4; $1 / $2" | bc -l)"; }
hwm_max=0
mount_fs() {	# mount_fs STORE
	local i
	find "$1" -type f -exec cat {} + >/dev/null	# store in the page cache
	"$bin/defragfs" "$1" "$mnt" -f -o "cache_size=$cache${mopts:+,$mopts}" >>"$w/daemon.log" 2>&1 &
	pid=$!
	for i in $(seq 1 300); do
		mountpoint -q "$mnt" && return 0
		kill -0 "$pid" 2>/dev/null || { cat "$w/daemon.log" >&2; exit 1; }
		sleep 0.1
	done
	echo "defragfs did not mount within 30 s" >&2
	exit 1
}
umount_fs() {	# records the session's VmHWM (KiB) in HWM and hwm_max
	local i
	HWM=$(awk '/^VmHWM/ { print $2 }' "/proc/$pid/status")
	[ "$HWM" -gt "$hwm_max" ] && hwm_max=$HWM
	fusermount3 -u "$mnt"
	for i in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "daemon $pid still running 10 s after umount" >&2
		exit 1
	fi
	wait "$pid" || { echo "daemon exited with $?" >&2; exit 1; }
	pid=
}
rr() {	# rr FILE -> RR="p50 p99 mean max digest"
	RR=$(python3 "$src/bench/bench_randread.py" "$1" "$nrand" 7)
}

say "native baselines"
cat "$w/text/part-0.txt" "$w/rand/part-0.bin" >/dev/null
tm cat "$w/text/part-0.txt"; n_cat_text=$T
tm cat "$w/rand/part-0.bin"; n_cat_rand=$T
rr "$w/text/part-0.txt"; n_rr_text=$RR
rr "$w/rand/part-0.bin"; n_rr_rand=$RR
declare -A n_tree m_cold m_warm hwm
tree_cmd() {	# tree_cmd OP DIR
	case $1 in
	find) find "$2" ;;
	ls) ls -lR "$2" ;;
	du) du -s "$2" ;;
	esac
}

say "mount session 1: sequential reads"
mount_fs "$w/s"
tm cat "$mnt/.sources/text/part-0.txt"; m_cat_text=$T
tm cat "$mnt/.sources/text/part-0.txt"; m_cat_text2=$T
tm cat "$mnt/.sources/rand/part-0.bin"; m_cat_rand=$T
cmp -s "$mnt/.sources/text/part-0.txt" "$w/text/part-0.txt" || { echo "text differs" >&2; exit 1; }
umount_fs; hwm[seq]=$HWM

say "mount session 2: random reads"
mount_fs "$w/s"
rr "$mnt/.sources/text/part-0.txt"; m_rr_text=$RR
rr "$mnt/.sources/rand/part-0.bin"; m_rr_rand=$RR
umount_fs; hwm[rand]=$HWM
[ "${m_rr_text##* }" = "${n_rr_text##* }" ] || { echo "random reads: text digests differ" >&2; exit 1; }
[ "${m_rr_rand##* }" = "${n_rr_rand##* }" ] || { echo "random reads: rand digests differ" >&2; exit 1; }

say "generating and ingesting the file tree"
if [ -n "${BENCH_TREE_DIR:-}" ]; then
	tree=$BENCH_TREE_DIR/small tstore=$BENCH_TREE_DIR/s2
	nfiles=$(find "$tree" -type f | wc -l)
	say "reusing the $nfiles-file tree $tree and its store $tstore"
else
	tree=$w/small tstore=$w/s2
	python3 "$src/bench/bench_gen.py" tree "$tree" "$nfiles"
	"$bin/defrag-ingest" --progress=never --store "$tstore" "$tree" >/dev/null
fi
# The file-tree part comes after the sequential and random reads: right after generating,
# ingesting and walking 1,000,000 files, sequential reads through the mount ran at
# 0.4-0.5 GB/s instead of 1.1-1.9 (not writeback, not page cache misses: the daemon's
# CPU time per GiB grew by half; with 300,000 files it did not happen). Write back what
# the tree dirtied before walking it.
say "sync ($(awk '/^Dirty:/ { print int($2 / 1024) }' /proc/meminfo) MiB dirty)"
sync
say "native tree baselines"
for op in find ls du; do
	tm tree_cmd $op "$tree"
	tm tree_cmd $op "$tree"; n_tree[$op]=$T
done

for op in find ls du; do
	say "mount session: $op"
	mount_fs "$tstore"
	tm tree_cmd $op "$mnt/.sources/small"; m_cold[$op]=$T
	tm tree_cmd $op "$mnt/.sources/small"; m_warm[$op]=$T
	if [ $op = find ] && [ "$(find "$mnt/.sources/small" -type f | wc -l)" != "$nfiles" ]; then
		echo "the mounted tree does not have $nfiles files" >&2
		exit 1
	fi
	umount_fs; hwm[$op]=$HWM
done

lim=$(( $(numfmt --from=iec "$cache") / 1024 + 65536 ))
set -- $n_rr_text; nt50=$1 nt99=$2
set -- $m_rr_text; mt50=$1 mt99=$2
set -- $n_rr_rand; nr50=$1 nr99=$2
set -- $m_rr_rand; mr50=$1 mr99=$2
echo "| sequential read (cat) | native s | mount s | native MB/s | mount MB/s | mount / native speed |"
echo "|---|---|---|---|---|---|"
echo "| $mb MiB compressible, fresh mount (cold chunk cache) | $n_cat_text | $m_cat_text | $(mbs $bytes "$n_cat_text") | $(mbs $bytes "$m_cat_text") | $(ratio "$n_cat_text" "$m_cat_text") |"
echo "| same file, second read | $n_cat_text | $m_cat_text2 | $(mbs $bytes "$n_cat_text") | $(mbs $bytes "$m_cat_text2") | $(ratio "$n_cat_text" "$m_cat_text2") |"
echo "| $mb MiB incompressible, cold chunk cache | $n_cat_rand | $m_cat_rand | $(mbs $bytes "$n_cat_rand") | $(mbs $bytes "$m_cat_rand") | $(ratio "$n_cat_rand" "$m_cat_rand") |"
echo
echo "| random 4 KiB pread, $nrand reads, fresh mount | native p50 / p99 us | mount p50 / p99 us | p50 ratio | p99 ratio |"
echo "|---|---|---|---|---|"
echo "| compressible file | $nt50 / $nt99 | $mt50 / $mt99 | $(ratio "$mt50" "$nt50") | $(ratio "$mt99" "$nt99") |"
echo "| incompressible file | $nr50 / $nr99 | $mr50 / $mr99 | $(ratio "$mr50" "$nr50") | $(ratio "$mr99" "$nr99") |"
echo
echo "mount options: cache_size=$cache${mopts:+,$mopts}"
echo
echo "| $nfiles-file tree | native s (warm) | mount s, fresh mount | mount s, second run | cold ratio | warm ratio |"
echo "|---|---|---|---|---|---|"
for op in find ls du; do
	case $op in find) c="find" ;; ls) c="ls -lR" ;; du) c="du -s" ;; esac
	echo "| $c | ${n_tree[$op]} | ${m_cold[$op]} | ${m_warm[$op]} | $(ratio "${m_cold[$op]}" "${n_tree[$op]}") | $(ratio "${m_warm[$op]}" "${n_tree[$op]}") |"
done
echo
echo "| daemon peak RSS (VmHWM), cache_size=$cache | MiB |"
echo "|---|---|"
for s in seq rand find ls du; do
	echo "| session $s | $((hwm[$s] / 1024)) |"
done
echo "| limit: cache + 64 MiB | $((lim / 1024)) |"
