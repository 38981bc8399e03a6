#!/usr/bin/env bash
# Crash-point walk over defrag-gc, defrag-forget and defrag-forget --keep-last (needs a DFS_TEST_FAULTS build, as
# the sanitizer build of tests/run.sh). The base store holds sources a and b; a is
# forgotten (the forget walk), then the gc has chunks to sweep and a pack to rewrite
# (the gc walk). For a sample of points N the command crashes just before mutating
# operation N (and, separately, fails it with EIO or ENOSPC): in CI 4 a walk
# (DFS_WALK_POINTS), evenly spread from a random first op (DFS_WALK_PHASE repeats a run);
# DFS_SOAK=1 walks every op. Then:
#   - defrag-recover on a copy of the crashed store loses nothing and shows b bit-exact;
#   - the same command run again finishes (a forget whose first commit was made finds
#     the source gone: exit 2, "no source named"); for the forget walk a gc follows (it
#     finishes a forget cut short and rebuilds a stale organized tree); verify
#     --read-data is clean; b reads back bit-exact; and the store holds the chunks and
#     stored bytes an uncut forget + gc leaves.
# Then the same over dropping a snapshot of b (defrag-forget --keep-last 1 b).
set -eu
. "$(dirname "$0")/lib.sh"
DFS_NEEDS="defrag-ingest defrag-forget defrag-gc defrag-verify defrag-recover defrag-stat defragfs" dfs_setup

mnt=$W/mnt
mkdir -p "$mnt" "$W/a/d" "$W/b/d"
for i in $(seq 1 12); do head -c $((i * 30000)) /dev/urandom >"$W/a/d/r$i"; done
for i in $(seq 1 6); do seq 1 $((i * 3000)) >"$W/a/t$i"; cp "$W/a/t$i" "$W/b/t$i"; done
for i in $(seq 1 8); do head -c $((i * 20000)) /dev/urandom >"$W/b/d/m$i"; done
ln "$W/b/d/m1" "$W/b/hardlink"
dfs_ingest --store "$W/base" --name a "$W/a" || fail "ingest a"
dfs_ingest --store "$W/base" --name b "$W/b" || fail "ingest b"
cp -a "$W/base" "$W/forgot"
"$DFS_BIN/defrag-forget" --store "$W/forgot" a >/dev/null || fail "forget a"
cp -a "$W/forgot" "$W/clean"
"$DFS_BIN/defrag-gc" --store "$W/clean" >/dev/null || fail "clean gc"
clean=$("$DFS_BIN/defrag-stat" --store "$W/clean" --json | jq -c '[.chunks, .stored_bytes]')

# check_b STORE WHAT: b is bit-exact and a is gone in STORE's views
check_b() {
	dfs_mount "$1" "$mnt" || { fail "$2: mount"; return; }
	"$DFS_BIN/dfs-treecmp" --ignore-atime --ignore-ctime "$W/b" "$mnt/.sources/b" \
		>"$W/cmp" 2>&1 || { head "$W/cmp"; fail "$2: b differs"; }
	dfs_umount "$mnt"
}

# walk NAME FROM COMMAND...: crash/fail each sampled op of COMMAND on a copy of FROM
walk() {
	local name=$1 from=$2 total step phase t0 n mode store rc
	shift 2
	rm -rf "$W/probe"
	cp -a "$from" "$W/probe"
	DFS_FAULT_COUNT=$W/count "$@" --store "$W/probe" >/dev/null 2>&1 || fail "$name probe"
	if [ ! -s "$W/count" ]; then
		echo "not a DFS_TEST_FAULTS build: skipping"
		exit 77
	fi
	total=$(cat "$W/count")
	dfs_walk_sample "$total" 4	# CI: 4 points from a random first op
	echo "$name has $total mutating operations; walking one op in $step from op $phase (DFS_WALK_PHASE=$phase)"
	t0=$SECONDS
	for mode in crash EIO ENOSPC; do
		for n in $(seq "$phase" "$step" "$total"); do
			store=$W/s-$name-$mode-$n
			rm -rf "$store"
			cp -a "$from" "$store"
			set +e
			if [ $mode = crash ]; then
				DFS_FAULT_AT=$n DFS_FAULT_CRASH=1 "$@" --store "$store" >/dev/null 2>&1
			else
				DFS_FAULT_AT=$n DFS_FAULT_ERRNO=$mode "$@" --store "$store" \
					>/dev/null 2>"$W/err"
			fi
			set -e
			if [ $mode = crash ]; then
				cp -a "$store" "$W/rec"
				"$DFS_BIN/defrag-recover" --store "$W/rec" >"$W/rec.out" 2>&1 ||
					{ cat "$W/rec.out"; fail "$name $mode at op $n: recover lost data"; }
				check_b "$W/rec" "$name $mode at op $n (recovered)"
				rm -rf "$W/rec"
			fi
			# a forget whose first commit was made: the source is gone already, and
			# the rerun says so (exit 2) after finishing the forget
			rc=0
			"$@" --store "$store" >"$W/rerun" 2>&1 || rc=$?
			[ $rc -eq 0 ] || { [ "$name" = forget ] && [ $rc -eq 2 ] &&
				grep -q "no source named" "$W/rerun"; } ||
				{ cat "$W/rerun"; fail "$name $mode at op $n: rerun failed ($rc)"; }
			if [ "$name" != gc ]; then
				"$DFS_BIN/defrag-gc" --store "$store" >"$W/rerun" 2>&1 ||
					{ cat "$W/rerun"; fail "$name $mode at op $n: gc after the rerun"; }
			fi
			"$DFS_BIN/defrag-verify" --store "$store" --read-data >"$W/v" 2>&1 ||
				{ tail -n 5 "$W/v"; fail "$name $mode at op $n: verify"; }
			got=$("$DFS_BIN/defrag-stat" --store "$store" --json | jq -c '[.chunks, .stored_bytes]')
			[ "$got" = "$clean" ] || fail "$name $mode at op $n: store holds $got, an uncut run $clean"
			check_b "$store" "$name $mode at op $n"
			rm -rf "$store"
		done
		pass "$name: $mode walk over $total operations (one in $step from $phase)"
	done
	echo "$name: $((SECONDS - t0)) s"
}

walk gc "$W/forgot" "$DFS_BIN/defrag-gc"
walk forget "$W/base" "$DFS_BIN/defrag-forget" a

# The snapshot walk: b ingested again without d/m8 and with d/m9, then its first snapshot
# dropped (defrag-forget --keep-last 1 b); the rerun finds nothing left to drop (exit 0)
# after finishing a drop cut short, and a gc frees m8 as an uncut forget + gc does.
cp -a "$W/base" "$W/snapbase"
rm "$W/b/d/m8"
head -c 50000 /dev/urandom >"$W/b/d/m9"
dfs_ingest --store "$W/snapbase" --name b --allow-deletions "$W/b" || fail "re-ingest b"
cp -a "$W/snapbase" "$W/snapclean"
"$DFS_BIN/defrag-forget" --store "$W/snapclean" --keep-last 1 b >/dev/null || fail "drop snapshot"
"$DFS_BIN/defrag-gc" --store "$W/snapclean" >/dev/null || fail "clean gc after the drop"
clean=$("$DFS_BIN/defrag-stat" --store "$W/snapclean" --json | jq -c '[.chunks, .stored_bytes]')
walk snapforget "$W/snapbase" "$DFS_BIN/defrag-forget" --keep-last 1 b
dfs_finish
