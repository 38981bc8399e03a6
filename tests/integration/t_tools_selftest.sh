#!/usr/bin/env bash
# The oracle must be able to fail: a copy compares equal, and each kind of mutation is
# reported by dfs-treecmp.
set -eu
. "$(dirname "$0")/lib.sh"
DFS_NEEDS=" " dfs_setup
"$DFS_BIN/dfs-treegen" "$W/a" --seed 5 >/dev/null
copy() {	# the same seed makes the same tree (cp -a cannot copy paths past PATH_MAX)
	rm -rf "$W/b"
	"$DFS_BIN/dfs-treegen" "$W/b" --seed 5 >/dev/null
}
copy
"$DFS_BIN/dfs-treecmp" --ignore-atime --ignore-ctime "$W/a" "$W/b" >"$W/cmp" &&
	pass "a copy is equal" || { head "$W/cmp"; fail "a copy differs"; }
check() {	# check WHAT: expects exit 1 ("different", not a crash or an I/O error)
	local rc=0
	"$DFS_BIN/dfs-treecmp" --ignore-atime --ignore-ctime "$W/a" "$W/b" >"$W/cmp" 2>&1 ||
		rc=$?
	if [ $rc -eq 1 ] && [ -s "$W/cmp" ]; then
		pass "detected: $1"
	else
		head "$W/cmp"
		fail "not detected: $1 (exit $rc)"
	fi
	copy
}
printf 'X' | dd of="$W/b/files/f0-300000-k1" bs=1 seek=150000 conv=notrunc 2>/dev/null
check "one byte"
setfattr -n user.binary -v changed "$W/b/meta/xattrs"; check "an xattr value"
chmod 0600 "$W/b/meta/setuid"; check "a mode"
touch -m -d '2001-01-01 00:00:00.000000001' "$W/b/files/f0-1-k0"; check "an mtime"
ln -sfn elsewhere "$W/b/links/sym-rel"; check "a symlink target"
cp "$W/b/links/target" "$W/b/links/t2" && mv "$W/b/links/t2" "$W/b/links/hard0"; check "a broken hard link"
rm "$W/b/empty/empty-file"; check "a missing file"
dfs_finish
