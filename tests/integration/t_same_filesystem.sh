#!/usr/bin/env bash
# issue 23, item 6: a store inside the source, or on the same filesystem, is refused at
# ingest (exit 2, before the store is created) unless --allow-same-filesystem (or
# DEFRAGFS_ALLOW_SAME_FILESYSTEM=1); such a source carries defrag-stat's warning, and a
# source on a filesystem of its own (a tmpfs) does not.
set -eu
. "$(dirname "$0")/lib.sh"
dfs_setup
unset DEFRAGFS_ALLOW_SAME_FILESYSTEM

warning="the store shares a filesystem with this drive: wiping the drive wipes the store"
src=$W/home
drive=$W/drive
mkdir -p "$src/docs" "$drive"
for i in $(seq 1 10); do head -c 3000 /dev/urandom >"$src/docs/f$i"; done

# the store beside the source, on its filesystem
rc=0
"$DFS_BIN/defrag-ingest" --progress=never --store "$W/store" "$src" >"$W/o1" 2>"$W/e1" || rc=$?
cat "$W/e1"
[ $rc -eq 2 ] && grep -q "on the same filesystem" "$W/e1" &&
	grep -q -- "--allow-same-filesystem" "$W/e1" && pass "same filesystem refused (exit 2)" ||
	fail "same filesystem: exit $rc"
[ ! -e "$W/store" ] && pass "no store was created" || fail "the store was created"
[ ! -s "$W/o1" ] && pass "no summary" || fail "summary: $(cat "$W/o1")"

# the store inside the source
rc=0
"$DFS_BIN/defrag-ingest" --progress=never --store "$src/.defragfs" "$src" >/dev/null \
	2>"$W/e2" || rc=$?
[ $rc -eq 2 ] && grep -q "inside the source" "$W/e2" && pass "store inside the source refused" ||
	fail "store inside: exit $rc, $(cat "$W/e2")"
[ ! -e "$src/.defragfs" ] && pass "no store inside the source" || fail "store created inside"

# a drive of its own: accepted, no warning
mount -t tmpfs tmpfs "$drive"
DFS_CLEAN_MOUNTS="${DFS_CLEAN_MOUNTS:-} $drive"
cp -a "$src/docs" "$drive/"
dfs_ingest --store "$W/store" "$drive" >/dev/null && pass "another filesystem accepted" ||
	fail "another filesystem refused"
"$DFS_BIN/defrag-stat" --store "$W/store" >"$W/stat1"
! grep -q "$warning" "$W/stat1" && pass "no warning for a drive of its own" ||
	fail "warning shown for a drive of its own"

# accepted explicitly: the warning, in text and JSON
dfs_ingest --store "$W/store" --allow-same-filesystem "$src" >/dev/null &&
	pass "--allow-same-filesystem accepted" || fail "--allow-same-filesystem refused"
"$DFS_BIN/defrag-stat" --store "$W/store" >"$W/stat2"
cat "$W/stat2"
awk '/^source home/{s=1} /^source drive/{s=0} s' "$W/stat2" | grep -q "warning: *$warning" &&
	pass "defrag-stat warns for the source on the store's filesystem" || fail "no warning"
[ "$(grep -c "$warning" "$W/stat2")" = 1 ] && pass "only that source is warned about" ||
	fail "the warning is on other sources too"
"$DFS_BIN/defrag-stat" --store "$W/store" --json >"$W/stat.json"
python3 - "$W/stat.json" <<'EOF' && pass "JSON: store_shares_filesystem" || fail "JSON field"
import json, sys
d = {s["name"]: s for s in json.load(open(sys.argv[1]))["sources"]}
assert d["home"]["store_shares_filesystem"] is True, d["home"]
assert d["drive"]["store_shares_filesystem"] is False, d["drive"]
EOF
# the variable does what the option does
DEFRAGFS_ALLOW_SAME_FILESYSTEM=1 dfs_ingest --store "$W/store" "$src" >/dev/null &&
	pass "DEFRAGFS_ALLOW_SAME_FILESYSTEM=1" || fail "DEFRAGFS_ALLOW_SAME_FILESYSTEM=1 refused"
umount "$drive"
dfs_finish
