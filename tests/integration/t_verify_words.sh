#!/usr/bin/env bash
# Issue 23, item 5: defrag-verify's words. The gate (--against) says where a difference
# happened: a file changed on the drive since the last ingest (the store's copy intact)
# is CHANGED, not DAMAGED; a store copy that fails its check is DAMAGED in the store, even
# when the drive changed too. Every differing attribute of an entry is named, not only the
# first; a one-byte edit at offset 10 names offset 10. Entries excluded at ingest with
# --exclude are remembered (the source record) and said as excluded, never "missing",
# also after defrag-recover; they fail the gate unless --accept-missing lists them. A progress line (files, bytes, MB/s, ETA) on a terminal only; --json
# ends with a report of the counts. A store on the drive's filesystem is warned about.
set -eu
. "$(dirname "$0")/lib.sh"
DFS_NEEDS="defrag-ingest defragfs defrag-verify defrag-recover" dfs_setup

store=$W/store
src=$W/drv
V() { "$DFS_BIN/defrag-verify" --store "$store" --against "$src" --name drv "$@"; }

make_drive() {
	rm -rf "$src" "$store"
	mkdir -p "$src/docs" "$src/cache/deep" "$src/bin"
	head -c 300000 /dev/urandom >"$src/bin/random.bin"
	printf '0123456789abcdefghij\n' >"$src/docs/ten.txt"
	echo "hello world" >"$src/docs/a.txt"
	echo "scratch" >"$src/docs/x.tmp"
	echo "cached" >"$src/cache/deep/c.dat"
}

gate() {	# gate NAME WANT_EXIT: runs the gate into $W/NAME.out (stdout and stderr)
	local rc=0
	V --progress=never >"$W/$1.out" 2>&1 || rc=$?
	[ $rc -eq "$2" ] || { cat "$W/$1.out"; fail "$1: exit $rc, want $2"; return 1; }
}

has() {	# has NAME PATTERN WHAT
	if grep -q -- "$2" "$W/$1.out"; then pass "$3"; else cat "$W/$1.out"; fail "$3"; fi
}

hasnt() {
	if grep -q -- "$2" "$W/$1.out"; then cat "$W/$1.out"; fail "$3"; else pass "$3"; fi
}

# 1. changed on the drive: a newer mtime and another size, the store intact
make_drive
dfs_ingest --store "$store" --name drv "$src" >/dev/null || fail "ingest"
gate clean 0 && pass "a fresh drive is clean"
sleep 1.1
echo "more" >>"$src/docs/a.txt"
gate changed 1 &&
	has changed "^CHANGED: /.sources/drv/docs/a.txt: .*changed on the drive since the last ingest" \
		"a file appended to on the drive is CHANGED on the drive"
hasnt changed "DAMAGED" "and not DAMAGED"

# 2. every differing attribute, in one report
make_drive
dfs_ingest --store "$store" --name drv "$src" >/dev/null || fail "ingest"
chmod 600 "$src/docs/a.txt"
chown 1234:1234 "$src/docs/a.txt"
echo "other words" >"$src/docs/a.txt"
touch -d '2001-02-03' "$src/docs/a.txt"
gate attrs 1 &&
	has attrs "docs/a.txt: .*mode 644 in the store, 600 in the source.*owner differs.*mtime differs.*size 12 in the store, 12 in the source\|docs/a.txt: .*mode 644 in the store, 600 in the source.*owner differs.*mtime differs.*bytes differ at offset 0" \
		"mode, owner, mtime and the bytes are all named"
[ "$(grep -c "docs/a.txt" "$W/attrs.out")" = 1 ] && pass "in one line" ||
	{ cat "$W/attrs.out"; fail "the entry is reported more than once"; }
has attrs "^CHANGED: /.sources/drv/docs/a.txt" "a newer ctime makes it CHANGED (an older mtime)"

# 3. the first differing byte: a one-byte edit at offset 10, the mtime put back
make_drive
dfs_ingest --store "$store" --name drv "$src" >/dev/null || fail "ingest"
touch -r "$src/docs/ten.txt" "$W/ref"
printf 'Z' | dd of="$src/docs/ten.txt" bs=1 seek=10 conv=notrunc 2>/dev/null
touch -r "$W/ref" "$src/docs/ten.txt"
gate offset 1 && has offset "docs/ten.txt: bytes differ at offset 10" "a one-byte edit at offset 10 says offset 10"

# 4. damaged in the store: a flipped byte in the pack record of random.bin; the drive
# unchanged, then changed as well: DAMAGED both times
make_drive
dfs_ingest --store "$store" --name drv "$src" >/dev/null || fail "ingest"
dfs_flip_in "$store" "$src/bin/random.bin" || fail "flip"
gate damaged 1 &&
	has damaged "^DAMAGED: /.sources/drv/bin/random.bin: .*store data unreadable.*(damaged in the store)" \
		"a store copy that fails its check is DAMAGED in the store"
