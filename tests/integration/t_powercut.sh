#!/usr/bin/env bash
# Power-cut walk. The store lives on dfs-faultfs (tests/tools/faultfs.c), which undoes
# every write, truncate and directory change not made durable by fsync / fdatasync / a
# directory fsync, as a power cut would. That reaches RocksDB's WAL, SST, MANIFEST and
# CURRENT files, which store/sio cannot.
#
# Two walks, each over a sample of cut points (the power goes off right after op N, or
# right after the Kth sync of a pack or of the RocksDB WAL):
#   create   the first ingest (source a) into an empty directory: store creation;
#   second   with a committed, an ingest of source b (duplicates of a's files, duplicates
#            within b, a hard link).
# After each cut, on the backing directory (faultfs unmounted, the cut applied):
#   - defrag-verify passes, or the store has no index yet;
#   - nothing committed is lost: a is intact after every cut of the second walk, and the
#     ingest's own source when it had reported success (the cut right after the last op);
#   - nothing half-written is visible: every file shown under /.sources/b is b's file;
#   - the same ingest run again finishes, and the mount shows exactly the sources, and
#     the organized tree (names, types, sizes, origins) an uncut run gives.
# Points: evenly spread op numbers; right after each sync of a pack or of the WAL (the
# commit boundaries), named by event (cut_after_match) because threads and RocksDB's
# background work shift op numbers from run to run; and right after the last op.
# DFS_SOAK=1 walks every op number; DFS_SANITIZED=1 (the ASan run) takes fewer.
# Seeded bug (DFS_TEST_FAULTS builds): DFS_FAULT_SKIP_SYNC=1 makes the second ingest skip
# its first pack fdatasync; the same walk must then catch at least one bad cut point.
# A failing point keeps its backing directory as $W/kept-WALK-K (K: its place in the walk).
set -eu
. "$(dirname "$0")/lib.sh"
DFS_NEEDS="defrag-ingest defrag-verify defragfs dfs-faultfs" dfs_setup

srca=$W/srca
srcb=$W/srcb
mnt=$W/mnt
ff=$W/ff
mkdir -p "$mnt" "$ff" "$srca/d" "$srcb/d" "$srcb/e"
for i in $(seq 1 16); do head -c $((i * 9000)) /dev/urandom >"$srca/d/r$i"; done
for i in $(seq 1 8); do seq 1 $((i * 3000)) >"$srca/t$i"; done
for i in $(seq 1 14); do head -c $((i * 7000 + 100)) /dev/urandom >"$srcb/d/n$i"; done
for i in $(seq 1 8); do cp "$srca/d/r$i" "$srcb/e/from-a$i"; done
for i in $(seq 1 6); do seq 7 $((i * 4000)) >"$srcb/t$i"; cp "$srcb/t$i" "$srcb/e/dup$i"; done
ln "$srcb/d/n3" "$srcb/hardlink"
echo tiny >"$srcb/tiny"

# ff_mount BACKING [OPTS]: dfs-faultfs on $ff, in the background, until it is mounted.
# ff_umount: unmounts (dfs-faultfs applies the cut then) and checks its exit status.
# In the ASan run dfs-faultfs gets no leak check: it uses libfuse's high-level API, whose
# per-open state stays allocated when the kernel ends the connection before sending the
# RELEASE of a file closed just before the unmount (a cut ingest's files), and that state
# is libfuse's, not the tool's to free. defragfs (low-level API) frees what it holds at
# exit and keeps its leak check.
ff_pid=
ff_mount() {	# ff_mount BACKING [OPTS]
	dfs_faultfs_mount "$1" "$ff" "${2:-}" || return 1
	ff_pid=$DFS_FF_PID
}
ff_umount() {
	local rc=0
	fusermount3 -u "$ff" 2>/dev/null || umount -l "$ff"
	wait "$ff_pid" || rc=$?
	[ $rc -eq 0 ] || fail "dfs-faultfs exited with $rc (an undo failed?)"
	return $rc
}

