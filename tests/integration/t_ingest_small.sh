#!/usr/bin/env bash
# issue 23, item 12 (the ingest side): --exclude's rsync forms ("/anchored" at the source
# root, "dir/" for directories only) and a clear refusal of what is not supported; the
# progress line's file total counts regular files only; an error is printed once; -h is
# --help (exit 0) for every defrag-* tool, and the store's error is printed once by each;
# the summary's new stored bytes match the packs' records; chunks larger than the read
# window.
set -eu
. "$(dirname "$0")/lib.sh"
dfs_setup

src=$W/src
store=$W/store
mnt=$W/mnt
mkdir -p "$mnt" "$src/home/x" "$src/a/home/x" "$src/cache" "$src/b" "$src/keep"
echo 1 >"$src/home/x/f"
echo 2 >"$src/a/home/x/f"
echo 3 >"$src/cache/f"
echo 4 >"$src/b/cache"
echo 5 >"$src/keep/f.iso"
echo 6 >"$src/keep/f.txt"
dfs_ingest --store "$store" -x /home/x -x cache/ -x '*.iso' "$src" >/dev/null || fail "ingest"
dfs_mount "$store" "$mnt"
v=$mnt/.sources/src
[ ! -e "$v/home/x" ] && [ -d "$v/home" ] && pass "/home/x: excluded at the root" ||
	fail "/home/x at the root not excluded"
[ -f "$v/a/home/x/f" ] && pass "/home/x: a/home/x kept (anchored)" || fail "a/home/x excluded"
[ ! -e "$v/cache" ] && pass "cache/: the directory excluded" || fail "cache/ directory kept"
[ -f "$v/b/cache" ] && pass "cache/: a file named cache kept" || fail "the file b/cache excluded"
[ ! -e "$v/keep/f.iso" ] && [ -f "$v/keep/f.txt" ] && pass "*.iso at any depth" ||
	fail "*.iso not excluded"
dfs_umount "$mnt"

# what is not supported is said, before anything is done
rc=0
"$DFS_BIN/defrag-ingest" --store "$W/store2" -x '+ *.c' "$src" >/dev/null 2>"$W/e1" || rc=$?
[ $rc -eq 2 ] && grep -q "not supported" "$W/e1" && [ ! -e "$W/store2" ] &&
	pass "an rsync filter rule is refused (exit 2)" || fail "filter rule: exit $rc, $(cat "$W/e1")"

# the progress total: regular files only (30 directories, 60 files)
p=$W/prog
for d in $(seq 1 30); do mkdir -p "$p/d$d"; echo "$d" >"$p/d$d/a"; echo "x$d" >"$p/d$d/b"; done
dfs_ingest --store "$store" --progress=always "$p" >/dev/null || fail "progress ingest"
last=$(grep "^prog: " "$W/ingest.log" | tail -n 1)
echo "$last"
case $last in
"prog: 60/60 files,"*) pass "the progress line counts files only (60/60)" ;;
*) fail "progress line: $last" ;;
esac
# the same when the walk ends before the pre-walk has counted anything (a DFS_TEST_FAULTS
# build, known by the op count it writes, holds the pre-walk back until the run stops it):
# before 74c25e2 the last line said "60/0+"
DFS_FAULT_COUNT=$W/fcount DFS_FAULT_PREWALK_LATE=1 dfs_ingest --store "$W/store-late" \
	--progress=always "$p" >/dev/null || fail "progress ingest, pre-walk late"
if [ -s "$W/fcount" ]; then
	last=$(grep "^prog: " "$W/ingest.log" | tail -n 1)
	case $last in
	"prog: 60/60 files,"*) pass "a pre-walk that never counted: the last line says 60/60" ;;
	*) fail "progress line with the pre-walk late: $last" ;;
	esac
else
	echo "(not a DFS_TEST_FAULTS build: the late pre-walk is not run)"
fi
# and a re-ingest counts its unchanged files as done
dfs_ingest --store "$store" --progress=always "$p" >/dev/null || fail "progress re-ingest"
last=$(grep "^prog: " "$W/ingest.log" | tail -n 1)
case $last in
"prog: 60/60 files,"*) pass "unchanged files count as done (60/60)" ;;
*) fail "re-ingest progress line: $last" ;;
esac

# the summary's new stored bytes are what the packs took: 56 header bytes a chunk and, for
# a raw chunk of more than one 16 KiB block, its block table (8 bytes a block) besides the
# payload; random files are raw chunks, the text compresses
r=$W/rawsrc
mkdir -p "$r"
head -c 3000000 /dev/urandom >"$r/r1"
head -c 500000 /dev/urandom >"$r/r2"
seq 1 200000 >"$r/t1"
dfs_ingest --store "$W/store3" --json "$r" >"$W/j3" || fail "ingest of random files"
"$DFS_BIN/defrag-stat" --store "$W/store3" --json >"$W/s3" || fail "defrag-stat"
ns=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["new_stored_bytes"])' "$W/j3")
want=$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["stored_bytes"] + 56 * j["chunks"])' "$W/s3")
[ "$ns" = "$want" ] && pass "new stored bytes = the packs' chunk records ($ns)" ||
	fail "new stored bytes $ns, the packs' chunk records $want"

# chunks larger than the 8 MiB read window (--chunk-max up to 64 MiB): the window grows to
# hold them (it cut nothing and spun before); the file reads back whole
b=$W/bigchunks
mkdir -p "$b"
head -c 41000000 /dev/urandom >"$b/r"
rc=0
timeout -k 10 300 "$DFS_BIN/defrag-ingest" --progress=never --allow-same-filesystem \
	--chunk-min 16M --chunk-avg 32M --chunk-max 64M --store "$W/store4" "$b" \
	>/dev/null 2>"$W/e4" || rc=$?
n=$("$DFS_BIN/defrag-stat" --store "$W/store4" --json 2>/dev/null |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["chunks"])' || echo none)
if [ $rc -eq 0 ] && [ "$n" -ge 1 ] && [ "$n" -le 2 ]; then
	dfs_mount "$W/store4" "$mnt"
	cmp -s "$b/r" "$mnt/.sources/bigchunks/r" && pass "chunks of up to 64 MiB ($n for 41 MB)" ||
		fail "a file of 64 MiB chunks reads back different"
	dfs_umount "$mnt"
else
	fail "--chunk-max 64M: exit $rc, $n chunks: $(cat "$W/e4")"
fi

# an error once: a store that cannot be opened
echo x >"$W/notastore"
for t in defrag-ingest defrag-stat defrag-verify defrag-reclassify defrag-recover; do
	rc=0
	if [ $t = defrag-ingest ]; then
		"$DFS_BIN/$t" --store "$W/notastore" "$src" >/dev/null 2>"$W/e2" || rc=$?
	else
		"$DFS_BIN/$t" --store "$W/notastore" >/dev/null 2>"$W/e2" || rc=$?
	fi
	[ $rc -eq 3 ] && [ "$(wc -l <"$W/e2")" = 1 ] && pass "$t: the store's error once" ||
		{ cat "$W/e2"; fail "$t: exit $rc, $(wc -l <"$W/e2") lines"; }
done

# -h
for t in defrag-ingest defrag-stat defrag-verify defrag-reclassify defrag-recover; do
	rc=0
	"$DFS_BIN/$t" -h >"$W/h" 2>&1 || rc=$?
	[ $rc -eq 0 ] && grep -q "^Usage: $t" "$W/h" && pass "$t -h" || fail "$t -h: exit $rc"
done
dfs_finish
