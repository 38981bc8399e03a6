#!/usr/bin/env bash
# defrag-forget: a whole source out of every view. Two sources share files; forgetting
# one removes /.sources/NAME and every origin of it from the organized tree (rebuilt),
# keeps the other byte for byte, and is in the op log: defrag-recover afterwards gives
# the same views. --dry-run changes nothing; an unknown name and a source marked
# "safe to wipe: yes" without --yes exit 2 and change nothing.
set -eu
. "$(dirname "$0")/lib.sh"
DFS_NEEDS="defrag-ingest defrag-forget defrag-verify defrag-recover defragfs" dfs_setup

store=$W/store
mnt=$W/mnt
m2=$W/m2
mkdir -p "$mnt" "$m2" "$W/a/docs" "$W/a/only" "$W/b/docs" "$W/b/mine"
for i in $(seq 1 20); do seq 1 $((i * 3000)) >"$W/a/docs/t$i.txt"; done
cp -a "$W/a/docs/." "$W/b/docs/"
for i in $(seq 1 8); do head -c $((i * 40000)) /dev/urandom >"$W/a/only/r$i.bin"; done
for i in $(seq 1 8); do head -c $((i * 30000)) /dev/urandom >"$W/b/mine/m$i.bin"; done
dfs_ingest --store "$store" --name a "$W/a" || fail "ingest a"
dfs_ingest --store "$store" --name b "$W/b" || fail "ingest b"
F=$DFS_BIN/defrag-forget

origins() {	# every origin line of every organized file under $1
	find "$1" -type f -exec getfattr --only-values -n user.defrag.origins {} + 2>/dev/null
}

# usage and refusals change nothing
rc=0; "$F" --store "$store" nosuch >"$W/o" 2>&1 || rc=$?
[ $rc -eq 2 ] && grep -q "no source named 'nosuch'" "$W/o" && pass "unknown name: exit 2" ||
	{ cat "$W/o"; fail "unknown name ($rc)"; }
rc=0; "$F" --store "$store" >"$W/o" 2>&1 || rc=$?
[ $rc -eq 2 ] && pass "no name: exit 2" || fail "no name ($rc)"
rc=0; "$F" --store "$store" --dry-run --json a >"$W/dry.json" 2>&1 || rc=$?
[ $rc -eq 0 ] && [ "$(jq '.forgotten[0].files' "$W/dry.json")" -eq 28 ] &&
	pass "dry run counts the view" || { cat "$W/dry.json"; fail "dry run ($rc)"; }

dfs_mount "$store" "$mnt"
[ -d "$mnt/.sources/a" ] && origins "$mnt" | grep -q '^a:' &&
	pass "before: a has a view and origins" || fail "before: a not shown"
dfs_umount "$mnt"

rc=0; "$F" --store "$store" a >"$W/f1" 2>&1 || rc=$?
[ $rc -eq 0 ] && grep -q "forgot source a: 28 files" "$W/f1" && pass "forget a: exit 0" ||
	{ cat "$W/f1"; fail "forget a ($rc)"; }
dfs_mount "$store" "$mnt"
[ ! -e "$mnt/.sources/a" ] && pass "/.sources/a is gone" || fail "/.sources/a still there"
if origins "$mnt" | grep -q '^a:'; then fail "origins of a left in the tree"; else
	pass "no origin of a in the organized tree"; fi
"$DFS_BIN/dfs-treecmp" --ignore-atime --ignore-ctime "$W/b" "$mnt/.sources/b" >"$W/cmp" 2>&1 &&
	pass "b is unchanged" || { head "$W/cmp"; fail "b differs after forgetting a"; }
dfs_all_reachable "$W/b" "$mnt" && pass "every file of b is in the organized tree" ||
	fail "files of b missing from the tree"
if find "$mnt" -name 'r*.bin' | grep -q .; then fail "a's own files still organized"; else
	pass "a's own files left the organized tree"; fi
"$DFS_BIN/defrag-verify" --store "$store" >"$W/v" 2>&1 && pass "verify clean after forget" ||
	{ cat "$W/v"; fail "verify after forget"; }

# the forget is in the op log: a rebuilt index shows the same views
cp -a "$store" "$W/rec"
"$DFS_BIN/defrag-recover" --store "$W/rec" >"$W/rec.out" 2>&1 || { cat "$W/rec.out"; fail "recover"; }
dfs_mount "$W/rec" "$m2"
[ ! -e "$m2/.sources/a" ] && pass "recovered: no /.sources/a" || fail "recovered: a is back"
"$DFS_BIN/dfs-treecmp" "$mnt" "$m2" >"$W/cmp2" 2>&1 &&
	"$DFS_BIN/dfs-treecmp" "$mnt/.sources/b" "$m2/.sources/b" >>"$W/cmp2" 2>&1 &&
	pass "recovered index: both views tree-compare equal" ||
	{ head "$W/cmp2"; fail "recovered views differ"; }
dfs_umount "$m2"
dfs_umount "$mnt"

# "safe to wipe: yes" asks for --yes
"$DFS_BIN/defrag-verify" --store "$store" --against "$W/b" --name b >"$W/g" 2>&1 ||
	{ cat "$W/g"; fail "gate of b"; }
rc=0; "$F" --store "$store" b >"$W/f2" 2>&1 || rc=$?
[ $rc -eq 2 ] && grep -q "safe to wipe: yes" "$W/f2" && grep -q -- "--yes" "$W/f2" &&
	pass "safe-to-wipe source refused without --yes" || { cat "$W/f2"; fail "no refusal ($rc)"; }
dfs_mount "$store" "$mnt"
[ -d "$mnt/.sources/b" ] && pass "refused: b is still there" || fail "refused but b gone"
dfs_umount "$mnt"
rc=0; "$F" --store "$store" --yes --all --json >"$W/f3" 2>"$W/f3.err" || rc=$?
[ $rc -eq 0 ] && pass "--yes --all forgets b" || { cat "$W/f3" "$W/f3.err"; fail "--yes ($rc)"; }
# b's copy alignment records (signatures, postings) go with it, in the rebuild
[ "$(jq '.alignment_sources_swept' "$W/f3")" = 1 ] &&
	pass "b's alignment records and postings removed" || { cat "$W/f3"; fail "not swept"; }
dfs_mount "$store" "$mnt"
[ ! -e "$mnt/.sources/b" ] && [ -z "$(find "$mnt" -type f | head -n 1)" ] &&
	pass "nothing left in any view" || fail "entries left after forgetting every source"
dfs_umount "$mnt"
"$DFS_BIN/defrag-verify" --store "$store" >"$W/v" 2>&1 && pass "verify clean (empty views)" ||
	{ cat "$W/v"; fail "verify after --all"; }
dfs_finish