# ingest STORE NAME SRC [VAR=VALUE...]: one ingest, its output in $W/cut.log, its
# organizer committing each time it waits for its producer (DFS_FAULT_ORG_COMMIT=1: the
# commits a large tree's build makes, cut here too). One that
# dies of SIGABRT is noted in $W/aborts: Debian's librocksdb keeps its asserts, and one
# (WritableFileWriter, "sync_without_flush_called_") fires when RocksDB touches a file
# again after an I/O error - here, after the cut. That is not a durability question.
ingest() {
	local store=$1 name=$2 src=$3 rc=0
	shift 3
	(env DFS_FAULT_ORG_COMMIT=1 "$@" "$DFS_BIN/defrag-ingest" --progress=never \
		--store "$store" --name "$name" "$src"; exit $?) >"$W/cut.log" 2>&1 || rc=$?
	if [ $rc = 134 ]; then
		grep -m1 -i 'assert' "$W/cut.log" >>"$W/aborts" || echo "SIGABRT" >>"$W/aborts"
	fi
	return $rc
}
same_tree() {	# SRC DIR: every byte and attribute
	"$DFS_BIN/dfs-treecmp" --ignore-atime --ignore-ctime "$1" "$2" >"$W/cmp" 2>&1
}
no_torn_file() {	# SRC DIR: every regular file under DIR equals SRC's
	local f
	[ -d "$2" ] || return 0
	(cd "$2" && find . -type f) >"$W/files" || return 1
	while IFS= read -r f; do
		cmp -s "$1/$f" "$2/$f" 2>/dev/null || { echo "$f differs" >"$W/cmp"; return 1; }
	done <"$W/files"
}
org_tree() {	# STORE OUT: the organized tree (names, types, sizes, origins) of STORE
	dfs_mount "$1" "$mnt" || return 1
	{ (cd "$mnt" && find . -printf '%y %s %P\n' | sort) &&
	  (cd "$mnt" && getfattr -R -n user.defrag.origins . 2>/dev/null); } >"$2"
	dfs_umount "$mnt"
}
why() {	# MESSAGE [FILE [head|tail]]: a reason the cut point is bad, with 6 lines of FILE
	{ echo "$1"; [ -z "${2:-}" ] || "${3:-head}" -n 6 "$2"; } >>"$W/why"
}

# The probes: op counts and op logs (to find the syncs) of both ingests.
mkdir "$W/base"
ff_mount "$W/base" "count_file=$W/count-create,log_file=$W/log-create"
DFS_FAULT_COUNT=$W/siocount ingest "$ff/store" a "$srca" || fail "probe ingest a"
ff_umount
faults=0
[ -s "$W/siocount" ] && faults=1
"$DFS_BIN/defrag-verify" --store "$W/base/store" >"$W/v" 2>&1 || fail "verify of the base"
org_tree "$W/base/store" "$W/org-create" || fail "organized tree of the base"
cp -a "$W/base" "$W/probe"
ff_mount "$W/probe" "count_file=$W/count-second,log_file=$W/log-second"
ingest "$ff/store" b "$srcb" || fail "probe ingest b"
ff_umount
org_tree "$W/probe/store" "$W/org-second" || fail "organized tree of the probe"
rm -rf "$W/probe"
if [ "$_dfs_fail" != 0 ]; then
	cat "$W/cut.log" "$W/v"
	dfs_finish || exit 1
fi
echo "ingest into a new store: $(cat "$W/count-create") ops;" \
	"second ingest: $(cat "$W/count-second") ops"

# points TOTAL LOG N: the dfs-faultfs options of the cut points: N evenly spread op
# numbers (every one with DFS_SOAK=1), right after each pack and WAL sync that LOG (the
# probe) has, and right after the last op (cut at unmount).
points() {
	local total=$1 log=$2 n=$3 i k
	if [ "${DFS_SOAK:-0}" = 1 ]; then
		seq 1 "$total"
	else
		for i in $(seq 1 "$n"); do echo $(( (i * total + n / 2) / (n + 1) )); done |
			uniq
	fi | sed 's/^/cut_after=/'
	for k in $(seq 1 "$(grep -c ' fdatasync /store/packs/.*\.pack$' "$log" || true)"); do
		echo "cut_after_match=$k:fdatasync:/store/packs/*.pack"
	done
	for k in $(seq 1 "$(grep -c ' fdatasync /store/index/[0-9]*\.log$' "$log" || true)"); do
		echo "cut_after_match=$k:fdatasync:/store/index/*.log"
	done
	echo "cut_after=999999999"
}

