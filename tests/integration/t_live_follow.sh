#!/usr/bin/env bash
# Live follow: the mount stays up while defrag-ingest runs; what each ingest commits
# appears in the mount within seconds, in directories the kernel had already listed and
# cached (the daemon invalidates them), a re-ingest's changes and deletions too. Also:
# SIGTERM unmounts and exits 0, and a missing store is a clear error before mounting.
set -eu
. "$(dirname "$0")/lib.sh"
dfs_setup

src=$W/src
store=$W/store
mnt=$W/mnt
mkdir -p "$src/docs" "$mnt"
seq 1 1000 >"$src/docs/first.txt"
dfs_ingest --store "$store" --name live "$src" >/dev/null || fail "first ingest"
dfs_mount "$store" "$mnt" "follow_interval=1"

# list the directories now, so the kernel caches them
ls "$mnt/.sources/live/docs" >/dev/null
ls "$mnt/documents/docs" >/dev/null
seq 1 2000 >"$src/docs/second.txt"
mkdir "$src/newdir" && echo new >"$src/newdir/n.txt"
dfs_ingest --store "$store" --name live "$src" >/dev/null || fail "second ingest"
wait_for() {	# wait_for SECONDS TEST...: polls until the test holds
	local end=$(( $(date +%s) + $1 ))
	shift
	while [ "$(date +%s)" -le $end ]; do
		"$@" && return 0
		sleep 0.2
	done
	return 1
}
has() { ls "$1" 2>/dev/null | grep -qx "$2"; }
wait_for 15 has "$mnt/.sources/live/docs" second.txt &&
	pass "a new file appears in a cached source directory" || fail "new file not seen"
wait_for 15 has "$mnt/documents/docs" second.txt &&
	pass "and in the organized tree" || fail "organized tree did not follow"
wait_for 15 test -f "$mnt/.sources/live/newdir/n.txt" && pass "a new directory appears" ||
	fail "new directory not seen"
cmp "$src/docs/second.txt" "$mnt/.sources/live/docs/second.txt" &&
	pass "its bytes are right" || fail "followed file differs"

# a changed file and a deleted one
seq 5 3000 >"$src/docs/first.txt"
rm -r "$src/newdir"
dfs_ingest --store "$store" --name live --allow-deletions "$src" >/dev/null ||
	fail "third ingest"
wait_for 15 cmp -s "$src/docs/first.txt" "$mnt/.sources/live/docs/first.txt" &&
	pass "a changed file shows its new bytes" || fail "changed file not followed"
wait_for 15 test ! -e "$mnt/.sources/live/newdir" && pass "a deleted directory goes away" ||
	fail "deleted directory still there"

# No security.* xattr anywhere in the store: such names are "not supported" (ls -l then
# stops asking, instead of a round trip per file). Once an ingest stores one, the mount
# follows: the label is there, and a file without one answers "no such attribute".
f=$mnt/.sources/live/docs/first.txt
getfattr -n security.selinux "$f" 2>&1 | grep -q "Operation not supported" &&
	pass "no security.* xattr in the store: EOPNOTSUPP" ||
	fail "security.selinux: $(getfattr -n security.selinux "$f" 2>&1 | head -n 1)"
if setfattr -n security.test -v label "$src/docs/first.txt" 2>/dev/null; then
	dfs_ingest --store "$store" --name live "$src" >/dev/null || fail "ingest with a label"
	wait_for 15 sh -c "getfattr --only-values -n security.test '$f' 2>/dev/null |
		grep -qx label" && pass "a security.* xattr ingested later is served" ||
		fail "security.test not followed"
	getfattr -n security.selinux "$mnt/.sources/live/docs/second.txt" 2>&1 |
		grep -q "No such attribute" && pass "then others are ENODATA" ||
		fail "security.selinux after a label was stored"
	setfattr -x security.test "$src/docs/first.txt"
else
	echo "# skipped: this filesystem takes no security.* xattrs"
fi

