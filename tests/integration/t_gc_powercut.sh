#!/usr/bin/env bash
# Power-cut walks over defrag-gc and defrag-forget (the tool of t_powercut.sh: the store on dfs-faultfs, which
# undoes every change not made durable, RocksDB's files included). The base store holds
# a and b with a forgotten, so the gc sweeps and rewrites. For each cut point (evenly
# spread ops, right after each pack fdatasync and each WAL fdatasync of the probe, and
# after the last op), on the backing directory once the cut is applied:
#   - defrag-verify passes and b reads back bit-exact (nothing committed is lost);
#   - defrag-recover on a copy loses nothing and shows b bit-exact;
#   - the gc run again finishes: verify --read-data clean, b bit-exact, and the store
#     holds the chunks and stored bytes an uncut gc leaves.
# The forget walk cuts `defrag-forget a` on the store before the forget, and checks the
# same after a rerun of the forget (which may find a already gone) and a gc. The
# snapforget walk cuts `defrag-forget --keep-last 1 b` after b's second ingest (d/m8 gone,
# d/m9 new) the same way (its rerun finds nothing left to drop).
# In CI a walk cuts after 3 ops evenly spread from a random phase (DFS_WALK_POINTS), after
# the last and one other random pack fdatasync and WAL fdatasync, and after the last op;
# DFS_WALK_PHASE and DFS_WALK_PICK (printed) repeat a run. DFS_SOAK=1 cuts after every op.
set -eu
. "$(dirname "$0")/lib.sh"
DFS_NEEDS="defrag-ingest defrag-forget defrag-gc defrag-verify defrag-recover defrag-stat defragfs dfs-faultfs" dfs_setup

mnt=$W/mnt
ff=$W/ff
mkdir -p "$mnt" "$ff" "$W/a/d" "$W/b/d" "$W/base"
for i in $(seq 1 12); do head -c $((i * 30000)) /dev/urandom >"$W/a/d/r$i"; done
for i in $(seq 1 6); do seq 1 $((i * 3000)) >"$W/a/t$i"; cp "$W/a/t$i" "$W/b/t$i"; done
for i in $(seq 1 8); do head -c $((i * 20000)) /dev/urandom >"$W/b/d/m$i"; done
dfs_ingest --store "$W/base/store" --name a "$W/a" || fail "ingest a"
dfs_ingest --store "$W/base/store" --name b "$W/b" || fail "ingest b"
cp -a "$W/base" "$W/unforgot"
"$DFS_BIN/defrag-forget" --store "$W/base/store" a >/dev/null || fail "forget a"
cp -a "$W/base" "$W/clean"
"$DFS_BIN/defrag-gc" --store "$W/clean/store" >/dev/null || fail "clean gc"
clean=$("$DFS_BIN/defrag-stat" --store "$W/clean/store" --json | jq -c '[.chunks, .stored_bytes]')

ff_pid=
ff_umount() {
	fusermount3 -u "$ff" 2>/dev/null || umount -l "$ff"
	wait "$ff_pid" || { fail "dfs-faultfs exited with an error"; return 1; }
}
b_exact() {	# STORE: b bit-exact in STORE's view
	dfs_mount "$1" "$mnt" || return 1
	local rc=0
	"$DFS_BIN/dfs-treecmp" --ignore-atime --ignore-ctime "$W/b" "$mnt/.sources/b" \
		>"$W/cmp" 2>&1 || rc=1
	dfs_umount "$mnt"
	return $rc
}

