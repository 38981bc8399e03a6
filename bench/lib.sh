# bench/lib.sh - helpers the bench_*.sh scripts share (sourced, never run).
#
# bench_umount MNT [PID]: unmounts MNT if it is mounted (lazily when busy) and waits for
#   its daemon PID (empty: none).
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
