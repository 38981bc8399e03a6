#!/usr/bin/env bash
# The gate (defrag-verify --against) never says yes wrongly. Each case starts from a
# drive just ingested and checked clean, changes one thing on the drive (or points the
# gate elsewhere), and must exit 1 (2 for a path that is not the source) and leave
# defrag-stat's "safe to wipe: no":
#   a changed byte with the mtime put back, a mode, an owner, an xattr, an ACL, a file
#   deleted from the drive, a file added to it, a broken hard link, a hole filled with
#   zeros, a directory's mtime; an empty directory, a copy of the drive, another directory
#   of the same filesystem; and an ingest that changed the view after the last gate.
# Through dfs-faultfs (the drive ingested and gated clean through it, then served again
# with a fault): a file whose reads give EIO, a directory whose opendir gives EIO, and one
# whose listing does; the gate names the entry and its errno. And an ingest through it
# with a read EIO mid-file: a failed entry (exit 1), the rest stored, the view keeping the
# file's previous version (a new file that fails is not in it at all); and with EIO on a
# directory's opendir, then on its listing: a failed entry, its stored entries kept.
set -eu
. "$(dirname "$0")/lib.sh"
DFS_NEEDS="defrag-ingest defragfs defrag-verify defrag-stat dfs-faultfs" dfs_setup

store=$W/store
src=$W/drv

stat_safe() {	# prints yes/no for source drv
	"$DFS_BIN/defrag-stat" --store "$store" --json |
		grep -A30 '"name": "drv"' | grep -m1 '"safe_to_wipe"' | grep -q true &&
		echo yes || echo no
}

make_drive() {
	rm -rf "$src" "$store"
	mkdir -p "$src/docs/deep" "$src/bin"
	head -c 300000 /dev/urandom >"$src/docs/big.bin"
	echo "hello world" >"$src/docs/a.txt"
	echo "second" >"$src/docs/deep/b.txt"
	echo "linked" >"$src/docs/l1"
	ln "$src/docs/l1" "$src/docs/l2"
	truncate -s 2M "$src/bin/sparse.img"
	printf 'data in the middle' | dd of="$src/bin/sparse.img" bs=1 seek=1000000 \
		conv=notrunc 2>/dev/null
	ln -s docs/a.txt "$src/link"
}

fresh() {	# a drive, ingested, and gated clean (safe to wipe: yes); "nogate": not gated
	make_drive
	dfs_ingest --store "$store" --name drv "$src" >/dev/null || fail "ingest"
	[ "${1:-}" = nogate ] && return 0
	"$DFS_BIN/defrag-verify" --store "$store" --against "$src" --name drv >"$W/clean" 2>&1 ||
		{ cat "$W/clean"; fail "the fresh drive is not clean"; }
	[ "$(stat_safe)" = yes ] || fail "a clean gate does not say safe to wipe"
}

ff=$W/ff
ff_pid=
ff_mount() {	# ff_mount [OPTS]: dfs-faultfs serves the drive at $ff
	dfs_faultfs_mount "$src" "$ff" "${1:-}" || return 1
	ff_pid=$DFS_FF_PID
}

ff_umount() {
	[ -n "$ff_pid" ] || return 0
	fusermount3 -u "$ff" 2>/dev/null || umount -l "$ff"
	wait "$ff_pid" || fail "dfs-faultfs exited with $?"
	ff_pid=
}

fresh_ff() {	# fresh_ff OPTS: the drive ingested and gated clean through dfs-faultfs, then
		# served again by it with OPTS (the faults)
	ff_umount
	make_drive
	ff_mount
	dfs_ingest --store "$store" --name drv "$ff" >/dev/null || fail "ingest through dfs-faultfs"
	"$DFS_BIN/defrag-verify" --store "$store" --against "$ff" --name drv >"$W/clean" 2>&1 ||
		{ cat "$W/clean"; fail "the fresh drive is not clean through dfs-faultfs"; }
	[ "$(stat_safe)" = yes ] || fail "a clean gate through dfs-faultfs does not say safe to wipe"
	ff_umount
	ff_mount "${1:-}"
}

