#!/usr/bin/env bash
# Ingest a generated edge-case tree, mount, and compare every byte and attribute of the
# source with /.sources/NAME; verify (index vs packs, --read-data, --against) is clean;
# a second ingest reads no file data; the index rebuilt from packs gives the same tree.
set -eu
. "$(dirname "$0")/lib.sh"
dfs_setup

src=$W/src
store=$W/store
mnt=$W/mnt
mkdir -p "$mnt"
"$DFS_BIN/dfs-treegen" "$src" --seed 7 >"$W/treegen.log"

dfs_ingest --store "$store" --name edge --json "$src" >"$W/ingest1.json" ||
	fail "first ingest exited $?"
grep -q '"failures": \[\]' "$W/ingest1.json" || fail "first ingest reported failures"

dfs_mount "$store" "$mnt"
"$DFS_BIN/dfs-treecmp" --ignore-atime --ignore-ctime "$src" "$mnt/.sources/edge" \
	>"$W/cmp1.log" 2>&1 && pass "source view equals the source" ||
	{ cat "$W/cmp1.log" | head -n 40; fail "source view differs"; }
# the root does not list .sources, but it is reachable by name
ls -a "$mnt" | grep -qx '.sources' && fail ".sources listed in the root" || pass ".sources hidden"
[ -d "$mnt/.sources/edge" ] && pass ".sources reachable" || fail ".sources not reachable"
# every source file is reachable in the organized tree: each content of the source is
# some organized file's content, and there are at least as many organized files as
# distinct contents (duplicates at one organized path merge, so not more than files)
nsrc=$(find "$src" -type f | wc -l)
norg=$(find "$mnt" -type f | wc -l)
dfs_all_reachable "$src" "$mnt" && [ "$norg" -ge "$(wc -l <"$W/reach.src")" ] &&
	[ "$norg" -le "$nsrc" ] && pass "organized tree has every content ($norg files, source $nsrc)" ||
	fail "organized tree misses content ($norg files, source $nsrc)"
dfs_umount "$mnt"

"$DFS_BIN/defrag-verify" --store "$store" --read-data >"$W/verify.log" 2>&1 &&
	pass "verify --read-data clean" || { cat "$W/verify.log"; fail "verify found problems"; }
"$DFS_BIN/defrag-verify" --store "$store" --against "$src" --name edge >"$W/against.log" 2>&1 &&
	pass "verify --against clean" || { head -n 40 "$W/against.log"; fail "--against failed"; }
"$DFS_BIN/defrag-stat" --store "$store" | grep -q 'safe to wipe:  yes' &&
	pass "wipe ledger says yes" || fail "wipe ledger not yes after a clean --against"

# no change: no file data read
dfs_ingest --store "$store" --name edge --json "$src" >"$W/ingest2.json" ||
	fail "second ingest exited $?"
grep -q '"bytes_read": 0,' "$W/ingest2.json" && pass "no-change re-ingest read nothing" ||
	{ grep bytes_read "$W/ingest2.json"; fail "no-change re-ingest read data"; }
"$DFS_BIN/defrag-stat" --store "$store" | grep -q 'safe to wipe:  no' &&
	pass "ledger resets after an ingest" || fail "ledger still yes after a new ingest"

# the index is a cache: rebuild it from the packs and compare again
rm -rf "$store/index"
"$DFS_BIN/defrag-recover" --store "$store" >"$W/recover.log" 2>&1 &&
	pass "recover" || { cat "$W/recover.log"; fail "recover failed"; }
dfs_mount "$store" "$mnt"
"$DFS_BIN/dfs-treecmp" --ignore-atime --ignore-ctime "$src" "$mnt/.sources/edge" \
	>"$W/cmp2.log" 2>&1 && pass "rebuilt index: source view equals the source" ||
	{ head -n 40 "$W/cmp2.log"; fail "rebuilt index differs"; }
dfs_umount "$mnt"
dfs_finish
