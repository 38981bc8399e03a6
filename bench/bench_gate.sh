#!/usr/bin/env bash
# bench_gate.sh - the gate's cost (issue 17, item 1, "Cost"): `defrag-verify --against`
# of a drive of >= 2 GB in a store that holds another source too, against reading the
# same data without defragfs, every step with a cold page cache.
#
#   sudo bash bench/bench_gate.sh [BUILD_DIR] [ROUNDS] [OTHER_BUILD_DIR]
#     BUILD_DIR        a build tree holding bin/defrag-{ingest,verify} (default build)
#     ROUNDS           rounds (default 3); the order of the steps alternates between rounds
#     OTHER_BUILD_DIR  another build (before a change, say): its gate is measured too, on
#                      the same store in the same rounds (step "gate-other")
#   GATE_PROFILE=1 also runs the gate once under `perf record -g` and once under
#   `strace -c -f` after the rounds (cold cache too) and prints both summaries.
#   GATE_KEEP=1 keeps the temporary directory (corpus and store) and prints its path.
#
# Needs root: `sync; echo 3 > /proc/sys/vm/drop_caches` before every step.
# Corpus, copied into a temporary directory under ${TMPDIR:-/tmp} and removed at exit:
#   other  /usr/lib/jvm and /usr/lib/llvm-14 (about 1 GB), ingested first as source
#          "other";
#   drive  /usr/lib/x86_64-linux-gnu, /usr/bin and /usr/share (small and large files)
#          plus two generated 320 MiB files, `seq` output (compressible) and
#          /dev/urandom (incompressible); ingested second as source "drive".
# The drive's stored bytes are the pack bytes its ingest appended (new packs, and the
# tail of a pack the first ingest left open): they hold only its chunks and its commits'
# META records. The drive is also ingested alone into a scratch store, to show how much
# of it was deduplicated against "other" (those chunks live in other's packs, and the
# baseline below does not read them).
# Each round, each step after a cache drop, wall time, CPU and peak RSS from
# /usr/bin/time:
#   tar     `tar cf - drive | cat >/dev/null`. Not `tar cf /dev/null`: GNU tar sees that
#           its archive is /dev/null and does not read the files' data at all.
#   packs   a sequential read (cat, in pack id order) of the drive's stored bytes;
#   gate    `defrag-verify --store S --against drive --name drive`;
#   gate-other  the same with OTHER_BUILD_DIR's defrag-verify, if given;
#   gate-rd the same with --read-data;
#   verify  `defrag-verify --store S` (no --against): the store-wide checks. A gate
#           before 0d214e8 ran them before its comparison (gate - verify was then the
#           comparison itself); since, only --read-data and --repair run them.
# Prints the rounds, the medians and gate / (tar + packs) as markdown on stdout.
set -eu
# the corpora sit beside the stores, on their filesystem (defrag-ingest(8), Guards)
export DEFRAGFS_ALLOW_SAME_FILESYSTEM=1
build=${1:-build}
rounds=${2:-3}
bin=$(cd "$build/bin" && pwd)
obin=
[ -n "${3:-}" ] && obin=$(cd "$3/bin" && pwd)
for t in defrag-ingest defrag-verify; do
	[ -x "$bin/$t" ] || { echo "missing $bin/$t" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "$0: needs root (drop_caches)" >&2; exit 1; }
w=$(mktemp -d "${TMPDIR:-/tmp}/defragfs-bench-gate.XXXXXX")
if [ "${GATE_KEEP:-0}" = 1 ]; then
	trap 'echo "kept $w" >&2' EXIT
else
	trap 'rm -rf "$w"' EXIT
fi
S=$w/store
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
say() { echo "$(date -u +%H:%M:%S) $*" >&2; }

say "start; load average $(cut -d' ' -f1-3 /proc/loadavg)"
mkdir -p "$w/other" "$w/drive"
for d in /usr/lib/jvm /usr/lib/llvm-14; do
	[ -d "$d" ] && cp -a "$d" "$w/other/"
done
for d in /usr/lib/x86_64-linux-gnu /usr/bin /usr/share; do
	[ -d "$d" ] && cp -a "$d" "$w/drive/"
done
mkdir -p "$w/drive/data"
seq 1 100000000 | head -c $((320 << 20)) >"$w/drive/data/numbers.log"
head -c $((320 << 20)) /dev/urandom >"$w/drive/data/random.bin"
for x in other drive; do
	echo "corpus $x: $(find "$w/$x" -type f | wc -l) files, $(find "$w/$x" -type l |
		wc -l) symlinks, $(du -sb "$w/$x" | cut -f1) bytes" >&2
done