# walk NAME FROM CMD...: the probe of CMD on a copy of FROM, then each cut point
walk() {
	local name=$1 from=$2 total npts phase pick npack nwal t0 k bad cut back why got
	shift 2
	rm -rf "$W/probe"
	cp -a "$from" "$W/probe"
	dfs_faultfs_mount "$W/probe" "$ff" "count_file=$W/count,log_file=$W/log" || exit 1
	ff_pid=$DFS_FF_PID
	"$@" --store "$ff/store" >/dev/null 2>&1 || fail "$name: probe"
	ff_umount
	rm -rf "$W/probe"
	total=$(cat "$W/count")
	echo "$name: $total ops on dfs-faultfs"
	# CI: npts ops evenly spread from a random phase, and of the cuts right after a pack
	# or WAL fdatasync the last and one other at random (DFS_WALK_PHASE and
	# DFS_WALK_PICK, said below, repeat a run); the soak takes every op and every sync
	npts=${DFS_WALK_POINTS:-3}
	phase=${DFS_WALK_PHASE:-$((RANDOM % 1000))}
	pick=${DFS_WALK_PICK:-$RANDOM}
	echo "$name: DFS_WALK_PHASE=$phase DFS_WALK_PICK=$pick"
	npack=$(grep -c ' fdatasync /store/packs/.*\.pack$' "$W/log" || true)
	nwal=$(grep -c ' fdatasync /store/index/[0-9]*\.log$' "$W/log" || true)
	syncs() {	# COUNT: the sync cut points to take (1-based)
		if [ "${DFS_SOAK:-0}" = 1 ] || [ "$1" -le 2 ]; then seq 1 "$1"
		else printf '%s\n%s\n' $((pick % ($1 - 1) + 1)) "$1"; fi
	}
	{
		if [ "${DFS_SOAK:-0}" = 1 ]; then seq 1 "$total"; else
			for i in $(seq 0 $((npts - 1))); do
				echo $(( i * total / npts + phase * total / (1000 * npts) + 1 ))
			done | uniq; fi | sed 's/^/cut_after=/'
		for k in $(syncs "$npack"); do
			echo "cut_after_match=$k:fdatasync:/store/packs/*.pack"
		done
		for k in $(syncs "$nwal"); do
			echo "cut_after_match=$k:fdatasync:/store/index/*.log"
		done
		echo "cut_after=999999999"
	} >"$W/points"
	t0=$SECONDS
	k=0 bad=0
	while IFS= read -r cut <&3; do
		k=$((k + 1))
		back=$W/back
		rm -rf "$back"
		cp -a "$from" "$back"
		dfs_faultfs_mount "$back" "$ff" "$cut" || { fail "$name $cut: faultfs"; continue; }
		ff_pid=$DFS_FF_PID
		"$@" --store "$ff/store" >/dev/null 2>&1 || true
		ff_umount || continue
		why=
		"$DFS_BIN/defrag-verify" --store "$back/store" >"$W/v" 2>&1 || why="$why verify;"
		b_exact "$back/store" || why="$why b differs after the cut;"
		cp -a "$back" "$W/rec"
		"$DFS_BIN/defrag-recover" --store "$W/rec/store" >"$W/rec.out" 2>&1 ||
			why="$why recover lost data;"
		b_exact "$W/rec/store" || why="$why b differs after recover;"
		rm -rf "$W/rec"
		# a forget whose first commit was made says "no source named" on its rerun
		"$@" --store "$back/store" >"$W/rerun" 2>&1 || [ "$name" = forget ] ||
			why="$why rerun failed;"
		if [ "$name" != gc ]; then
			"$DFS_BIN/defrag-gc" --store "$back/store" >"$W/rerun" 2>&1 ||
				why="$why gc after the rerun failed;"
		fi
		"$DFS_BIN/defrag-verify" --store "$back/store" --read-data >"$W/v" 2>&1 ||
			why="$why verify after rerun;"
		got=$("$DFS_BIN/defrag-stat" --store "$back/store" --json | jq -c '[.chunks, .stored_bytes]')
		[ "$got" = "$clean" ] || why="$why holds $got, uncut $clean;"
		b_exact "$back/store" || why="$why b differs after rerun;"
		if [ -n "$why" ]; then
			bad=$((bad + 1))
			fail "$name $cut:$why"
			cp -a "$back" "$W/kept-$name-$k"
		fi
	done 3<"$W/points"
	[ $bad != 0 ] || pass "$name power-cut walk: $k cut points of $total ops, all clean"
	echo "$name: $((SECONDS - t0)) s"
}

walk gc "$W/base" "$DFS_BIN/defrag-gc"
walk forget "$W/unforgot" "$DFS_BIN/defrag-forget" a

# dropping a snapshot: b again without d/m8 and with d/m9, its first snapshot dropped
cp -a "$W/unforgot" "$W/snapbase"
rm "$W/b/d/m8"
head -c 50000 /dev/urandom >"$W/b/d/m9"
dfs_ingest --store "$W/snapbase/store" --name b --allow-deletions "$W/b" || fail "re-ingest b"
cp -a "$W/snapbase" "$W/snapclean"
"$DFS_BIN/defrag-forget" --store "$W/snapclean/store" --keep-last 1 b >/dev/null ||
	fail "drop snapshot"
"$DFS_BIN/defrag-gc" --store "$W/snapclean/store" >/dev/null || fail "clean gc after the drop"
clean=$("$DFS_BIN/defrag-stat" --store "$W/snapclean/store" --json | jq -c '[.chunks, .stored_bytes]')
walk snapforget "$W/snapbase" "$DFS_BIN/defrag-forget" --keep-last 1 b
dfs_finish
