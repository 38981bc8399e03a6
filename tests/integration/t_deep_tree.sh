#!/usr/bin/env bash
# A tree 5,000 levels deep (paths of about 10 KB, past PATH_MAX), with files, a symlink, a
# hard link, an empty directory and a side branch at several depths. No walk may recurse
# on the C stack or cap the depth below what the filesystem holds: the ingest stores every
# entry (exit 0), the gate compares every entry and is clean, a rerun reads nothing,
# defrag-reclassify rebuilds, the mount serves the deepest file through /.sources and the
# organized tree and find(1) lists every entry, --exclude matches a path longer than
# PATH_MAX (a second tree, 2,100 levels), and the deletion threshold counts every file of
# a subtree removed from the drive, however deep. Every path is walked with openat(2)
# (python3's dir_fd) one level at a time. About 60 s under ASan.
set -eu
. "$(dirname "$0")/lib.sh"
DFS_NEEDS="defrag-ingest defrag-verify defrag-reclassify defragfs" dfs_setup
command -v python3 >/dev/null || { echo "skip: needs python3"; exit 77; }

src=$W/src
store=$W/store
mnt=$W/mnt
mkdir -p "$mnt"
DEPTH=5000

cat >"$W/deep.py" <<'PY'
import os, sys

LEVELS = (1, 2, 100, 1000, 2500, 4095, 4096, 4097, 4100, 4999, 5000)

def down(fd, name):
    nfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
    os.close(fd)
    return nfd

def put(fd, name, data):
    f = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=fd)
    os.write(f, data)
    os.close(f)

def gen(root, depth):
    os.mkdir(root)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    top = None
    for lvl in range(1, depth + 1):
        os.mkdir("d", dir_fd=fd)
        fd = down(fd, "d")
        if lvl in LEVELS:
            put(fd, "f%d.txt" % lvl, ("level %d\n" % lvl).encode() * (lvl % 7 + 1))
        if lvl == 3:
            put(fd, "hl.txt", b"one file, two names\n")
            top = os.open(".", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        if lvl == 4200:
            os.mkdir("e", dir_fd=fd)
            e = os.open("e", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            put(e, "g.txt", b"a side branch\n")
            os.close(e)
        if lvl == 4500:
            os.symlink("../" * 10 + "f4095.txt", "ln", dir_fd=fd)
        if lvl == 4600:
            os.link("hl.txt", "hl.txt", src_dir_fd=top, dst_dir_fd=fd)
        if lvl == 4800:
            os.mkdir("empty", dir_fd=fd)
    os.close(top)
    os.close(fd)

def walk(root, first):
    """Follows the chain of "d" (after @first) down; prints the depth reached, the level
    of each f*.txt found and the bytes of the deepest one."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    if first:
        fd = down(fd, first)
    level, found, data = 0, [], b""
    while True:
        names = os.listdir(fd)
        for n in sorted(names):
            if n.startswith("f") and n.endswith(".txt"):
                found.append(int(n[1:-4]))
                f = os.open(n, os.O_RDONLY, dir_fd=fd)
                data = os.read(f, 4096)
                os.close(f)
        sub = "d" if "d" in names else "dd" if "dd" in names else None
        if not sub:
            break
        fd = down(fd, sub)
        level += 1
    os.close(fd)
    print(level, ",".join(map(str, found)), data.hex())

def chain(root, depth):
    """Only a chain of "dd" directories, with f1.txt and f2.txt at the bottom."""
    os.mkdir(root)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(depth):
        os.mkdir("dd", dir_fd=fd)
        fd = down(fd, "dd")
    put(fd, "f1.txt", b"kept\n")
    put(fd, "f2.txt", b"excluded\n")
    os.close(fd)

def move(root, level, to):
    """Moves the chain below @level out of the tree, to @to."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(level):
        fd = down(fd, "d")
    os.rename("d", to, src_dir_fd=fd)
    os.close(fd)

if sys.argv[1] == "gen":
    gen(sys.argv[2], int(sys.argv[3]))
elif sys.argv[1] == "chain":
    chain(sys.argv[2], int(sys.argv[3]))
elif sys.argv[1] == "walk":
    walk(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "")
elif sys.argv[1] == "move":
    move(sys.argv[2], int(sys.argv[3]), sys.argv[4])
PY
deep() { python3 "$W/deep.py" "$@"; }

deep gen "$src" $DEPTH
entries=$(find "$src" -mindepth 1 | wc -l)
want=$(deep walk "$src")
case "$want" in
"$DEPTH 1,2,100,1000,2500,4095,4096,4097,4100,4999,5000 "*)
	pass "the source: $DEPTH levels, $entries entries" ;;
*)	fail "the source: $want"; dfs_finish; exit 1 ;;
esac

