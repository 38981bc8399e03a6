#!/usr/bin/env bash
# The gate (defrag-verify --against) never says yes wrongly. Each case starts from a
# drive just ingested and checked clean, changes one thing on the drive (or points the
# gate elsewhere), and must exit 1 (2 for a path that is not the source) and leave
# defrag-stat's "safe to wipe: no":
#   a changed byte with the mtime put back, a mode, an owner, an xattr, an ACL, a file
#   deleted from the drive, a file added to it, a broken hard link, a hole filled with
#   zeros, a directory's mtime; an empty directory, a copy of the drive, another directory
#   of the same filesystem; and an ingest that changed the view after the last gate.
set -eu
. "$(dirname "$0")/lib.sh"
dfs_setup

store=$W/store
src=$W/drv

stat_safe() {	# prints yes/no for source drv
	"$DFS_BIN/defrag-stat" --store "$store" --json |
		grep -A30 '"name": "drv"' | grep -m1 '"safe_to_wipe"' | grep -q true &&
		echo yes || echo no
}

fresh() {	# a drive, ingested, and gated clean (safe to wipe: yes); "nogate": not gated
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
	dfs_ingest --store "$store" --name drv "$src" >/dev/null || fail "ingest"
	[ "${1:-}" = nogate ] && return 0
	"$DFS_BIN/defrag-verify" --store "$store" --against "$src" --name drv >"$W/clean" 2>&1 ||
		{ cat "$W/clean"; fail "the fresh drive is not clean"; }
	[ "$(stat_safe)" = yes ] || fail "a clean gate does not say safe to wipe"
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
gate "changed byte, mtime put back" 1 "bytes differ at offset"

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

dfs_finish