gate() {	# gate NAME WANT_EXIT GREP [PATH]: run the gate, check exit, message and ledger
	local name=$1 want=$2 pattern=$3 path=${4:-$src} rc=0
	"$DFS_BIN/defrag-verify" --store "$store" --against "$path" --name drv >"$W/$name.out" 2>&1 ||
		rc=$?
	if [ $rc -eq "$want" ] && grep -q -- "$pattern" "$W/$name.out" && [ "$(stat_safe)" = no ]; then
		pass "$name: exit $rc, safe to wipe: no"
	else
		cat "$W/$name.out"
		fail "$name: exit $rc (want $want), '$pattern', safe to wipe: $(stat_safe)"
	fi
}

fresh
f=$src/docs/big.bin
touch -r "$f" "$W/ref"
printf 'Z' | dd of="$f" bs=1 seek=123457 conv=notrunc 2>/dev/null
touch -r "$W/ref" "$f"
gate "changed byte, mtime put back" 1 "bytes differ at offset 123457"

fresh
chmod 600 "$src/docs/a.txt"
gate "mode" 1 "mode 644 in the store, 600 in the source"

fresh
chown 1234:1234 "$src/docs/a.txt"
gate "owner" 1 "owner differs"

fresh
setfattr -n user.note -v hi "$src/docs/a.txt"
gate "xattr" 1 "extended attribute user.note"

fresh
setfacl -m u:1234:r "$src/docs/deep/b.txt"
gate "ACL" 1 "b.txt"

fresh
rm "$src/docs/deep/b.txt"
touch -r "$src/docs" "$src/docs/deep"
gate "file deleted from the drive" 1 "b.txt: missing from the drive"

fresh
echo extra >"$src/docs/extra.txt"
gate "file added to the drive" 1 "extra.txt: missing from the store"

fresh
rm "$src/docs/l2"
cp -p "$src/docs/l1" "$src/docs/l2"
gate "broken hard link" 1 "l[12]"

fresh
touch -r "$src/bin/sparse.img" "$W/ref"
cp --sparse=never "$src/bin/sparse.img" "$W/dense"
cat "$W/dense" >"$src/bin/sparse.img"
touch -r "$W/ref" "$src/bin/sparse.img"
gate "hole filled with zeros" 1 "holes differ"

fresh
touch -d '2001-01-01' "$src/docs/deep"
gate "a directory's mtime" 1 "deep: mtime differs"

# a path that is not the drive: exit 2, and no "yes" made out of it
fresh nogate
mkdir "$W/empty"
gate "an empty directory (nothing mounted)" 2 "is not the source 'drv'" "$W/empty"

fresh nogate
cp -a "$src" "$W/copy"
gate "a copy of the drive" 2 "is not the source 'drv'" "$W/copy"
rm -rf "$W/copy"

fresh nogate
gate "another directory of the same filesystem" 2 "another directory" "$src/docs"

# through dfs-faultfs: what the gate cannot read fails, named with its errno
fresh_ff eio_read=/docs/big.bin
gate "a file that gives EIO" 1 "docs/big.bin: .*Input/output error" "$ff"

fresh_ff eio_opendir=/docs/deep
gate "a directory that cannot be opened (EIO)" 1 "docs/deep: .*Input/output error" "$ff"

fresh_ff eio_readdir=/docs/deep
gate "a directory whose listing gives EIO" 1 "docs/deep: .*Input/output error" "$ff"

# ingest through dfs-faultfs, reads failing from 1 MiB on: a changed file keeps its stored
# version, a new file is not stored; the rest of the drive is
fresh_ff
ff_umount
cp "$src/docs/big.bin" "$W/big.old"
head -c 3000000 /dev/urandom >"$src/docs/big.bin"
head -c 2000000 /dev/urandom >"$src/docs/newbig.bin"
echo "stored beside them" >"$src/docs/new.txt"
ff_mount "eio_read=/docs/*big.bin,eio_read_from=1048576"
rc=0
"$DFS_BIN/defrag-ingest" --store "$store" --name drv --progress=never "$ff" >"$W/eio.out" 2>&1 ||
	rc=$?
