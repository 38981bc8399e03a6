#!/usr/bin/env bash
# Crash-point walk (needs a DFS_TEST_FAULTS build, as the sanitizer build of tests/run.sh):
# count the mutating pack/config operations of a small ingest, then for a sample of
# points N crash just before operation N (and, separately, fail it with EIO or ENOSPC),
# then run the same command again: it must finish, verify clean, and give exactly the
# source. In CI 20 points a mode from a random first op (DFS_WALK_PHASE repeats a run);
# DFS_SOAK=1 walks every point.
set -eu
. "$(dirname "$0")/lib.sh"
dfs_setup

src=$W/src
mnt=$W/mnt
mkdir -p "$mnt" "$src/a" "$src/b"
for i in $(seq 1 30); do head -c $((i * 7000)) /dev/urandom >"$src/a/r$i"; done
for i in $(seq 1 10); do seq 1 $((i * 5000)) >"$src/b/t$i"; cp "$src/b/t$i" "$src/a/copy$i"; done
ln "$src/a/r1" "$src/b/hardlink"

DFS_FAULT_COUNT=$W/count "$DFS_BIN/defrag-ingest" --store "$W/probe" --name c \
	--progress=never "$src" >/dev/null 2>&1 || fail "probe ingest"
if [ ! -s "$W/count" ]; then
	echo "not a DFS_TEST_FAULTS build: skipping"
	exit 77
fi
total=$(cat "$W/count")
dfs_walk_sample "$total" 20	# CI: 20 points a mode from a random first op
echo "ingest has $total mutating operations; walking one op in $step from op $phase (DFS_WALK_PHASE=$phase)"
for mode in crash EIO ENOSPC; do
	for n in $(seq "$phase" "$step" "$total"); do
		store=$W/s-$mode-$n
		set +e
		if [ $mode = crash ]; then
			DFS_FAULT_AT=$n DFS_FAULT_CRASH=1 "$DFS_BIN/defrag-ingest" --store "$store" \
				--name c --progress=never "$src" >/dev/null 2>&1
		else
			DFS_FAULT_AT=$n DFS_FAULT_ERRNO=$mode "$DFS_BIN/defrag-ingest" --store "$store" \
				--name c --progress=never "$src" >/dev/null 2>"$W/err"
		fi
		rc=$?
		set -e
		if [ $mode != crash ] && [ $rc -eq 0 ]; then
			# an injected error must never end in "everything stored"
			fail "$mode at op $n: exit 0"
		fi
		if [ -f "$store/config" ]; then
			"$DFS_BIN/defrag-verify" --store "$store" >"$W/v" 2>&1 || {
				# a store whose first commit never happened has no index yet
				grep -q 'no index yet' "$W/v" || { cat "$W/v"; fail "$mode at op $n: verify"; }
			}
		fi
		dfs_ingest --store "$store" --name c "$src" >/dev/null 2>&1 ||
			fail "$mode at op $n: rerun failed"
		dfs_mount "$store" "$mnt"
		"$DFS_BIN/dfs-treecmp" --ignore-atime --ignore-ctime "$src" "$mnt/.sources/c" \
			>"$W/cmp" 2>&1 || { head "$W/cmp"; fail "$mode at op $n: rerun differs"; }
		dfs_umount "$mnt"
		rm -rf "$store"
	done
	pass "$mode walk over $total operations (step $step, from op $phase)"
done
dfs_finish
