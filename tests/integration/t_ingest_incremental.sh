#!/usr/bin/env bash
# Re-ingest after touch, modify, delete, add, rename: the source view follows exactly;
# removing more than half of a source's files needs --allow-deletions; a different
# filesystem under the same name needs --replace (and --allow-deletions here).
set -eu
. "$(dirname "$0")/lib.sh"
dfs_setup

src=$W/src
store=$W/store
mnt=$W/mnt
mkdir -p "$mnt" "$src/a/b" "$src/c"
for i in $(seq 1 40); do head -c $((i * 3000)) /dev/urandom >"$src/a/f$i"; done
echo hello >"$src/c/keep"
echo gone >"$src/c/gone"
mkdir "$src/c/olddir"; echo x >"$src/c/olddir/x"
dfs_ingest --store "$store" --name inc "$src" >/dev/null || fail "first ingest"

touch "$src/a/f1"                                   # metadata only
echo more >>"$src/a/f2"                             # content
rm "$src/c/gone"; rm -r "$src/c/olddir"             # deletions
echo new >"$src/c/new"                              # addition
mv "$src/a/f3" "$src/a/b/f3-renamed"                # rename
dfs_ingest --store "$store" --name inc --json "$src" >"$W/i2.json" || fail "second ingest"
dfs_mount "$store" "$mnt"
"$DFS_BIN/dfs-treecmp" --ignore-atime --ignore-ctime "$src" "$mnt/.sources/inc" >"$W/cmp.log" 2>&1 &&
	pass "source view follows the changes" || { head -n 30 "$W/cmp.log"; fail "view differs"; }
dfs_umount "$mnt"

# deleting most files is refused without --allow-deletions
rm "$src"/a/f1[0-9] "$src"/a/f2[0-9] "$src"/a/f3[0-9]
set +e
dfs_ingest --store "$store" --name inc "$src" >/dev/null 2>"$W/del.err"
rc=$?
set -e
[ $rc -eq 2 ] && grep -q -- --allow-deletions "$W/del.err" && pass "mass deletion refused" ||
	fail "mass deletion not refused (exit $rc)"
dfs_ingest --store "$store" --name inc --allow-deletions "$src" >/dev/null ||
	fail "--allow-deletions ingest"
dfs_mount "$store" "$mnt"
"$DFS_BIN/dfs-treecmp" --ignore-atime --ignore-ctime "$src" "$mnt/.sources/inc" >"$W/cmp2.log" 2>&1 &&
	pass "deletions applied" || { head -n 30 "$W/cmp2.log"; fail "view differs after deletions"; }
dfs_umount "$mnt"

# another filesystem under the same name
mkdir -p "$W/tmpfs"
mount -t tmpfs tmpfs "$W/tmpfs"
DFS_CLEAN_MOUNTS="${DFS_CLEAN_MOUNTS:-} $W/tmpfs"
echo other >"$W/tmpfs/file"
set +e
dfs_ingest --store "$store" --name inc "$W/tmpfs" >/dev/null 2>"$W/rep.err"
rc=$?
set -e
[ $rc -eq 2 ] && grep -q -- --replace "$W/rep.err" && pass "other filesystem refused" ||
	fail "other filesystem under the same name not refused (exit $rc)"
# --replace keeps the deletion threshold (t_replace_guard): one file for about a dozen
dfs_ingest --store "$store" --name inc --replace --allow-deletions "$W/tmpfs" >/dev/null &&
	pass "--replace" || fail "--replace failed"
umount "$W/tmpfs"
dfs_finish
