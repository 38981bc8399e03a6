#!/usr/bin/env bash
# bench_peers.sh - defragfs beside the tools a user would pick instead, on one corpus of
# backups of backups, in one run (issue 20): restic, borg, squashfs (mksquashfs +
# squashfuse) and casync, all from Debian, and the native directory.
#
#   bash bench/bench_peers.sh [BUILD_DIR] [SIZE]
#     BUILD_DIR  build tree holding bin/defrag-ingest and bin/defragfs (default: build)
#     SIZE       small (a smoke test of the harness: tens of MB, a minute or two) or
#                medium (about 2.5 GB of drives; about half an hour here). Default small.
#   PEERS_ROUNDS=N   every read step N times per tool (default 1), the tools taking turns;
#                the table gives the medians and the sequential reads of every round.
#   PEERS_SEQ_READS=N  the sequential step N times in each round (default 3; each a fresh
#                mount after dropping the caches): its median is over rounds x N reads,
#                since one cold read on this kind of host varies 2-6x.
#   Needs root, /dev/fuse, python3, and the Debian packages restic, borgbackup,
#   python3-pyfuse3 (borg mount), squashfs-tools, squashfuse, casync. Work data in a mktemp dir under ${TMPDIR:-/tmp},
#   unmounted and removed on exit.
#
# The corpus: three drives built from this machine's package trees and generated data,
# with the duplication of real backups:
#   nvme1  doc/ (/usr/share/doc), include/ (/usr/include), bin/ (/usr/bin, medium only),
#          models/model.bin (incompressible: the large file of the read steps), disk.img
#          (a sparse disk image), doc.tar.gz (a tarball beside its loose tree)
#   nvme2  backup-2024/: a later backup of nvme1 without models/ and disk.img, 1% of the
#          .h files edited, its doc/ moved to archive/doc-old/; llm/model.bin: the same
#          model file
#   hdd0   old-doc/: a copy of nvme1's doc/; include.tar: a tarball of include/
# Steps, per tool: "ingest" (defrag-ingest of the three drives into one store; restic
# backup and borg create of each drive into one repository; mksquashfs of the three into
# one image; casync make of the three into one index and chunk store), stored bytes (du of the store,
# repository or image), and these reads, each after `sync; echo 3 > drop_caches` and on a
# fresh mount (a new daemon):
#   find     find -type f over the whole tree (defragfs: the organized tree, each file
#            once; the peers: the three drives; native: the drives)
#   du       du -s over the same
#   tar      tar cf - of the same piped to wc -c: MB/s of the bytes tar read
#   seq      cat of nvme1's models/model.bin: MB/s
#   rand     bench_randread.py of that file (2000 random 4 KiB preads): p50 / p99 us
#   rss      the daemon's peak RSS (VmHWM) over the read steps, MiB, and per step
#            (find / du / tar / seq / rand: each step is a fresh daemon)
# The load average (1 min) is sampled every 30 s through the run: its range is printed.
# Every tool's view of each drive is compared with the drive (paths, sizes, and SHA-256 of
# every file in small; of every file of at most 1 MiB and of the model file in medium):
# "same" or the first difference. defragfs's view of a drive is MNT/.sources/NAME.
# Prints the table (absolute figures, and ratios to native) on stdout; progress on stderr.
set -eu
export DEFRAGFS_ALLOW_SAME_FILESYSTEM=1	# the corpus sits beside the stores
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$src/build}
size=${2:-small}
bin=$(cd "$build/bin" && pwd)
case $size in small|medium) ;; *) echo "SIZE is small or medium" >&2; exit 2 ;; esac
for t in restic borg mksquashfs squashfuse casync python3 fusermount3; do
	command -v $t >/dev/null || { echo "bench_peers: needs $t" >&2; exit 1; }