# a file open (and read) on its old content while a re-ingest changes it: the old handle's
# reads must not leave old pages behind for later opens
head -c 1M /dev/urandom >"$src/docs/big.bin"
dfs_ingest --store "$store" --name live "$src" >/dev/null || fail "ingest big.bin"
wait_for 15 cmp -s "$src/docs/big.bin" "$mnt/.sources/live/docs/big.bin" || fail "big.bin v1"
exec 3<"$mnt/.sources/live/docs/big.bin"
head -c 1M /dev/urandom >"$W/v2" && cat "$W/v2" >"$src/docs/big.bin"	# same inode
dfs_ingest --store "$store" --name live "$src" >/dev/null || fail "ingest big.bin v2"
wait_for 15 cmp -s "$src/docs/big.bin" "$mnt/.sources/live/docs/big.bin" ||
	fail "big.bin v2 not followed"
cat <&3 >/dev/null	# the old handle reads (old content) after the new open
exec 3<&-
cmp -s "$src/docs/big.bin" "$mnt/.sources/live/docs/big.bin" &&
	pass "an old handle's reads leave no old pages for new opens" ||
	fail "old pages served after the content changed"

# Many ingests in a row, each followed before the next: every one reopens the primary (a
# new MANIFEST) and some flush (a new WAL), so the reader replaces its view each time
# (RocksDB's own catch-up lost writes across such switches). 5 in CI, 100 in the soak.
rounds=5
[ "${DFS_SOAK:-0}" = 1 ] && rounds=100
missed=0
for r in $(seq 1 "$rounds"); do
	echo "round $r" >"$src/docs/round$r.txt"
	echo "v$r" >"$src/docs/state.txt"
	[ $((r % 4)) -eq 0 ] && head -c $(( (r % 7 + 1) * 300000 )) /dev/urandom >"$src/docs/blob.bin"
	dfs_ingest --store "$store" --name live "$src" >/dev/null || fail "ingest round $r"
	wait_for 15 sh -c "[ \"\$(cat '$mnt/.sources/live/docs/state.txt')\" = v$r ] &&
		[ -f '$mnt/.sources/live/docs/round$r.txt' ]" 2>/dev/null ||
		{ missed=$((missed + 1)); echo "# round $r not followed within 15 s"; }
done
[ $missed -eq 0 ] && pass "followed $rounds ingests in a row" ||
	fail "$missed of $rounds ingests not followed"
cmp -s "$src/docs/blob.bin" "$mnt/.sources/live/docs/blob.bin" &&
	pass "the last blob's bytes are right" || fail "blob.bin differs after the rounds"

# SIGTERM: clean unmount and exit 0, with a file and a directory still open (no release
# comes for them: their handles are freed at exit, which the ASan run checks for leaks)
var=_dfs_pid_$(echo "$mnt" | md5sum | cut -c1-8)
pid=${!var}
perl -e 'opendir(D, $ARGV[0]) or die "opendir: $!"; readdir(D);
	open(F, "<", $ARGV[1]) or die "open: $!"; sysread(F, my $b, 4096);
	$| = 1; print "open\n"; sleep 600' \
	"$mnt/.sources/live/docs" "$mnt/.sources/live/docs/big.bin" >"$W/holder.out" 2>&1 &
holder=$!
wait_for 10 grep -q '^open$' "$W/holder.out" || fail "holder: $(cat "$W/holder.out")"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
kill "$holder" 2>/dev/null || true
wait "$holder" 2>/dev/null || true
[ $rc -eq 0 ] && pass "SIGTERM with open handles: daemon exited 0" || fail "SIGTERM: exit $rc"
wait_for 10 sh -c "! mountpoint -q '$mnt'" && pass "SIGTERM unmounted" ||
	{ fail "still mounted after SIGTERM"; umount -l "$mnt" || true; }

rc=0
"$DFS_BIN/defragfs" "$W/no-such-store" "$mnt" >"$W/absent.log" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "no-such-store: No such file" "$W/absent.log" &&
	! mountpoint -q "$mnt" &&
	pass "a missing store is a clear error: $(head -n 1 "$W/absent.log")" ||
	{ cat "$W/absent.log"; fail "missing store (exit $rc)"; }
dfs_finish
