#!/usr/bin/env bash
# issue 23, item 2: a second name for a source already in the store (the same directory of
# the same filesystem, also reached through another path: a bind mount) is refused with
# exit 2 naming the existing source, unless --alias; other directories of the same
# filesystem (a sibling, a subdirectory) are new sources as before.
set -eu
. "$(dirname "$0")/lib.sh"
dfs_setup

store=$W/store
mnt=$W/mnt
mkdir -p "$W/nas/share/git" "$W/other" "$mnt" "$W/bind"
for i in $(seq 1 20); do head -c 2000 /dev/urandom >"$W/nas/share/f$i"; done
echo code >"$W/nas/share/git/main.c"
echo other >"$W/other/o"
dfs_ingest --store "$store" "$W/nas" >/dev/null || fail "first ingest"

sources() {	# the names under /.sources, one line
	dfs_mount "$store" "$mnt"
	ls "$mnt/.sources" | tr '\n' ' '
	dfs_umount "$mnt"
}

rc=0
"$DFS_BIN/defrag-ingest" --progress=never --store "$store" --name nas-2024 "$W/nas" \
	>"$W/o1" 2>"$W/e1" || rc=$?
cat "$W/e1"
[ $rc -eq 2 ] && grep -q "as source 'nas'" "$W/e1" && grep -q -- "--alias" "$W/e1" &&
	pass "a second name refused (exit 2), naming 'nas'" || fail "second name: exit $rc"
[ ! -s "$W/o1" ] && pass "no summary after the refusal" || fail "summary: $(cat "$W/o1")"

# the same directory through a bind mount
mount --bind "$W/nas" "$W/bind"
DFS_CLEAN_MOUNTS="${DFS_CLEAN_MOUNTS:-} $W/bind"
rc=0
dfs_ingest --store "$store" --name bound "$W/bind" >/dev/null 2>"$W/e2" || rc=$?
[ $rc -eq 2 ] && grep -q "as source 'nas'" "$W/ingest.log" &&
	pass "the same directory by another path refused" || fail "bind mount: exit $rc"
umount "$W/bind"
[ "$(sources)" = "nas " ] && pass "no second source was made" || fail "sources: $(sources)"

# not the same directory: a sibling and a subdirectory are new sources
dfs_ingest --store "$store" "$W/other" >/dev/null && pass "another directory accepted" ||
	fail "another directory refused"
dfs_ingest --store "$store" --name sub "$W/nas/share/git" >/dev/null &&
	pass "a subdirectory under a new name accepted" || fail "a subdirectory refused"

# explicitly: --alias
dfs_ingest --store "$store" --name nas-2024 --alias "$W/nas" >/dev/null &&
	pass "--alias accepted" || fail "--alias refused"
[ "$(sources)" = "nas nas-2024 other sub " ] && pass "both names are sources" ||
	fail "sources: $(sources)"
# the old name still updates as before
echo more >>"$W/nas/share/f1"
dfs_ingest --store "$store" "$W/nas" >/dev/null && pass "re-ingest under the first name" ||
	fail "re-ingest under the first name refused"
dfs_finish
