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
dfs_finish
