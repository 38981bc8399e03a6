#!/usr/bin/env bash
# defrag-recover past damage, through the tool: an undamaged store rebuilds with exit 0
# and "nothing was lost"; a pack whose header bytes are flipped still gives back every
# record (the mount shows the source byte for byte), the header alone is listed, exit 1;
# a damaged record between others is listed with its pack and exact byte range (text and
# JSON), exit 1, and only the file that uses it fails to read.
# (The engine's cases, a commit that cannot be replayed, a missing commit and torn ends
# among them, are in tests/unit/test_store.c, test_recover_damage.)
set -eu
. "$(dirname "$0")/lib.sh"
DFS_NEEDS="defrag-ingest defrag-recover defragfs" dfs_setup

src=$W/src
store=$W/store
mnt=$W/mnt
mkdir -p "$mnt" "$src/a" "$src/b"
head -c 3M /dev/urandom >"$src/a/r1.bin"
head -c 2M /dev/urandom >"$src/a/r2.bin"
seq 1 200000 >"$src/b/numbers.txt"
dfs_ingest --store "$store" --name r "$src" || fail "ingest"

flip() {	# flip PACK OFFSET: two bytes changed by some means other than defragfs
	printf '\xff\x00' | dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null
}
fresh() {	# a copy of the undamaged store in $W/s
	rm -rf "$W/s"
	cp -a "$store" "$W/s"
}

# undamaged: nothing listed
fresh
rc=0
"$DFS_BIN/defrag-recover" --store "$W/s" >"$W/rec0" 2>&1 || rc=$?
[ $rc -eq 0 ] && grep -q "^nothing was lost" "$W/rec0" && ! grep -q "not restored" "$W/rec0" &&
	pass "an undamaged store rebuilds, nothing lost" || { cat "$W/rec0"; fail "rec0 ($rc)"; }

# the first pack's header flipped (magic and config copy): every record comes back
fresh
pack=$(ls "$W/s"/packs/*/*.pack | sort | head -n 1)
id=$(basename "$pack" .pack)
flip "$pack" 0
flip "$pack" 40
rc=0
"$DFS_BIN/defrag-recover" --store "$W/s" >"$W/rec1" 2>"$W/rec1.err" || rc=$?
[ $rc -eq 1 ] && grep -q "pack $id @0 +[0-9]* bytes: damaged pack header" "$W/rec1" &&
	[ "$(grep -c '^  pack' "$W/rec1")" -eq 1 ] &&
	pass "a damaged pack header is listed alone, exit 1" ||
	{ cat "$W/rec1" "$W/rec1.err"; fail "damaged header (exit $rc)"; }
if dfs_mount "$W/s" "$mnt"; then
	"$DFS_BIN/dfs-treecmp" --ignore-atime --ignore-ctime "$src" "$mnt/.sources/r" \
		>"$W/cmp1" 2>&1 && pass "every record past the damaged header is restored" ||
		{ head "$W/cmp1"; fail "files lost with a damaged header"; }
	dfs_umount "$mnt"
fi

# a damaged record between others: its pack and exact range, in text and JSON
fresh
pat=$(dd if="$src/a/r1.bin" bs=1 skip=4096 count=32 2>/dev/null | xxd -p | tr -d '\n')
at=
for p in "$W"/s/packs/*/*.pack; do
	hex=$(xxd -p "$p" | tr -d '\n' | grep -bo "$pat" | cut -d: -f1 |
		while read -r h; do [ $((h % 2)) -eq 0 ] && { echo "$h"; break; }; done)
	[ -n "$hex" ] || continue
	pack=$p
	at=$((hex / 2 + 8))
	break
done
if [ -z "$at" ]; then
	fail "r1.bin's bytes not found in a pack"
else
	id=$(basename "$pack" .pack)
	flip "$pack" "$at"
	rc=0
	"$DFS_BIN/defrag-recover" --store "$W/s" >"$W/rec2" 2>"$W/rec2.err" || rc=$?
	line=$(grep "^  pack $id @[0-9]* +[0-9]* bytes: damaged, skipped" "$W/rec2" || true)
	off=$(echo "$line" | sed -n 's/.*@\([0-9]*\) +.*/\1/p')
	len=$(echo "$line" | sed -n 's/.* +\([0-9]*\) bytes.*/\1/p')
	size=$(stat -c %s "$pack")
	magic() { dd if="$store/packs/${id: -2}/$id.pack" bs=1 skip="$1" count=4 2>/dev/null; }
	# the range is the damaged record exactly: it starts at a record and the next
	# record (never the pack's end: the ingest's META records come after) follows it
	[ $rc -eq 1 ] && [ -n "$off" ] && [ "$off" -le "$at" ] && [ $((off + len)) -gt "$at" ] &&
		[ $((off + len)) -lt "$size" ] && [ "$(magic "$off")" = DFSR ] &&
		[ "$(magic $((off + len)))" = DFSR ] &&
		grep -q "1 damaged ranges" "$W/rec2" &&
		pass "a damaged record is listed with its range ($id @$off +$len), exit 1" ||
		{ cat "$W/rec2" "$W/rec2.err"; fail "damaged record (exit $rc, flip @$at)"; }
	fresh
	flip "$pack" "$at"
	rc=0
	"$DFS_BIN/defrag-recover" --store "$W/s" --json >"$W/rec2.json" 2>/dev/null || rc=$?
	tr -d ' \n' <"$W/rec2.json" >"$W/rec2.flat"
	[ $rc -eq 1 ] && grep -q '"lost":true' "$W/rec2.flat" &&
		grep -q "{\"kind\":\"range\",\"pack\":$((16#$id)),\"offset\":$off,\"length\":$len," \
			"$W/rec2.flat" && pass "the JSON report lists the same range" ||
		{ cat "$W/rec2.json"; fail "JSON report (exit $rc)"; }
	if dfs_mount "$W/s" "$mnt"; then
		cmp -s "$src/a/r2.bin" "$mnt/.sources/r/a/r2.bin" &&
			cmp -s "$src/b/numbers.txt" "$mnt/.sources/r/b/numbers.txt" &&
			! cat "$mnt/.sources/r/a/r1.bin" >/dev/null 2>&1 &&
			pass "only the file using the damaged record fails to read" ||
			fail "reads after a damaged record"
		dfs_umount "$mnt"
	fi
fi
dfs_finish
