#!/usr/bin/env bash
# Owners of another machine's drive: stored as they were, shown as stored by default, and
# mapped with -o uidmap=FROM:TO[:COUNT],gidmap=... (owners, and the ids inside ACLs, so
# that default_permissions enforces them as shown). A bad map is refused at mount.
set -eu
. "$(dirname "$0")/lib.sh"
dfs_setup

src=$W/src
store=$W/store
mnt=$W/mnt
mkdir -p "$src/d" "$mnt"
echo "from the server" >"$src/d/f.txt"
chown 1001:1002 "$src/d/f.txt"
setfacl -m u:1003:r,g:1002:r "$src/d/f.txt"
dfs_ingest --store "$store" --name srv "$src" >/dev/null || fail "ingest"

dfs_mount "$store" "$mnt"
[ "$(stat -c %u:%g "$mnt/.sources/srv/d/f.txt")" = 1001:1002 ] &&
	pass "without maps: the stored ids" || fail "without maps: $(stat -c %u:%g "$mnt/.sources/srv/d/f.txt")"
dfs_umount "$mnt"

dfs_mount "$store" "$mnt" "uidmap=1000:2000:10,gidmap=1002:3002,default_permissions"
f=$mnt/.sources/srv/d/f.txt
[ "$(stat -c %u:%g "$f")" = 2001:3002 ] && pass "uidmap and gidmap: 1001:1002 shown as 2001:3002" ||
	fail "mapped owner: $(stat -c %u:%g "$f")"
getfacl -n "$f" 2>/dev/null >"$W/acl"
grep -q '^user:2003:r--' "$W/acl" && grep -q '^group:3002:r--' "$W/acl" &&
	pass "the ACL's ids are mapped too" || { cat "$W/acl"; fail "ACL ids not mapped"; }
o=$(find "$mnt" -path "$mnt/.sources" -prune -o -name f.txt -print | head -1)
[ -n "$o" ] && [ "$(stat -c %u:%g "$o")" = 2001:3002 ] && pass "the organized entry too" ||
	fail "organized entry: $o $(stat -c %u:%g "$o" 2>/dev/null)"
dfs_umount "$mnt"

rc=0
"$DFS_BIN/defragfs" "$store" "$mnt" -f -o uidmap=1:2:0 >"$W/bad" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "invalid uidmap" "$W/bad" && ! mountpoint -q "$mnt" &&
	pass "a bad map is refused" || { cat "$W/bad"; fail "bad map: exit $rc"; }
dfs_finish