# cut_point WALK CUT [VAR=VALUE...]: one cut (CUT: a dfs-faultfs option) and its checks.
# 0 if all hold; else 1 and the reasons in $W/why (the checks go on after a failed one,
# as far as they can).
cut_point() {
	local walk=$1 cut=$2 back=$W/back store=$W/back/store irc=0 name=a src=$srca
	shift 2
	[ "$walk" = create ] || { name=b; src=$srcb; }
	rm -rf "$back"
	if [ "$walk" = create ]; then mkdir "$back"; else cp -a "$W/base" "$back"; fi
	: >"$W/why"
	ff_mount "$back" "$cut" || { why "dfs-faultfs mount"; return 1; }
	ingest "$ff/store" $name "$src" "$@" || irc=$?
	ff_umount || { why "dfs-faultfs unmount"; return 1; }
	if [ -f "$store/config" ] && ! "$DFS_BIN/defrag-verify" --store "$store" >"$W/v" 2>&1 &&
		! grep -q 'no index yet' "$W/v"; then
		why "verify after the cut:" "$W/v"
	fi
	if [ "$walk" = second ] || [ $irc -eq 0 ]; then
		if ! dfs_mount "$store" "$mnt"; then
			why "mount after the cut:" "$W/daemon-mnt.log" tail
		else
			if [ "$walk" = second ] && ! same_tree "$srca" "$mnt/.sources/a"; then
				why "committed source a changed by the cut:" "$W/cmp"
			fi
			if [ $irc -eq 0 ] && ! same_tree "$src" "$mnt/.sources/$name"; then
				why "the ingest succeeded; the cut changed its source:" "$W/cmp"
			fi
			if [ "$walk" = second ] && ! no_torn_file "$srcb" "$mnt/.sources/b"; then
				why "a file of b is visible with other bytes:" "$W/cmp"
			fi
			dfs_umount "$mnt"
		fi
	fi
	if ! ingest "$store" $name "$src" "$@"; then
		why "the rerun failed:" "$W/cut.log" tail
		return 1
	fi
	if ! dfs_mount "$store" "$mnt"; then
		why "mount after the rerun:" "$W/daemon-mnt.log" tail
		return 1
	fi
	if ! same_tree "$src" "$mnt/.sources/$name"; then
		why "$name after the rerun:" "$W/cmp"
	fi
	if [ "$walk" = second ] && ! same_tree "$srca" "$mnt/.sources/a"; then
		why "a after the rerun:" "$W/cmp"
	fi
	dfs_umount "$mnt"
	# the organized tree is the one an uncut run gives (a cut organizer build must not
	# leave entries behind, nor make the next build skip or append wrongly)
	if ! org_tree "$store" "$W/org-now"; then
		why "mount for the organized tree failed:" "$W/daemon-mnt.log" tail
	elif ! cmp -s "$W/org-$walk" "$W/org-now"; then
		diff "$W/org-$walk" "$W/org-now" >"$W/cmp"
		why "the organized tree after the rerun differs from an uncut run's:" "$W/cmp"
	fi
	[ ! -s "$W/why" ]
}

ncreate=10 nsecond=20
if [ "${DFS_SANITIZED:-0}" = 1 ]; then ncreate=6 nsecond=12; fi
start=$SECONDS
for walk in create second; do
	total=$(cat "$W/count-$walk")
	if [ $walk = create ]; then npts=$ncreate; else npts=$nsecond; fi
	k=0 bad=0
	points "$total" "$W/log-$walk" $npts >"$W/points"
	while IFS= read -r cut <&3; do
		k=$((k + 1))
		cut_point $walk "$cut" && continue
		bad=$((bad + 1))
		fail "$walk walk, $cut: $(cat "$W/why")"
		n=${cut#cut_after=}
		[ "$n" = "$cut" ] || echo "  (op $n of the probe:" \
			"$(grep -m1 "^$n " "$W/log-$walk" | cut -d' ' -f2-))"
		cp -a "$W/back" "$W/kept-$walk-$k"
	done 3<"$W/points"
	[ $bad != 0 ] || pass "$walk walk: $k cut points of $total ops, all clean"
done
echo "walks took $((SECONDS - start)) s"
if [ -s "$W/aborts" ]; then
	echo "note: $(wc -l <"$W/aborts") cut ingests died of SIGABRT: $(sort -u "$W/aborts")"
fi

# The seeded bug: the second ingest skips its first pack fdatasync, so the index names
# pack bytes that were never synced from that commit's WAL sync until the next pack sync.
if [ $faults = 1 ]; then
	cp -a "$W/base" "$W/probe"
	ff_mount "$W/probe" "log_file=$W/log-seeded,count_file=$W/count-seeded"
	ingest "$ff/store" b "$srcb" DFS_FAULT_SKIP_SYNC=1 || fail "probe of the seeded bug"
	ff_umount
	rm -rf "$W/probe"
	caught=0 k=0
	points "$(cat "$W/count-seeded")" "$W/log-seeded" 3 >"$W/points"
	while IFS= read -r cut <&3; do
		k=$((k + 1))
		cut_point second "$cut" DFS_FAULT_SKIP_SYNC=1 && continue
		caught=$((caught + 1))
		echo "seeded bug caught, $cut: $(head -n 3 "$W/why" | tr '\n' ' ')"
	done 3<"$W/points"
	if [ $caught -gt 0 ]; then
		pass "seeded missing pack fdatasync caught at $caught of $k cut points"
	else
		fail "seeded missing pack fdatasync not caught at any of $k cut points"
	fi
else
	echo "not a DFS_TEST_FAULTS build: no seeded-bug walk"
fi
rm -rf "$W/back"
dfs_finish