if [ $rc -eq 1 ] && grep -q "docs/big.bin: .*Input/output error" "$W/eio.out" &&
	grep -q "docs/newbig.bin: .*Input/output error" "$W/eio.out" &&
	grep -q "2 item(s) could not be stored" "$W/eio.out" &&
	grep -q "read /docs/big.bin @[1-9][0-9]*+[0-9]*: EIO" "$W/daemon-faultfs.log"; then
	pass "ingest with a read EIO mid-file: exit 1, both files named with their errno"
else
	cat "$W/eio.out"
	fail "ingest with a read EIO mid-file: exit $rc"
fi
ff_umount
mnt=$W/mnt
mkdir -p "$mnt"
dfs_mount "$store" "$mnt"
v=$mnt/.sources/drv/docs
if cmp -s "$v/big.bin" "$W/big.old" && [ ! -e "$v/newbig.bin" ] &&
	cmp -s "$v/new.txt" "$src/docs/new.txt" && cmp -s "$v/a.txt" "$src/docs/a.txt"; then
	pass "the view: big.bin its previous version, newbig.bin absent, the rest stored"
else
	ls -l "$v"
	fail "the view after a read EIO"
fi
dfs_umount "$mnt"
"$DFS_BIN/defrag-verify" --store "$store" >"$W/v.out" 2>&1 && pass "the store verifies clean" ||
	{ cat "$W/v.out"; fail "verify after a read EIO"; }

# ingest through dfs-faultfs, a directory that cannot be opened, then one whose listing
# fails: a failed entry each (exit 1); what the view holds of it stays
for opt in opendir readdir; do
	ff_mount "eio_$opt=/docs/deep"
	rc=0
	"$DFS_BIN/defrag-ingest" --store "$store" --name drv --progress=never "$ff" \
		>"$W/eio-$opt.out" 2>&1 || rc=$?
	ff_umount
	dfs_mount "$store" "$mnt"
	if [ $rc -eq 1 ] && grep -q "docs/deep: .*Input/output error" "$W/eio-$opt.out" &&
		cmp -s "$mnt/.sources/drv/docs/deep/b.txt" "$src/docs/deep/b.txt"; then
		pass "ingest with EIO on $opt of a directory: exit 1, named, its entries kept"
	else
		cat "$W/eio-$opt.out"
		fail "ingest with EIO on $opt: exit $rc"
	fi
	dfs_umount "$mnt"
done

# an ingest that changes the view after a clean gate: no longer safe, also when it was
# refused (the deletion threshold) after committing some of its changes
fresh
echo new >"$src/docs/new.txt"
rm -f "$src/docs/l1" "$src/docs/l2" "$src/docs/a.txt" "$src/docs/deep/b.txt" "$src/link" \
	"$src/bin/sparse.img"
rc=0
dfs_ingest --store "$store" --name drv "$src" >/dev/null 2>&1 || rc=$?
[ $rc -eq 2 ] && [ "$(stat_safe)" = no ] &&
	pass "a refused ingest that changed the view: safe to wipe: no" ||
	fail "refused ingest (exit $rc), safe to wipe: $(stat_safe)"

# damage in the store, not on the drive: the gate alone (no store-wide checks) reads
# every chunk of the drive's view, so a damaged one fails it
fresh
dfs_flip_in "$store" "$src/docs/big.bin" || fail "could not damage the chunk"
gate "a damaged chunk of the drive's view in the store" 1 "docs/big.bin"

