#!/usr/bin/env bash
# Issue 23, item 12 (the smaller items of this branch): -o rw on the mount is said, not
# obeyed silently (the mount is read-only); a missing mount point, or a file, is named as
# such (not "invalid options"); defrag-recover removes the old index when it was healthy
# and keeps it (index.broken-TIME, with the reason) when it was not; defrag-stat --json
# says "never" as null in every field; defragfs(8) documents -o max_read.
set -eu
. "$(dirname "$0")/lib.sh"
DFS_NEEDS="defrag-ingest defragfs defrag-recover defrag-stat" dfs_setup

store=$W/store
src=$W/src
mnt=$W/mnt
mkdir -p "$src" "$mnt"
echo hello >"$src/a.txt"
dfs_ingest --store "$store" --name s "$src" >/dev/null || fail "ingest"

# -o rw: a warning, and a read-only mount
dfs_mount "$store" "$mnt" rw || fail "mount -o rw"
grep -q "warning: -o rw is not possible: defragfs mounts are read-only" "$W/daemon-mnt.log" &&
	pass "-o rw is said" || { cat "$W/daemon-mnt.log"; fail "-o rw silent"; }
grep " $mnt " /proc/mounts | grep -q " ro," && pass "and the mount is read-only" ||
	{ grep " $mnt " /proc/mounts; fail "not read-only"; }
dfs_umount "$mnt"

# a missing mount point, a file as mount point
rc=0
"$DFS_BIN/defragfs" "$store" "$W/nowhere" >"$W/nomnt.out" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "mount point $W/nowhere: does not exist" "$W/nomnt.out" &&
	! grep -q "invalid options" "$W/nomnt.out" && pass "a missing mount point is named" ||
	{ cat "$W/nomnt.out"; fail "missing mount point: exit $rc"; }
rc=0
"$DFS_BIN/defragfs" "$store" "$src/a.txt" >"$W/filemnt.out" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "a.txt: not a directory" "$W/filemnt.out" &&
	pass "a file as mount point is named" || { cat "$W/filemnt.out"; fail "file mount point: exit $rc"; }

# defrag-recover of a healthy index: nothing left behind
"$DFS_BIN/defrag-recover" --store "$store" >"$W/rec1.out" 2>&1 || { cat "$W/rec1.out"; fail "recover"; }
if ! ls -d "$store"/index.broken-* >/dev/null 2>&1 &&
	grep -q "the old index was healthy (it held the same last commit): removed" "$W/rec1.out"; then
	pass "a healthy index leaves no index.broken-*"
else
	cat "$W/rec1.out"; ls "$store"; fail "a healthy index left index.broken-*"
fi
# a damaged one is kept, with the reason
for f in "$store"/index/MANIFEST-*; do : >"$f"; done
"$DFS_BIN/defrag-recover" --store "$store" --json >"$W/rec2.json" 2>"$W/rec2.err" ||
	{ cat "$W/rec2.json" "$W/rec2.err"; fail "recover of a damaged index"; }
python3 - "$W/rec2.json" <<'PY' && pass "a damaged index is kept, and why" || { cat "$W/rec2.json"; fail "damaged index"; }
import json, os, sys
j = json.load(open(sys.argv[1]))
assert j["moved_to"] and os.path.isdir(j["moved_to"]) and "index.broken-" in j["moved_to"], j
assert j["old_index_removed"] is False and j["old_index_kept_because"], j
PY
dfs_mount "$store" "$mnt" || fail "mount after recover"
[ "$(cat "$mnt/.sources/s/a.txt" 2>/dev/null)" = hello ] && pass "the rebuilt index serves the file" ||
	fail "the rebuilt index does not serve a.txt"
dfs_umount "$mnt"

# defrag-stat --json: never is null, in every field
"$DFS_BIN/defrag-stat" --store "$store" --json >"$W/stat.json" || fail "stat --json"
python3 - "$W/stat.json" <<'PY' && pass "defrag-stat --json: never is null" || { cat "$W/stat.json"; fail "stat never"; }
import json, sys
s = json.load(open(sys.argv[1]))["sources"][0]
assert s["last_against"] is None and s["against_failures"] is None, s
assert isinstance(s["last_ingest"], int) and s["last_ingest"] > 0, s
PY

# defragfs(8) documents -o max_read
grep -q "max_read=" "$DFS_SRC/packaging/man/defragfs.8" && pass "defragfs(8) documents max_read" ||
	fail "max_read is not in defragfs(8)"

dfs_finish
