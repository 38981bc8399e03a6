#!/usr/bin/env bash
# A name longer than 255 bytes on a FUSE source (sshfs and ntfs-3g can show one; here
# dfs-faultfs -o long_names shows "P@@LONG300" as a 300-byte name): ingest lists it as a
# failed entry (exit 1), stores the rest, and a rerun does the same; with --exclude
# patterns too (their matching once copied names into a 256-byte buffer). The gate then
# fails on that entry: the drive is not all in the store.
set -eu
. "$(dirname "$0")/lib.sh"
DFS_NEEDS="defrag-ingest defrag-verify dfs-faultfs" dfs_setup

back=$W/back
ff=$W/ff
store=$W/store
mkdir -p "$back/d/sub" "$ff"
echo "a long-named file" >"$back/d/abc@@LONG300"
mkdir "$back/d/dir@@LONG257"
echo "inside a long-named directory" >"$back/d/dir@@LONG257/x"
echo "short" >"$back/d/short.txt"
echo "deeper" >"$back/d/sub/deep.txt"

dfs_faultfs_mount "$back" "$ff" long_names || { dfs_finish; exit 1; }
ff_pid=$DFS_FF_PID
n=$(ls "$ff/d" | awk '{ print length($0) }' | sort -n | tail -1)
[ "$n" = 300 ] && pass "the source shows a 300-byte name" || fail "longest name: $n bytes"

for run in first rerun; do
	rc=0
	"$DFS_BIN/defrag-ingest" --store "$store" --name ln --progress=never -x '*.tmp' "$ff" \
		>"$W/$run.out" 2>&1 || rc=$?
	if [ $rc -eq 1 ] && grep -q "a name of 300 bytes, longer than 255: not stored" "$W/$run.out" &&
		grep -q "a name of 257 bytes" "$W/$run.out" && grep -q "2 item(s) could not be stored" "$W/$run.out"
	then
		pass "$run: exit 1, both long names listed"
	else
		cat "$W/$run.out"
		fail "$run: exit $rc"
	fi
done
grep -q '"ln"' <("$DFS_BIN/defrag-stat" --store "$store" --json) &&
	pass "the source is recorded" || fail "no source record"

rc=0
"$DFS_BIN/defrag-verify" --store "$store" --against "$ff" --name ln >"$W/gate.out" 2>&1 || rc=$?
[ $rc -eq 1 ] && grep -q "missing from the store" "$W/gate.out" &&
	pass "the gate fails on the entry it could not store" ||
	{ cat "$W/gate.out"; fail "gate: exit $rc"; }

fusermount3 -u "$ff" 2>/dev/null || umount -l "$ff"
wait "$ff_pid" || true
dfs_finish
