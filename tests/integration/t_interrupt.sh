#!/usr/bin/env bash
# issue 23, item 8: SIGINT during an ingest prints "interrupted: N files committed, run the
# same command to finish" and exits 130; the same command finishes; the packs on disk are
# then about what defrag-stat says is stored. A killed run's uncommitted pack bytes
# (SIGKILL) are removed or cut by the next writer; a run that stores nothing (an unchanged
# re-ingest, a verify --against) adds no pack file.
set -eu
. "$(dirname "$0")/lib.sh"
dfs_setup

src=$W/src
mnt=$W/mnt
mkdir -p "$src" "$mnt"
for d in 1 2 3 4; do
	mkdir "$src/d$d"
	for i in $(seq 1 100); do head -c 1048576 /dev/urandom >"$src/d$d/f$i"; done
done

pack_bytes() { du -sb "$1/packs" | cut -f1; }
stat_json() {	# stat_json STORE KEY
	"$DFS_BIN/defrag-stat" --store "$1" --json | python3 -c \
		"import json,sys; print(json.load(sys.stdin)['$2'])"
}
# start_and_wait STORE: an ingest in the background (pid in $ipid), once 16 MiB are in packs
start_and_wait() {
	local b
	"$DFS_BIN/defrag-ingest" --progress=never --store "$1" "$src" >"$W/out" 2>"$W/err" &
	ipid=$!
	for _ in $(seq 1 600); do
		b=$(du -sb "$1/packs" 2>/dev/null | cut -f1)
		[ "${b:-0}" -gt 16777216 ] && return 0
		kill -0 $ipid 2>/dev/null || return 0
		sleep 0.05
	done
}
# packs_match STORE WHAT: the bytes on disk are the committed ones, and about the stored
packs_match() {
	local du pb sb
	du=$(pack_bytes "$1"); pb=$(stat_json "$1" pack_bytes); sb=$(stat_json "$1" stored_bytes)
	echo "$2: du $du, committed pack bytes $pb, stored bytes $sb"
	[ "$du" -le $((pb + 65536)) ] && [ "$pb" -le $((sb + sb / 50 + 1048576)) ] &&
		pass "$2: du of the packs matches defrag-stat" || fail "$2: du $du vs $pb / $sb"
}

# SIGINT
store=$W/store
start_and_wait "$store"
kill -INT $ipid
rc=0
wait $ipid || rc=$?
cat "$W/err"
[ $rc -eq 130 ] && pass "SIGINT: exit 130" || fail "SIGINT: exit $rc"
n=$(sed -n 's/.*interrupted: \([0-9]*\) files committed, run the same command to finish$/\1/p' \
	"$W/err")
[ -n "$n" ] && [ "$n" -lt 400 ] && pass "the message says $n files committed" ||
	fail "no interrupted message: $(cat "$W/err")"
[ ! -s "$W/out" ] && pass "no summary after the interrupt" || fail "summary: $(cat "$W/out")"
dfs_ingest --store "$store" "$src" >"$W/out2" || fail "the rerun failed"
grep -q "^400 files" "$W/out2" && pass "the rerun finishes (400 files)" || fail "$(cat "$W/out2")"
dfs_mount "$store" "$mnt"
"$DFS_BIN/dfs-treecmp" --ignore-atime --ignore-ctime "$src" "$mnt/.sources/src" >"$W/cmp.log" \
	2>&1 && pass "the view is the source" || { head "$W/cmp.log"; fail "the view differs"; }
dfs_umount "$mnt"
packs_match "$store" "after SIGINT and the rerun"

# nothing stored: no new pack file
before=$(find "$store/packs" -name '*.pack' | wc -l)
dfs_ingest --store "$store" "$src" >/dev/null || fail "unchanged re-ingest"
"$DFS_BIN/defrag-verify" --store "$store" --against "$src" >/dev/null 2>&1 || fail "verify --against"
after=$(find "$store/packs" -name '*.pack' | wc -l)
[ "$before" = "$after" ] && pass "an unchanged re-ingest and a verify add no pack ($after)" ||
	fail "pack files $before -> $after"

# SIGKILL: the next writer reclaims what no commit names
store2=$W/store2
start_and_wait "$store2"
kill -KILL $ipid
wait $ipid 2>/dev/null || true
echo "killed with $(pack_bytes "$store2") bytes in packs"
dfs_ingest --store "$store2" "$src" >/dev/null || fail "the run after SIGKILL failed"
packs_match "$store2" "after SIGKILL and the rerun"
# SIGINT while the tree is organized: every file is stored, the run says the tree is
# incomplete and exits 130, and the next run builds the whole tree. In DFS_TEST_FAULTS
# builds DFS_FAULT_ORG_PAUSE holds the build until the signal arrives; elsewhere it is
# sent once the run says "organizing the tree" (60,000 small files take long enough).
small=$W/small
python3 - "$small" <<'PY'
import os, sys
for d in range(60):
    p = os.path.join(sys.argv[1], "d%d" % d)
    os.makedirs(p)
    for i in range(1000):
        with open(os.path.join(p, "f%d.txt" % i), "w") as f:
            f.write("%d %d\n" % (d, i))
PY
store3=$W/store3
DFS_FAULT_ORG_PAUSE=1 "$DFS_BIN/defrag-ingest" --progress=always --store "$store3" "$small" \
	>"$W/out3" 2>"$W/err3" &
ipid=$!
end=$(($(date +%s) + 600))	# a deadline in time: 60,000 files under ASan on a loaded host
while [ "$(date +%s)" -lt $end ]; do
	grep -q "organizing the tree" "$W/err3" 2>/dev/null && break
	kill -0 $ipid 2>/dev/null || break
	sleep 0.01
done
kill -INT $ipid 2>/dev/null || true
rc=0
wait $ipid || rc=$?
grep -v "files, .*/s" "$W/err3" || true
[ $rc -eq 130 ] && pass "SIGINT while organizing: exit 130" || fail "SIGINT while organizing: exit $rc"
grep -q "interrupted while organizing: 60000 files committed; the organized tree is incomplete" \
	"$W/err3" && pass "it says every file is stored and the tree is incomplete" ||
	fail "no message: $(cat "$W/err3")"
[ ! -s "$W/out3" ] && pass "no summary after it" || fail "summary: $(cat "$W/out3")"
dfs_ingest --store "$store3" "$small" >"$W/out4" || fail "the rerun failed"
grep -q "^organized: 60000 entries" "$W/out4" && pass "the rerun builds the whole tree" ||
	fail "rerun: $(cat "$W/out4")"
dfs_mount "$store3" "$mnt"
n=$(find "$mnt" -type f | wc -l)
[ "$n" = 60000 ] && pass "the organized tree holds every file" || fail "$n files in the tree"
dfs_umount "$mnt"
dfs_finish