done
w=$(mktemp -d "${TMPDIR:-/tmp}/defragfs-bench-peers.XXXXXX")
m=$w/mnt
dpid=""
umount_all() {
	mountpoint -q "$m" && { fusermount3 -u "$m" 2>/dev/null || umount -l "$m"; }
	[ -n "$dpid" ] && wait "$dpid" 2>/dev/null
	dpid=""
	return 0
}
cleanup() {
	[ -z "${load_pid:-}" ] || kill "$load_pid" 2>/dev/null || true
	umount_all
	rm -rf "$w"
}
trap cleanup EXIT
mkdir -p "$m"
say() { echo "bench_peers: $*" >&2; }
export RESTIC_PASSWORD=bench BORG_PASSPHRASE="" BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes BORG_BASE_DIR=$w/borg-home

# ---- the corpus -------------------------------------------------------------------------
d=$w/drives
mkdir -p "$d/nvme1/models" "$d/nvme2" "$d/hdd0"
if [ "$size" = small ]; then
	mkdir -p "$d/nvme1/doc" "$d/nvme1/include"
	find /usr/share/doc -mindepth 1 -maxdepth 1 -type d | LC_ALL=C sort | head -n 40 |
		xargs -r cp -a -t "$d/nvme1/doc"
	find /usr/include -mindepth 1 -maxdepth 1 | LC_ALL=C sort | head -n 60 |
		xargs -r cp -a -t "$d/nvme1/include"
	model_mb=16
	img_mb=64
else
	cp -a /usr/share/doc "$d/nvme1/doc"
	cp -a /usr/include "$d/nvme1/include"
	cp -a /usr/bin "$d/nvme1/bin"
	model_mb=1024
	img_mb=4096
fi
head -c $((model_mb << 20)) /dev/urandom >"$d/nvme1/models/model.bin"
truncate -s $((img_mb << 20)) "$d/nvme1/disk.img"
for i in 0 1 2 3; do	# four 4 MiB extents of data in a sparse image
	head -c $((4 << 20)) /dev/urandom |
		dd of="$d/nvme1/disk.img" bs=1M seek=$((i * img_mb / 4)) conv=notrunc status=none
done
tar -C "$d/nvme1" -czf "$d/nvme1/doc.tar.gz" doc
mkdir -p "$d/nvme2/backup-2024/archive" "$d/nvme2/llm"
cp -a "$d/nvme1/doc" "$d/nvme1/include" "$d/nvme2/backup-2024/"
[ -d "$d/nvme1/bin" ] && cp -a "$d/nvme1/bin" "$d/nvme2/backup-2024/"
find "$d/nvme2/backup-2024/include" -name '*.h' | LC_ALL=C sort | awk 'NR % 100 == 0' |
	while read -r f; do echo "/* edited */" >>"$f"; done
mv "$d/nvme2/backup-2024/doc" "$d/nvme2/backup-2024/archive/doc-old"
cp -a "$d/nvme1/models/model.bin" "$d/nvme2/llm/model.bin"
cp -a "$d/nvme1/doc" "$d/hdd0/old-doc"
tar -C "$d/nvme1" -cf "$d/hdd0/include.tar" include
drives="nvme1 nvme2 hdd0"
corpus_bytes=$(du -s --apparent-size -B1 "$d" | cut -f1)
corpus_files=$(find "$d" -type f | wc -l)
say "corpus: $corpus_files files, $((corpus_bytes >> 20)) MiB apparent"

# ---- helpers ------------------------------------------------------------------------------
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }	# calc EXPR: arithmetic (no bc on a bare Debian)
elapsed() { calc "$(now) - $1"; }
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
waitmount() {	# waitmount PATH: up to 30 s
	for _ in $(seq 1 600); do
		mountpoint -q "$1" && [ -n "$(ls -A "$1" 2>/dev/null)" ] && return 0
		sleep 0.05
	done
	say "mount at $1 did not come up"
	return 1
}
hwm() {	# hwm PID: VmHWM in KiB (0 if gone)
	awk '/^VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0
}

