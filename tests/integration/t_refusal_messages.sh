#!/usr/bin/env bash
# issue 23, item 7: refusals and failures print what was refused and nothing that looks
# like a summary ("source (null) 0 files", "organized: N entries"); a missing SOURCE is a
# usage error (exit 2) before anything, the store included, is created; with several
# SOURCEs, the one refused is left out of the summary of the others.
set -eu
. "$(dirname "$0")/lib.sh"
dfs_setup

store=$W/store
mkdir -p "$W/a" "$W/b"
for i in $(seq 1 20); do echo "a$i" >"$W/a/f$i"; echo "b$i" >"$W/b/g$i"; done

summary_like() {	# summary_like FILE...: lines a summary prints
	grep -E "files, .* logical|^ *source |organized|^ *category |dedup" "$@"
}

# a missing SOURCE: exit 2, no store
rc=0
"$DFS_BIN/defrag-ingest" --progress=never --store "$store" "$W/missing" >"$W/o1" 2>"$W/e1" ||
	rc=$?
[ $rc -eq 2 ] && grep -q "$W/missing: No such file or directory" "$W/e1" &&
	pass "missing SOURCE: exit 2 and why" || fail "missing SOURCE: exit $rc, $(cat "$W/e1")"
[ ! -e "$store" ] && pass "missing SOURCE: no store created" || fail "the store was created"
! summary_like "$W/o1" "$W/e1" && pass "missing SOURCE: no summary" || fail "summary printed"
[ "$(wc -l <"$W/e1")" = 1 ] && pass "one error line" || { cat "$W/e1"; fail "error lines: $(wc -l <"$W/e1")"; }
# a file, not a directory
rc=0
"$DFS_BIN/defrag-ingest" --progress=never --store "$store" "$W/a/f1" >/dev/null 2>"$W/e2" || rc=$?
[ $rc -eq 2 ] && grep -q "not a directory" "$W/e2" && [ ! -e "$store" ] &&
	pass "a file as SOURCE: exit 2, nothing created" || fail "file as SOURCE: exit $rc"

dfs_ingest --store "$store" "$W/a" >/dev/null || fail "first ingest"

# the mass-deletion refusal: its message, no summary, no organize
rm "$W/a"/f1*	# 11 of 20
rc=0
"$DFS_BIN/defrag-ingest" --progress=never --store "$store" "$W/a" >"$W/o3" 2>"$W/e3" || rc=$?
cat "$W/e3"
[ $rc -eq 2 ] && grep -q -- "--allow-deletions" "$W/e3" && pass "deletion refused (exit 2)" ||
	fail "deletion refusal: exit $rc"
! summary_like "$W/o3" "$W/e3" && pass "no summary after the deletion refusal" ||
	fail "summary after the deletion refusal: $(cat "$W/o3")"
# --json prints no object either
rc=0
"$DFS_BIN/defrag-ingest" --progress=never --json --store "$store" "$W/a" >"$W/o4" 2>/dev/null ||
	rc=$?
[ $rc -eq 2 ] && [ ! -s "$W/o4" ] && pass "--json: nothing on stdout after a refusal" ||
	fail "--json after a refusal: exit $rc, $(head -c 200 "$W/o4")"

# two sources, one refused: the other is summed up, the refused one is not
rc=0
"$DFS_BIN/defrag-ingest" --progress=never --store "$store" "$W/a" "$W/b" >"$W/o5" 2>"$W/e5" ||
	rc=$?
[ $rc -eq 2 ] && grep -q "source b " "$W/o5" && ! grep -q "source a " "$W/o5" &&
	grep -q "^organized" "$W/o5" && pass "a refused source is left out of the summary" ||
	{ cat "$W/o5" "$W/e5"; fail "two sources, one refused: exit $rc"; }
! grep -q "(null)" "$W/o5" "$W/e5" && pass "no (null) anywhere" || fail "(null) printed"
dfs_finish