# an ingest that commits while the gate runs: the gate compared the generation it read
# when it started, so its clean result is for a state that is no longer the newest.
# DFS_TEST_FAULTS builds hold the gate at a point (DFS_FAULT_GATE_HOLD=STAGE:FILE, until
# FILE exists), so nothing races there; other builds race it with a slow gate.
gate_held() {	# gate_held STAGE: the gate in the background, held at STAGE; sets gpid
	rm -f "$W/go" "$W/go.held"
	DFS_FAULT_GATE_HOLD=$1:$W/go "$DFS_BIN/defrag-verify" --store "$store" --against "$src" \
		--name drv >"$W/race.out" 2>&1 &
	gpid=$!
	for _ in $(seq 1 600); do
		[ -e "$W/go.held" ] && return 0
		kill -0 $gpid 2>/dev/null || break
		sleep 0.1
	done
	cat "$W/race.out"
	fail "the gate did not reach '$1'"
	return 1
}
race_result() {	# the gate $gpid ended clean, and the ingest that committed meanwhile undid it
	local rc=0
	wait $gpid || rc=$?
	[ $rc -eq 0 ] && [ "$(stat_safe)" = no ] &&
		"$DFS_BIN/defrag-stat" --store "$store" | grep -q "before the last ingest" &&
		pass "an ingest that committed during a clean gate: safe to wipe: no" ||
		{ cat "$W/race.out"; fail "gate during an ingest: exit $rc, safe to wipe: $(stat_safe)"; }
}
fresh nogate
: >"$W/go"
DFS_FAULT_GATE_HOLD=compare:$W/go "$DFS_BIN/defrag-verify" --store "$store" --against "$src" \
	--name drv >/dev/null 2>&1 || fail "the gate of a fresh drive"
if [ -e "$W/go.held" ]; then
	# held after reading its generation: an ingest commits, then the gate compares
	if gate_held compare; then
		dfs_ingest --store "$store" --name drv "$src" >/dev/null ||
			fail "ingest during the gate"
		: >"$W/go"
		race_result
	fi
	# held with the writer lock taken to record its result: an ingest started then
	# waits for the gate (a brief holder) instead of failing, and commits after it
	if gate_held record; then
		rc=0 irc=0
		"$DFS_BIN/defrag-ingest" --progress=never --store "$store" --name drv "$src" \
			>/dev/null 2>"$W/wait.err" &
		ipid=$!
		# it says so after a second at the lock: waited for (50 s at most, below the
		# hold's and the lock's minute)
		for _ in $(seq 1 500); do
			grep -q "waiting for pid $gpid" "$W/wait.err" && break
			kill -0 $ipid 2>/dev/null || break
			sleep 0.1
		done
		kill -0 $ipid 2>/dev/null || fail "the ingest did not wait for the gate's record"
		: >"$W/go"
		wait $gpid || rc=$?
		wait $ipid || irc=$?
		[ $rc -eq 0 ] && [ $irc -eq 0 ] && [ "$(stat_safe)" = no ] &&
			grep -q "waiting for pid $gpid" "$W/wait.err" &&
			pass "an ingest started while the gate records its result waits for it, then commits: safe to wipe: no" ||
			{ cat "$W/race.out" "$W/wait.err"; fail "ingest during the gate's record: gate exit $rc, ingest exit $irc, safe to wipe: $(stat_safe)"; }
	fi
else
	head -c $((384 << 20)) /dev/urandom >"$src/docs/slow.bin"	# a gate of a few seconds
	dfs_ingest --store "$store" --name drv "$src" >/dev/null || fail "ingest"
	"$DFS_BIN/defrag-verify" --store "$store" --against "$src" --name drv >"$W/race.out" 2>&1 &
	gpid=$!
	sleep 0.5
	dfs_ingest --store "$store" --name drv "$src" >/dev/null || fail "ingest during the gate"
	if kill -0 $gpid 2>/dev/null; then
		race_result
	else
		wait $gpid || true
		echo "skip - the gate ended before the ingest committed (a machine too fast for the race)"
	fi
	rm -f "$src/docs/slow.bin"
fi

dfs_finish