rc=0
dfs_ingest --store "$store" --name deep "$src" >"$W/ingest1.out" || rc=$?
[ $rc -eq 0 ] && pass "ingest of the deep tree: exit 0" ||
	{ cat "$W/ingest1.out"; fail "ingest: exit $rc"; }

rc=0
"$DFS_BIN/defrag-verify" --store "$store" >"$W/verify.out" 2>&1 || rc=$?
[ $rc -eq 0 ] && pass "defrag-verify walks both views of the deep tree: clean" ||
	{ cat "$W/verify.out"; fail "verify: exit $rc"; }

rc=0
"$DFS_BIN/defrag-verify" --store "$store" --against "$src" --name deep >"$W/gate.out" 2>&1 ||
	rc=$?
if [ $rc -eq 0 ] && grep -q "$entries source entries compared.*: clean" "$W/gate.out"; then
	pass "the gate compares all $entries entries: clean"
else
	cat "$W/gate.out"
	fail "gate: exit $rc"
fi

rc=0
dfs_ingest --store "$store" --name deep --json "$src" >"$W/rerun.json" || rc=$?
read -r rd unchanged < <(python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
print(d["bytes_read"], d["sources"][0]["unchanged_files"])' "$W/rerun.json")
[ $rc -eq 0 ] && [ "$rd" = 0 ] && [ "$unchanged" = 13 ] &&
	pass "rerun: nothing read, the 13 regular files unchanged" ||
	fail "rerun: exit $rc, $rd bytes read, $unchanged files unchanged"

# a pattern with a '/' matches the whole path, here past PATH_MAX: it never matched
deep chain "$W/src2" 2100
rc=0
dfs_ingest --store "$store" --name ex -x '*/f2.txt' "$W/src2" >"$W/ingestx.out" || rc=$?
[ $rc -eq 0 ] && pass "ingest with --exclude: exit 0" ||
	{ cat "$W/ingestx.out"; fail "ingest --exclude: exit $rc"; }

rc=0
"$DFS_BIN/defrag-reclassify" --store "$store" >"$W/reclassify.out" 2>&1 || rc=$?
[ $rc -eq 0 ] && pass "defrag-reclassify: exit 0" ||
	{ cat "$W/reclassify.out"; fail "defrag-reclassify: exit $rc"; }

dfs_mount "$store" "$mnt"
got=$(deep walk "$mnt/.sources/deep" 2>&1) || true
[ "$got" = "$want" ] && pass "/.sources: the deepest file, level $DEPTH, read with openat" ||
	fail "/.sources: $got"
got=$(deep walk "$mnt" documents 2>&1) || true
[ "$got" = "$want" ] && pass "organized tree: the same files down to level $DEPTH" ||
	fail "organized tree: $got"
got=$(deep walk "$mnt/.sources/ex" 2>&1) || true
[ "$got" = "2100 1 6b6570740a" ] && pass "--exclude left out f2.txt, 2,100 levels down" ||
	fail "the excluded source: $got"
# (/.sources is not in the root's listing: find is started there)
n=$(find "$mnt/.sources/deep" -mindepth 1 | wc -l)
[ "$n" = "$entries" ] && pass "find lists all $n entries of /.sources/deep" ||
	fail "find through the mount: $n entries, $entries in the source"
n=$(find "$mnt/documents/d" -name '*.txt' | wc -l)
[ "$n" = 14 ] && pass "find lists the 14 organized files" || fail "organized files: $n"
dfs_umount "$mnt"

# the subtree below level 11 leaves the drive: the threshold counts every file in it (the
# regular files from level 100 on, the symlink and the side branch's file; the hard link's
# other name stays), however deep (it stopped counting 4096 levels down)
deep move "$src" 11 "$W/gone"
rc=0
dfs_ingest --store "$store" --name deep "$src" >"$W/del.out" || rc=$?
[ $rc -eq 2 ] && grep -q "would remove 11 of the" "$W/ingest.log" &&
	pass "deleting the deep subtree is refused, counting its 11 files" ||
	{ tail -3 "$W/ingest.log"; fail "deletion threshold: exit $rc"; }
rc=0
dfs_ingest --store "$store" --name deep --allow-deletions "$src" >"$W/del2.out" || rc=$?
[ $rc -eq 0 ] && pass "with --allow-deletions the deep subtree goes: exit 0" ||
	fail "ingest --allow-deletions: exit $rc"
rc=0
"$DFS_BIN/defrag-verify" --store "$store" --against "$src" --name deep >"$W/gate2.out" 2>&1 ||
	rc=$?
[ $rc -eq 0 ] && grep -q "clean" "$W/gate2.out" &&
	pass "the gate is clean on the drive without it" ||
	{ tail -5 "$W/gate2.out"; fail "gate after the deletion: exit $rc"; }
dfs_finish