# mount_tool TOOL [DRIVE]: a fresh daemon serving TOOL's tree at $m; $dpid its pid; $root
# the directory that holds the whole tree, $view the directory of DRIVE (if given)
mount_tool() {
	local t=$1 dr=${2:-}
	case $t in
	native)
		root=$d
		view=$d/$dr
		dpid=""
		return 0 ;;
	defragfs)
		"$bin/defragfs" "$w/defrag" "$m" -f -o ro 2>>"$w/daemon.log" &
		dpid=$!
		root=$m
		view=$m/.sources/$dr ;;
	restic)
		restic -r "$w/restic" mount --no-default-permissions "$m" >>"$w/daemon.log" 2>&1 &
		dpid=$!
		root=$m/tags
		view=$m/tags/$dr/latest ;;
	borg)
		(cd "$w" && exec borg mount -f "$w/borg" "$m") >>"$w/daemon.log" 2>&1 &
		dpid=$!
		root=$m
		view=$m/$dr/$dr ;;
	squashfs)
		squashfuse -f "$w/image.sqfs" "$m" 2>>"$w/daemon.log" &
		dpid=$!
		root=$m
		view=$m/$dr ;;
	casync)
		casync mount --store="$w/castore" "$w/all.caidx" "$m" >>"$w/daemon.log" 2>&1 &
		dpid=$!
		root=$m
		view=$m/$dr ;;
	esac
	waitmount "$m"
	# the daemon's process: restic and borg run theirs in the process started
	rss_pid=$dpid
}

# ---- ingest -------------------------------------------------------------------------------
(while :; do cut -d' ' -f1 /proc/loadavg >>"$w/load"; sleep 30; done) &
load_pid=$!
declare -A ING SIZE
say "ingest: defragfs"
t0=$(now)
"$bin/defrag-ingest" --store "$w/defrag" --progress=never "$d/nvme1" "$d/nvme2" "$d/hdd0" \
	>"$w/defrag-ingest.out"
ING[defragfs]=$(elapsed "$t0")
SIZE[defragfs]=$(du -sb "$w/defrag" | cut -f1)

say "ingest: restic"
restic init -q --repo "$w/restic"
t0=$(now)
for dr in $drives; do (cd "$d/$dr" && restic -q -r "$w/restic" backup --tag "$dr" .); done
ING[restic]=$(elapsed "$t0")
SIZE[restic]=$(du -sb "$w/restic" | cut -f1)

say "ingest: borg"
borg init -e none "$w/borg"
t0=$(now)
for dr in $drives; do (cd "$d" && borg create "$w/borg::$dr" "$dr"); done
ING[borg]=$(elapsed "$t0")
SIZE[borg]=$(du -sb "$w/borg" | cut -f1)

say "ingest: squashfs"
t0=$(now)
mksquashfs "$d" "$w/image.sqfs" -comp zstd -quiet -no-progress >/dev/null
ING[squashfs]=$(elapsed "$t0")
SIZE[squashfs]=$(du -sb "$w/image.sqfs" | cut -f1)

say "ingest: casync"
t0=$(now)
casync make --store="$w/castore" "$w/all.caidx" "$d" >/dev/null
ING[casync]=$(elapsed "$t0")
SIZE[casync]=$(( $(du -sb "$w/castore" | cut -f1) + $(wc -c <"$w/all.caidx") ))

say "ingest: native (cp -a)"
t0=$(now)
cp -a "$d" "$w/copy"
sync -f "$w/copy"
ING[native]=$(elapsed "$t0")
SIZE[native]=$(du -sb "$w/copy" | cut -f1)
rm -rf "$w/copy"

# ---- the same tree and bytes --------------------------------------------------------------
# listing DIR: one line per file, "path size sha256" (sha256 "-" for files not hashed)
listing() {
	python3 - "$1" "$size" <<'PY'
import hashlib, os, sys
root, size = sys.argv[1], sys.argv[2]
out = []
for dp, dns, fns in os.walk(root):
    dns.sort()
    for fn in sorted(fns):
        p = os.path.join(dp, fn)
        if not os.path.isfile(p) or os.path.islink(p):
            continue
        st = os.stat(p)
        rel = os.path.relpath(p, root)
        h = "-"
        if size == "small" or st.st_size <= (1 << 20) or rel.endswith("model.bin"):
            d = hashlib.sha256()
            with open(p, "rb") as f:
                for b in iter(lambda: f.read(1 << 20), b""):
                    d.update(b)
            h = d.hexdigest()
        out.append("%s %d %s" % (rel, st.st_size, h))
print("\n".join(out))
PY
}
declare -A SAME
for dr in $drives; do listing "$d/$dr" >"$w/want-$dr"; done
for t in defragfs restic borg squashfs casync; do
	SAME[$t]=same
	for dr in $drives; do
		mount_tool "$t" "$dr"
		listing "$view" >"$w/got-$t-$dr"
		umount_all
		if ! cmp -s "$w/want-$dr" "$w/got-$t-$dr"; then
			SAME[$t]="differs ($dr: $(diff "$w/want-$dr" "$w/got-$t-$dr" | sed -n 2p |
				cut -c1-60))"
			break
		fi
	done
	say "$t: each drive's view ${SAME[$t]}"