ingest() {	# ingest STORE NAME: prints the JSON summary's main figures
	"$bin/defrag-ingest" --store "$1" --name "$2" --progress=never --json "$w/$2" \
		>"$w/ingest-$2.json"
	python3 - "$w/ingest-$2.json" <<'PY' >&2
import json, sys
j = json.load(open(sys.argv[1]))
print("  ingest %s: %d files, %d logical bytes, %d new stored bytes, %.1f s" % (
    j["sources"][0]["name"], j["files"], j["logical_bytes"], j["new_stored_bytes"],
    j["elapsed_seconds"]))
PY
}
packs() {	# packs: "path size" of every pack, in pack id order
	find "$S/packs" -name '*.pack' -printf '%f %p %s\n' | sort | cut -d' ' -f2-
}
say "ingest other"
ingest "$S" other
packs >"$w/packs.before"
say "ingest drive"
ingest "$S" drive
packs >"$w/packs.after"
# the drive's pack bytes: new packs whole, grown packs from their old length
awk 'NR == FNR { old[$1] = $2; next } !($1 in old) { print $1, 0, $2; next }
     $2 > old[$1] { print $1, old[$1], $2 - old[$1] }' "$w/packs.before" "$w/packs.after" \
	>"$w/packs.drive"
dbytes=$(awk '{ s += $3 } END { print s }' "$w/packs.drive")
allbytes=$(awk '{ s += $2 } END { print s }' "$w/packs.after")
echo "  the drive's pack bytes: $dbytes in $(wc -l <"$w/packs.drive") packs" \
	"($(awk '$2 > 0' "$w/packs.drive" | wc -l) read from an offset); all packs: $allbytes" >&2
# the chunk records in the drive's pack bytes (pack format: docs/ARCHITECTURE.md)
python3 - "$w/packs.drive" <<'PY' >&2
import struct, sys
n = raw = meta = 0
for line in open(sys.argv[1]):
    p, off, ln = line.split()
    d = open(p, "rb").read()
    off, end = int(off), int(off) + int(ln)
    if off == 0:
        off = 20 + struct.unpack_from("<I", d, 16)[0] + 8
    while off + 56 <= end:
        t = d[off + 5]
        rl, sl = struct.unpack_from("<II", d, off + 8)
        if t == 1:
            n += 1
            raw += rl
        else:
            meta += 1
        off += 56 + sl
print("  the drive's packs hold %d chunk records (%d raw bytes) and %d META records" %
      (n, raw, meta))
PY
say "ingest drive alone (scratch store, for its dedup against other)"
ingest "$w/alone" drive
alone=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["new_stored_bytes"])' \
	"$w/ingest-drive.json")
rm -rf "$w/alone"
echo "  drive alone stores $alone bytes: $(awk -v a="$alone" -v d="$dbytes" \
	'BEGIN { printf "%.1f", 100 * (1 - d / a) }')% of it was already in other's packs" >&2

readpacks() {
	while read -r p off _; do
		if [ "$off" = 0 ]; then cat "$p"; else tail -c +$((off + 1)) "$p"; fi
	done <"$w/packs.drive" >/dev/null
}
step() {	# step NAME ROUND: one measurement after a cache drop; appends to $w/times
	local name=$1 r=$2 rc=0
	drop
	case $name in
	tar)	/usr/bin/time -f '%e %U %S %M' -o "$w/t" \
			bash -c 'tar -C "$1" -cf - drive | cat >/dev/null' _ "$w" ;;
	packs)	export -f readpacks; export w
		/usr/bin/time -f '%e %U %S %M' -o "$w/t" bash -c readpacks ;;
	gate)	/usr/bin/time -f '%e %U %S %M' -o "$w/t" "$bin/defrag-verify" --store "$S" \
			--against "$w/drive" --name drive >"$w/gate.out" 2>&1 || rc=$? ;;
	gate-other) /usr/bin/time -f '%e %U %S %M' -o "$w/t" "$obin/defrag-verify" --store "$S" \
			--against "$w/drive" --name drive >"$w/gate.out" 2>&1 || rc=$? ;;
	gate-rd) /usr/bin/time -f '%e %U %S %M' -o "$w/t" "$bin/defrag-verify" --store "$S" \
			--read-data --against "$w/drive" --name drive >"$w/gate.out" 2>&1 || rc=$? ;;
	verify)	/usr/bin/time -f '%e %U %S %M' -o "$w/t" "$bin/defrag-verify" --store "$S" \
			>"$w/gate.out" 2>&1 || rc=$? ;;
	esac
	if [ "$rc" != 0 ]; then
		echo "$name exited $rc:" >&2
		tail -20 "$w/gate.out" >&2
		exit 1
	fi
	echo "$name $r $(tail -1 "$w/t")" >>"$w/times"
	say "  round $r $name: $(tail -1 "$w/t") (wall s, user s, sys s, max RSS KiB)"
}
if [ -n "$obin" ]; then
	steps="tar packs gate gate-other gate-rd verify"
