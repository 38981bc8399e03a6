# bench/lib.sh - helpers the bench_*.sh scripts share (sourced, never run).
#
# bench_umount MNT [PID]: unmounts MNT if it is mounted (lazily when busy) and waits for
#   its daemon PID (empty: none).
# bench_workdir KEEP_DIR TAG CLEANUP: sets w to KEEP_DIR (data kept for a later run: only
#   its res file is removed at exit) or, when KEEP_DIR is empty, to a new directory
#   ${TMPDIR:-/tmp}/defragfs-TAG.XXXXXX (removed at exit); the exit trap runs the command
#   CLEANUP first (unmounting); w/res removed now.
# bench_med FILE TAG COLUMN: the median of field COLUMN over FILE's lines whose first field
#   is TAG (the mean of the two middle values for an even count; "-" when there is none).

bench_umount() {
	mountpoint -q "$1" && { fusermount3 -u "$1" 2>/dev/null || umount -l "$1"; }
	[ -z "${2:-}" ] || wait "$2" 2>/dev/null
	return 0
}

bench_med() {
	awk -v t="$2" -v c="$3" '$1 == t { print $c }' "$1" | sort -g |
		awk '{ v[NR] = $1 }
		     END { if (!NR) print "-"; else if (NR % 2) print v[(NR + 1) / 2];
			   else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

bench_workdir() {
	if [ -n "$1" ]; then
		w=$1
		trap "$3; rm -f \"\$w/res\"" EXIT
	else
		w=$(mktemp -d "${TMPDIR:-/tmp}/defragfs-$2.XXXXXX")
		trap "$3; rm -rf \"\$w\"" EXIT
	fi
	mkdir -p "$w"
	rm -f "$w/res"
}