done

# ---- reads, cold ----------------------------------------------------------------------------
# PEERS_ROUNDS=N: every read step N times per tool, the tools in turn (the order reversed
# every other round), and the medians in the table: one cold read on a shared host can
# be off by 2x (the host's cache of the VM's disk).
rounds=${PEERS_ROUNDS:-1}
case $rounds in '' | *[!0-9]* | 0) echo "PEERS_ROUNDS: a positive number" >&2; exit 2 ;; esac
seq_reads=${PEERS_SEQ_READS:-3}
case $seq_reads in '' | *[!0-9]* | 0) echo "PEERS_SEQ_READS: a positive number" >&2; exit 2 ;; esac
declare -A FIND DU TAR SEQ RAND RSS STEPRSS FINDS DUS TARS SEQS P50S P99S STEPK
model_bytes=$((model_mb << 20))
tools="native defragfs squashfs borg restic casync"
read_steps() {	# read_steps TOOL: one round of the read steps, appended to the lists
	local t=$1 i=0 s n
	step() {	# a fresh mount, caches dropped; sets $root $view
		mount_tool "$t" nvme1
		drop
	}
	end_step() {
		local k=0
		[ -n "$dpid" ] && k=$(hwm "$rss_pid")
		i=$((i + 1))
		[ "${k:-0}" -gt "${STEPK[$t,$i]:-0}" ] && STEPK[$t,$i]=$k
		umount_all
	}
	step; t0=$(now); find "$root" -type f | wc -l >/dev/null; s=$(elapsed "$t0"); end_step
	FINDS[$t]+=" $s"
	step; t0=$(now); du -s "$root" >/dev/null; s=$(elapsed "$t0"); end_step
	DUS[$t]+=" $s"
	step; t0=$(now); n=$(tar -C "$root" -cf - . 2>/dev/null | wc -c); s=$(elapsed "$t0")
	end_step
	TARS[$t]+=" $(calc "$n / $s / 1000000")"
	for _ in $(seq 1 "$seq_reads"); do	# one step (the 4th), read seq_reads times
		i=3
		step; t0=$(now); cat "$view/models/model.bin" >/dev/null; s=$(elapsed "$t0")
		end_step
		SEQS[$t]+=" $(calc "$model_bytes / $s / 1000000")"
	done
	step; read -r p50 p99 _ < <(python3 "$src/bench/bench_randread.py" "$view/models/model.bin" 2000)
	end_step
	P50S[$t]+=" $p50"
	P99S[$t]+=" $p99"
	say "$t: find $(printf %.2f "${FINDS[$t]##* }") s, tar $(printf %.0f "${TARS[$t]##* }") MB/s," \
		"seq $(printf %.0f "${SEQS[$t]##* }") MB/s, rand $(printf %.0f "$p50") /" \
		"$(printf %.0f "$p99") us"
}
median() {	# median "V1 V2 ...": the middle value, or the mean of the two middle ones
	printf "%s\n" $1 | sort -g |
		awk '{v[NR] = $1} END {print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
for r in $(seq 1 "$rounds"); do
	o=$tools
	[ $((r % 2)) = 0 ] && o=$(printf "%s\n" $tools | tac | paste -sd' ')
	for t in $o; do read_steps "$t"; done
done
for t in $tools; do
	FIND[$t]=$(median "${FINDS[$t]}")
	DU[$t]=$(median "${DUS[$t]}")
	TAR[$t]=$(median "${TARS[$t]}")
	SEQ[$t]=$(median "${SEQS[$t]}")
	RAND[$t]="$(printf %.0f "$(median "${P50S[$t]}")") / $(printf %.0f "$(median "${P99S[$t]}")")"
	RSS[$t]=0
	STEPRSS[$t]=""
	for i in 1 2 3 4 5; do
		k=${STEPK[$t,$i]:-0}
		[ "$k" -gt "${RSS[$t]}" ] && RSS[$t]=$k
		STEPRSS[$t]="${STEPRSS[$t]}${STEPRSS[$t]:+ / }$((k / 1024))"
	done
	RSS[$t]=$((RSS[$t] / 1024))
	[ "$t" = native ] && RSS[$t]=- && STEPRSS[$t]=-
done

# ---- the table ------------------------------------------------------------------------------
f2() { printf "%.2f" "$1"; }
f0() { printf "%.0f" "$1"; }
ratio() { printf "%.2fx" "$(calc "$1 / $2")"; }
kill "$load_pid" 2>/dev/null || true
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), \`bash bench/bench_peers.sh $build $size\`," \
	"load average $(cut -d' ' -f1-3 /proc/loadavg) at the end, 1-minute load" \
	"$(sort -n "$w/load" | sed -n '1p;$p' | paste -sd- -) over the run"
[ "$rounds" -gt 1 ] && echo "read steps: the median of $rounds rounds per tool (the order of the tools reversed every other round); peak RSS: the highest of any round"
[ "$seq_reads" -gt 1 ] && echo "sequential read: the median of $((rounds * seq_reads)) reads per tool ($seq_reads in each round)"
echo "corpus: $corpus_files files, $((corpus_bytes >> 20)) MiB apparent ($size);" \
	"$(restic version | cut -d' ' -f1,2), $(borg --version), squashfs-tools" \
	"$(mksquashfs -version | head -1 | cut -d' ' -f3), squashfuse" \
	"$(squashfuse --version 2>&1 | head -1 | cut -d' ' -f2), casync $(casync --version | tail -1)"
echo
echo "| | native | defragfs | squashfs | borg | restic | casync |"
echo "|---|---:|---:|---:|---:|---:|---:|"
row() {	# row LABEL ARRAY FORMAT
	local -n a=$2
	printf "| %s |" "$1"
	for t in native defragfs squashfs borg restic casync; do
		printf " %s |" "$($3 "${a[$t]}")"
	done
	echo
}
sz() { echo "$(( $1 >> 20 ))"; }
ident() { echo "$1"; }
row "ingest, s" ING f2
row "stored, MiB" SIZE sz
row "find -type f, s (cold)" FIND f2
row "du -s, s (cold)" DU f2
row "tar of everything, MB/s (cold)" TAR f0
row "sequential read of the model file, MB/s (cold)" SEQ f0
row "random 4 KiB reads, p50 / p99 us (cold)" RAND ident
row "daemon peak RSS, MiB" RSS ident
row "daemon peak RSS per step (find / du / tar / seq / rand), MiB" STEPRSS ident
echo
echo "defragfs against each peer (ratios; for times lower is better, for MB/s higher):"
for t in native squashfs borg restic casync; do
	echo "- $t: ingest $(ratio "${ING[defragfs]}" "${ING[$t]}"), stored" \
		"$(ratio "${SIZE[defragfs]}" "${SIZE[$t]}"), find $(ratio "${FIND[defragfs]}" \
		"${FIND[$t]}"), du $(ratio "${DU[defragfs]}" "${DU[$t]}"), tar" \
		"$(ratio "${TAR[defragfs]}" "${TAR[$t]}"), seq $(ratio "${SEQ[defragfs]}" "${SEQ[$t]}")"
done
if [ "$rounds" -gt 1 ] || [ "$seq_reads" -gt 1 ]; then
	echo
	echo "sequential read per round ($seq_reads a round), MB/s:"
	for t in $tools; do
		echo "- $t: $(for v in ${SEQS[$t]}; do printf "%.0f\n" "$v"; done | paste -sd/ - | sed 's|/| / |g')"
	done
fi
echo
echo "each drive's view against the drive:"
for t in defragfs restic borg squashfs casync; do echo "- $t: ${SAME[$t]}"; done
