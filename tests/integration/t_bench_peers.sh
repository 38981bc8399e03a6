#!/usr/bin/env bash
# issue 20: the side-by-side harness (bench/bench_peers.sh) on its small corpus, as a smoke
# test: it builds its three drives, ingests them with defragfs and every peer (restic,
# borg, squashfs, casync; .ci/deps.sh installs them), checks that every tool shows each
# drive with the same paths, sizes and bytes, and prints its table. No timing is checked.
# Skipped in the sanitizer pass (the harness measures the normal build).
set -eu
. "$(dirname "$0")/lib.sh"
if [ "${DFS_SANITIZED:-0}" = 1 ]; then
	echo "skip: the harness runs in the normal build's pass"
	exit 77
fi
dfs_setup
build=$(cd "$DFS_BIN/.." && pwd)
src=${DFS_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
rc=0
TMPDIR=$W bash "$src/bench/bench_peers.sh" "$build" small >"$W/table.md" 2>"$W/progress.log" ||
	rc=$?
cat "$W/table.md"
[ $rc -eq 0 ] && pass "the harness ran (small corpus)" ||
	{ tail -n 20 "$W/progress.log"; fail "bench_peers.sh exited $rc"; }
for t in defragfs restic borg squashfs casync; do
	grep -q "^- $t: same$" "$W/table.md" && pass "$t shows every drive as it is" ||
		fail "$t: $(grep "^- $t:" "$W/table.md" || echo 'no verdict')"
done
for row in "ingest, s" "stored, MiB" "find -type f" "du -s" "tar of everything" \
	"sequential read" "random 4 KiB" "daemon peak RSS"; do
	grep -q "^| $row" "$W/table.md" || fail "no row '$row' in the table"
done
pass "the table has every row"
dfs_finish
