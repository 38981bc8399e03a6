#!/usr/bin/env bash
# issue 20: the side-by-side harness (bench/bench_peers.sh) on its small corpus, as a smoke
# test: it builds its three drives, ingests them with defragfs and every peer (restic,
# borg, squashfs, casync; .ci/deps.sh installs them), checks that every tool shows each
# drive with the same paths, sizes and bytes, and prints its table, the read steps in two
# rounds (PEERS_ROUNDS=2). No timing is checked.
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
TMPDIR=$W PEERS_ROUNDS=2 bash "$src/bench/bench_peers.sh" "$build" small >"$W/table.md" 2>"$W/progress.log" ||
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
# two rounds (PEERS_ROUNDS=2) of three sequential reads (the default PEERS_SEQ_READS):
# the medians in the table, and the six sequential reads listed
for t in native defragfs squashfs borg restic casync; do
	grep -Eq "^- $t: [0-9]+( / [0-9]+){5}$" "$W/table.md" ||
		fail "$t: not six sequential reads ($(grep "^- $t:" "$W/table.md" | head -1))"
done
grep -q "^read steps: the median of 2 rounds" "$W/table.md" &&
	grep -q "^sequential read: the median of 6 reads per tool" "$W/table.md" &&
	pass "two rounds of the read steps, each listed" || fail "the rounds are not said"
dfs_finish