hasnt damaged "CHANGED" "and not CHANGED"
sleep 1.1
printf 'Q' | dd of="$src/bin/random.bin" bs=1 seek=5 conv=notrunc 2>/dev/null
gate damaged2 1 && has damaged2 "^DAMAGED: /.sources/drv/bin/random.bin: .*mtime differs.*store data unreadable" \
	"changed on the drive and damaged in the store: DAMAGED, with both said"

# 5. --exclude remembered: said as excluded, not "missing from the store", also after
# defrag-recover; not in the store, so it fails the gate unless --accept-missing lists it
# (DESIGN.md, "Trust": a false "safe to wipe" must never happen)
make_drive
dfs_ingest --store "$store" --name drv --exclude '*.tmp' --exclude cache "$src" >/dev/null ||
	fail "ingest with --exclude"
gate excl 1 && has excl "2 excluded at ingest" "entries excluded at ingest are counted"
has excl "docs/x.tmp: excluded at ingest (--exclude): not in the store" \
	"an excluded file is said as excluded, and fails the gate"
has excl "drv/cache: excluded at ingest (--exclude): not in the store, nor anything below it" \
	"an excluded directory once, not what is below it"
hasnt excl "missing from the store" "nothing excluded is called missing from the store"
has excl "\-\-exclude \*.tmp cache" "the patterns are named"
"$DFS_BIN/defrag-stat" --store "$store" >"$W/excl_stat.out" 2>&1
has excl_stat "safe to wipe: *no" "a drive with excluded entries is not safe to wipe"
printf 'docs/x.tmp\ncache\n' >"$W/accept"
V --progress=never --accept-missing "$W/accept" >"$W/excl_acc.out" 2>&1 &&
	has excl_acc "0 not accepted" "--accept-missing accepts what was excluded: clean" ||
	{ cat "$W/excl_acc.out"; fail "--accept-missing of the excluded entries"; }
"$DFS_BIN/defrag-recover" --store "$store" >"$W/recover.out" 2>&1 || { cat "$W/recover.out"; fail "recover"; }
gate excl_rec 1 && hasnt excl_rec "missing from the store" "after defrag-recover the excludes are still known"
# a plain ingest (no --exclude) stores them, and forgets the patterns
dfs_ingest --store "$store" --name drv "$src" >/dev/null || fail "ingest without --exclude"
gate excl_gone 0 && hasnt excl_gone "excluded at ingest" "a plain ingest forgets the patterns"

# 6. progress: on a terminal only
make_drive
dfs_ingest --store "$store" --name drv "$src" >/dev/null || fail "ingest"
V >"$W/notty.out" 2>"$W/notty.err" || fail "gate without a terminal"
[ -s "$W/notty.err" ] && ! grep -q "warning" "$W/notty.err" &&
	{ cat "$W/notty.err"; fail "a progress line without a terminal"; } ||
	! grep -q "comparing drv" "$W/notty.err" && pass "no progress line without a terminal" ||
	{ cat "$W/notty.err"; fail "a progress line without a terminal"; }
script -qec "$DFS_BIN/defrag-verify --store $store --against $src --name drv" \
	"$W/tty.err" >/dev/null || fail "gate on a terminal"
grep -q "comparing drv: 5/5 files, .* MB/s, ETA" "$W/tty.err" &&
	pass "a progress line on a terminal: files, bytes, MB/s, ETA" ||
	{ cat -v "$W/tty.err"; fail "no progress line on a terminal"; }

# 7. --json: the final report
echo "new" >"$src/docs/new.txt"
rc=0
V --json >"$W/j.out" 2>"$W/j.err" || rc=$?
python3 - "$W/j.out" <<'PY' && pass "--json: kinds and a final report" || { cat "$W/j.out"; fail "--json report"; }
import json, sys
j = json.load(open(sys.argv[1]))
p = [x for x in j["problems"] if x.get("path") == "docs/new.txt"]
assert p and p[0]["kind"] == "changed", p
for k in ("changed_on_drive", "damaged_in_store", "excluded_entries", "seconds",
          "against_entries", "against_bytes", "warnings", "result"):
    assert k in j, k
assert j["changed_on_drive"] >= 1 and j["damaged_in_store"] == 0, j
assert j["result"] == "problems"
PY
[ $rc -eq 1 ] || fail "--json with a change: exit $rc"

# 8. the store on the drive's filesystem: a warning; on another filesystem: none
make_drive
dfs_ingest --store "$store" --name drv "$src" >/dev/null || fail "ingest"
gate samefs 0 && has samefs "the store shares a filesystem with this drive: wiping the drive wipes the store" \
	"a store on the drive's filesystem is warned about"
mkdir -p "$W/otherfs"
if mount -t tmpfs -o size=64m tmpfs "$W/otherfs"; then
	DFS_CLEAN_MOUNTS="$W/otherfs"
	cp -a "$store" "$W/otherfs/store"
	"$DFS_BIN/defrag-verify" --store "$W/otherfs/store" --against "$src" --name drv \
		>"$W/otherfs.out" 2>&1 || { cat "$W/otherfs.out"; fail "gate, store on a tmpfs"; }
	hasnt otherfs "shares a filesystem" "a store on another filesystem is not warned about"
	umount "$W/otherfs"
else
	echo "skip: no tmpfs mount"
fi

dfs_finish