else
	steps="tar packs gate gate-rd verify"
fi
order=$steps
rev=$(echo "$steps" | tr ' ' '\n' | tac | tr '\n' ' ')
for r in $(seq 1 "$rounds"); do
	say "round $r; load average $(cut -d' ' -f1-3 /proc/loadavg)"
	if [ $((r % 2)) = 1 ]; then o=$order; else o=$rev; fi
	for s in $o; do step "$s" "$r"; done
done
say "end of rounds; load average $(cut -d' ' -f1-3 /proc/loadavg)"

med() {	# med NAME COLUMN (3 wall, 4 user, 5 sys, 6 RSS)
	awk -v t="$1" -v c="$2" '$1 == t { print $c }' "$w/times" | sort -g |
		awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
echo "drive: $(find "$w/drive" -type f | wc -l) files, $(du -sb "$w/drive" | cut -f1) bytes;" \
	"its stored bytes $dbytes; all packs $allbytes"
echo
printf '| step |'
for r in $(seq 1 "$rounds"); do printf ' round %d, s |' "$r"; done
echo ' median wall, s | median CPU (user+sys), s | median peak RSS, MiB |'
echo "|---|$(for r in $(seq 1 "$rounds"); do printf -- '---:|'; done)---:|---:|---:|"
for s in $steps; do
	printf '| %s |' "$s"
	for r in $(seq 1 "$rounds"); do
		printf ' %s |' "$(awk -v t="$s" -v r="$r" '$1 == t && $2 == r { print $3 }' "$w/times")"
	done
	awk -v w="$(med "$s" 3)" -v u="$(med "$s" 4)" -v y="$(med "$s" 5)" -v m="$(med "$s" 6)" \
		'BEGIN { printf " %.2f | %.2f | %.0f |\n", w, u + y, m / 1024 }'
done
echo
# the ratio per round (same round's tar and packs), and of the medians
for g in $(echo "$steps" | tr ' ' '\n' | grep gate); do
	for r in $(seq 1 "$rounds"); do
		awk -v g="$g" -v r="$r" '$2 == r { t[$1] = $3 } END {
			printf "%s / (tar + packs), round %d: %.2f\n", g, r, t[g] / (t["tar"] + t["packs"]) }' \
			"$w/times"
	done
	awk -v g="$(med "$g" 3)" -v t="$(med tar 3)" -v p="$(med packs 3)" -v n="$g" \
		'BEGIN { printf "%s / (tar + packs), medians: %.2f\n", n, g / (t + p) }'
done
awk -v g="$(med gate 3)" -v v="$(med verify 3)" -v t="$(med tar 3)" -v p="$(med packs 3)" \
	'BEGIN { printf "(gate - verify) / (tar + packs), medians: %.2f\n", (g - v) / (t + p) }'
[ -n "$obin" ] && awk -v g="$(med gate 3)" -v o="$(med gate-other 3)" \
	'BEGIN { printf "gate / gate-other, medians: %.2f\n", g / o }'

if [ "${GATE_PROFILE:-0}" = 1 ]; then
	say "profile: perf record --call-graph dwarf"
	drop
	perf record -F 499 --call-graph dwarf,16384 -o "$w/perf.data" -- "$bin/defrag-verify" \
		--store "$S" --against "$w/drive" --name drive >/dev/null 2>"$w/perf.err" || true
	echo
	echo "perf report --children, the main thread, functions of interest (share of its samples):"
	perf report -i "$w/perf.data" --children --sort sym --stdio -g none \
		--comm defrag-verify 2>/dev/null | grep -v '^#' | grep -E \
		' (main|cmp_source|cmp_data|cmp_entry|store_each_chunk|check_chunk|store_check_packs|store_each_content_ref|walk_view|store_content_pread|store_chunk_read|idx_get|ZSTD_decompress_usingDDict|pack_read_record_into|read|__memcmp[a-z_]*|store_get_inode|store_lookup|store_content_open|__GI___fstatat64|src_list_dir|cmp_holes|cmp_xattrs|cmp_view_names)( \(inlined\))?$' |
		head -40
	rm -f "$w/perf.data"
	for m in gate verify; do
		say "profile: strace -c -f ($m)"
		drop
		if [ $m = gate ]; then
			set -- --against "$w/drive" --name drive
		else
			set --
		fi
		strace -c -f -o "$w/strace.txt" "$bin/defrag-verify" --store "$S" "$@" \
			>/dev/null 2>&1 || true
		echo
		echo "strace -c -f, $m (the I/O calls):"
		grep -E 'calls|preadv|pread64| read$|newfstatat|openat|lseek|getdents64|flistxattr|total' \
			"$w/strace.txt"
	done
fi
