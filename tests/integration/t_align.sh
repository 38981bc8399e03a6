#!/usr/bin/env bash
# Copy alignment (CLASSIFY.md, "Copy alignment"): copies of directories under other names
# and on other drives land on the organized paths of what they copy, each file once with
# every origin. Fixtures: an exact copy under another name, a later backup (5% of files
# changed, 1% removed, 1% added), a copy of a subdirectory only, a git working tree copied
# under another name, a copy with other modes and mtimes only, and two unrelated trees
# that share a license file and empty files (must not align). The organized tree is
# compared with a golden listing (tests/golden/align/tree.txt: path, origins count);
# DFS_GOLDEN_UPDATE=1 rewrites it. reclassify must give the same tree. A fourth drive is
# an append build that reads its own view only (the others' signatures from the index).
set -eu
. "$(dirname "$0")/lib.sh"
DFS_NEEDS="defrag-ingest defragfs defrag-reclassify" dfs_setup
golden=$(cd "$(dirname "$0")/../golden" && pwd)/align/tree.txt

a=$W/a b=$W/b c=$W/c store=$W/store mnt=$W/mnt
mkdir -p "$mnt"
# deterministic content: "NAME line I" lines, and a fixed date
put() { # put FILE LINES [SALT]
	mkdir -p "$(dirname "$1")"
	awk -v n="$2" -v s="${3:-}" -v f="$(basename "$1")" \
		'BEGIN { for (i = 0; i < n; i++) printf "%s%s line %d of a test file\n", f, s, i }' >"$1"
}
for i in $(seq -w 1 100); do
	put "$a/proj/src/mod$((10#$i % 7))/f$i.c" $((10#$i + 3))
done
for i in $(seq -w 1 20); do put "$a/proj/doc/page$i.md" 5; done
for i in $(seq -w 1 20); do put "$a/photos/2023/img$i.jpg" 40; done
for i in $(seq -w 1 12); do put "$a/notes/note$i.txt" 6 a; done
put "$a/notes/COPYING" 300 gpl
: >"$a/notes/empty1"
: >"$a/notes/.keep"
mkdir -p "$a/repo"
for i in 1 2 3 4 5; do put "$a/repo/lib$i.py" 20; done
# a git working tree made by hand: the same bytes whatever git this machine has
mkdir -p "$a/repo/.git/objects/ab" "$a/repo/.git/refs/heads"
echo 'ref: refs/heads/main' >"$a/repo/.git/HEAD"
printf '[core]\n\trepositoryformatversion = 0\n\tbare = false\n' >"$a/repo/.git/config"
for i in 1 2 3 4 5 6 7 8 9; do put "$a/repo/.git/objects/ab/cdef$i" 3 obj; done
echo 0123456789abcdef0123456789abcdef01234567 >"$a/repo/.git/refs/heads/main"
find "$a" -exec touch -h -d '2024-01-02 03:04:05' {} +

# b: a later backup of proj (5 changed, 1 removed, 1 added of 100 sources) ...
mkdir -p "$b/backup-2024"
cp -a "$a/proj" "$b/backup-2024/proj"
for i in 003 017 031 045 059; do echo "edited later" >>"$b/backup-2024/proj/src/mod$((10#$i % 7))/f$i.c"; done
rm "$b/backup-2024/proj/src/mod2/f100.c"
put "$b/backup-2024/proj/src/mod1/f101.c" 9
# ... an exact copy of photos under another name, a copy of proj/src only, the git
# working tree under another name, and photos with other modes and mtimes
cp -a "$a/photos" "$b/pics-copy"
mkdir -p "$b/old" "$b/code"
cp -a "$a/proj/src" "$b/old/src-only"
cp -a "$a/repo" "$b/code/myrepo"
cp -r "$a/photos/2023" "$b/photos-2023"
chmod 600 "$b"/photos-2023/*
touch -d '2025-05-05 05:05:05' "$b"/photos-2023/*
# c: an unrelated tree sharing the license and empty files with a/notes
for i in $(seq -w 1 12); do put "$c/other/memo$i.txt" 6 c; done
cp "$a/notes/COPYING" "$c/other/COPYING"
: >"$c/other/empty1"
: >"$c/other/.keep"

# each drive's dry run first (the store as it is, nothing written): it must say the
# alignments the ingest then reports, in the same lines
for d in a b c; do
	dfs_ingest --store "$store" --name $d --dry-run "$W/$d" >"$W/dry-$d.out" 2>&1 ||
		fail "dry run $d"
	dfs_ingest --store "$store" --name $d "$W/$d" >"$W/ingest-$d.out" || fail "ingest $d"
done
cat "$W/ingest-b.out" >"$W/summary"
for d in a b c; do
	cmp -s <(grep '^  aligned: ' "$W/dry-$d.out") <(grep '^  aligned: ' "$W/ingest-$d.out") ||
		{ diff <(grep '^  aligned: ' "$W/dry-$d.out") <(grep '^  aligned: ' "$W/ingest-$d.out");
		  fail "the dry run of $d says other alignments than its ingest"; }
done
[ "$(grep -c '^  aligned: ' "$W/dry-b.out")" -ge 5 ] &&
	grep -q '^  aligned: b:/backup-2024 is a copy of a:/ (' "$W/dry-b.out" &&
	pass "--dry-run says the alignments its ingest then reports ($(grep -c '^  aligned: ' "$W/dry-b.out") for b)" ||
	{ cat "$W/dry-b.out"; fail "the dry run of b did not align"; }
# a dry run of a drive the store has: its live tree in its place (before c)
dfs_ingest --store "$store" --name b --dry-run "$W/b" >"$W/dry-b2.out" 2>&1 || fail "dry run b again"
cmp -s <(grep '^  aligned: ' "$W/dry-b2.out") <(grep '^  aligned: ' "$W/ingest-b.out") &&
	pass "a dry run of a drive already ingested aligns it in its own place" ||
	{ diff <(grep '^  aligned: ' "$W/dry-b2.out") <(grep '^  aligned: ' "$W/ingest-b.out");
	  fail "the dry run of b again"; }
dfs_mount "$store" "$mnt" || { dfs_finish; exit 1; }

listing() { # every organized file: path, origins count
	(cd "$mnt" && find . -path ./.sources -prune -o -type f -print | LC_ALL=C sort |
		while IFS= read -r f; do
			printf '%s\t%s\n' "${f#./}" \
				"$(getfattr --absolute-names -n user.defrag.origins_count --only-values "$f")"
		done)
}
listing >"$W/tree.txt"
if [ "${DFS_GOLDEN_UPDATE:-0}" = 1 ]; then
	mkdir -p "$(dirname "$golden")"
	cp "$W/tree.txt" "$golden"
	echo "golden updated: $golden"
fi
if diff -u "$golden" "$W/tree.txt" >"$W/diff"; then
	pass "the organized tree is the golden one ($(wc -l <"$golden") files)"
else
	head -n 40 "$W/diff"
	fail "the organized tree differs from $golden"
fi

# the properties behind the golden file, said plainly
grep -q 'backup-2024\|pics-copy\|src-only\|myrepo\|photos-2023' "$W/tree.txt" &&
	fail "a copy kept its own name: $(grep -m3 'backup-2024\|pics-copy\|src-only\|myrepo\|photos-2023' "$W/tree.txt")" ||
	pass "no copy keeps its own folder"
f=$(grep -P '/f0?01\.c\t' "$W/tree.txt" | head -1)
[ "${f##*$'\t'}" = 3 ] && pass "proj/src/mod1/f001.c: one entry, 3 origins (a, the backup, the src copy)" ||
	fail "f001.c: $f"
grep -P 'f003~[0-9a-f]{8}\.c\t1$' "$W/tree.txt" >/dev/null &&
	pass "a changed file is a version beside the first (name~hash)" || fail "no version of f003.c"
f=$(grep -oP '^[^\t]*f003\.c(?=\t)' "$W/tree.txt")
v=$(grep -oP '^[^\t]*f003~[0-9a-f]{8}\.c(?=\t)' "$W/tree.txt")
[ "$(getfattr --absolute-names -n user.defrag.versions --only-values "$mnt/$f")" = "${v##*/}" ] &&
	[ "$(getfattr --absolute-names -n user.defrag.versions --only-values "$mnt/$v")" = "f003.c" ] &&
	pass "user.defrag.versions: each version names the other" ||
	fail "versions of $f: $(getfattr -n user.defrag.versions --only-values "$mnt/$f" 2>&1)"
getfattr --absolute-names -n user.defrag.versions "$mnt/$(grep -oP '^[^\t]*f001\.c(?=\t)' "$W/tree.txt")" \
	>/dev/null 2>&1 && fail "a file without versions has user.defrag.versions" ||
	pass "a file without versions has no user.defrag.versions"
grep -P 'f101\.c\t1$' "$W/tree.txt" >/dev/null && pass "a file only in the backup is added" ||
	fail "f101.c missing"
grep -P 'img01\.jpg\t3$' "$W/tree.txt" >/dev/null &&
	pass "photos: the copy under another name and the one with other modes merge" ||
	fail "img01.jpg: $(grep img01 "$W/tree.txt")"
grep -P 'lib1\.py\t2$' "$W/tree.txt" >/dev/null && pass "the git working tree merges as a unit" ||
	fail "lib1.py: $(grep lib1.py "$W/tree.txt")"
grep -q 'memo01.txt' "$W/tree.txt" && grep -P 'note01\.txt\t1$' "$W/tree.txt" >/dev/null &&
	! grep -q 'notes/memo' "$W/tree.txt" &&
	pass "two unrelated trees that share a license and empty files do not align" ||
	fail "unrelated trees aligned"
# --explain says which folder an entry's folder copies (from the index alone)
"$DFS_BIN/defrag-ingest" --store "$store" --name b --explain backup-2024/proj/src/mod1/f001.c \
	"$W/b" >"$W/explain" 2>&1 || { cat "$W/explain"; fail "--explain in the backup"; }
grep -q "^alignment: b:/backup-2024 is a copy of a:/ ([0-9]*% identical: [0-9]* files identical, 5 changed" \
	"$W/explain" && pass "--explain names the folder it copies, with the counts" ||
	{ cat "$W/explain"; fail "--explain: no alignment said"; }
"$DFS_BIN/defrag-ingest" --store "$store" --name c --explain "$W/c/other/memo01.txt" "$W/c" \
	>"$W/explain2" 2>&1 && grep -q "^alignment: none" "$W/explain2" &&
	pass "--explain of a folder that copies nothing says so" ||
	{ cat "$W/explain2"; fail "--explain in c"; }
grep -q "b:/backup-2024 is a copy of a:/" "$W/summary" &&
	grep -q "b:/pics-copy is a copy of a:/photos (100%" "$W/summary" &&
	pass "the summary says what was aligned" || { cat "$W/summary"; fail "summary"; }

dfs_umount "$mnt"
"$DFS_BIN/defrag-reclassify" --store "$store" >/dev/null 2>&1 || fail "reclassify"
dfs_mount "$store" "$mnt" || { dfs_finish; exit 1; }
listing >"$W/tree2.txt"
cmp -s "$W/tree.txt" "$W/tree2.txt" && pass "reclassify gives the same tree" ||
	{ diff "$W/tree.txt" "$W/tree2.txt" | head; fail "reclassify differs"; }
dfs_umount "$mnt"

# alignment's records (CLASSIFY.md, "Kept in the index"): a drive added later is an append
# build that reads its own view only, replays the others' alignments and looks its
# directories' candidates up in the postings: an unrelated drive loads no other drive's
# signatures
d=$W/d
for i in $(seq -w 1 10); do put "$d/misc/m$i.txt" 4 d; done
dfs_ingest --store "$store" --name d --json "$d" >"$W/ingest-d.json" || fail "ingest d"
want_read=$(find "$d" -type d | wc -l)
python3 - "$W/ingest-d.json" "$want_read" <<'PY' &&
import json, sys
j = json.load(open(sys.argv[1]))
got = (j["organize_append"], j["organize_align_dirs_read"], j["organize_align_dirs_loaded"],
       j["organize_align_replayed"], j["organize_align_lookups"] > 0)
want = (True, int(sys.argv[2]), 0, 3, True)
sys.exit(0 if got == want else "append, read, loaded, replayed, looked up: %s, want %s" % (got, want))
PY
	pass "an append build reads the new drive's view only ($want_read directories) and loads no other's" ||
	fail "the append build did not use the stored records"
# a later drive holding another copy of a's photos: its candidates by lookup, a's
# signatures loaded to verify, and the same alignments as reclassify (a full build)
e=$W/e
mkdir -p "$e"
cp -a "$a/photos" "$e/kept-photos"
dfs_ingest --store "$store" --name e --dry-run --json "$e" >"$W/dry-e.json" || fail "dry run e"
dfs_ingest --store "$store" --name e --json "$e" >"$W/ingest-e.json" || fail "ingest e"
python3 - "$W/dry-e.json" "$W/ingest-e.json" <<'PY' &&
import json, sys
d, i = (json.load(open(f)) for f in sys.argv[1:])
sys.exit(0 if d["dry_run"] and d["alignments"] == i["alignments"] and len(d["alignments"]) == 1
         else "%s\n---\n%s" % (d["alignments"], i["alignments"]))
PY
	pass "--dry-run --json: the same \"alignments\" as the ingest's" ||
	fail "the dry run's json alignments differ"
python3 - "$W/ingest-e.json" <<'PY' &&
import json, sys
j = json.load(open(sys.argv[1]))
al = [(x["path"], x["copy_of"]["source"], x["copy_of"]["path"]) for x in j["alignments"]]
ok = j["organize_append"] and j["organize_align_dirs_loaded"] > 0 and ("kept-photos", "a", "photos") in al
sys.exit(0 if ok else "alignments %s, loaded %d" % (al, j["organize_align_dirs_loaded"]))
PY
	pass "an append build finds a copy by lookup (e:/kept-photos is a copy of a:/photos)" ||
	fail "e's copy not found"
# every alignment so far (replayed, the later drives' found by lookup) against a full
# build of the same drives in a fresh store (every view read, no record)
"$DFS_BIN/defrag-reclassify" --store "$store" --json >"$W/recl1.json" 2>&1 || fail "reclassify"
for n in a b c d e; do
	dfs_ingest --store "$W/store3" --name $n --no-organize "$W/$n" >/dev/null || fail "ingest $n"
done
"$DFS_BIN/defrag-reclassify" --store "$W/store3" --json >"$W/recl2.json" 2>&1 || fail "reclassify 3"
python3 - "$W/recl1.json" "$W/recl2.json" <<'PY' &&
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:])
al = lambda j: json.dumps(j["alignments"], sort_keys=True)
n = len(a["alignments"])
sys.exit(0 if al(a) == al(b) and n == 6 else
         "%s\n---\n%s" % (al(a), al(b)))
PY
	pass "the append builds aligned as one full build of the same drives does" ||
	fail "alignments differ between append builds and a full build"

# a directory whose name a file holds goes to "name~dir~<8 hex of its organized path>",
# then "...~2": never into an unrelated directory really named "name~dir", and never an
# organized tree that cannot be built (before: every later build failed, ENOTDIR)
x=$W/x y=$W/y s2=$W/store2
h=$(printf 'unsorted/thing' | sha256sum | cut -c1-8)
mkdir -p "$x/thing~dir" "$y/thing"
echo file >"$x/thing"
echo tilde >"$x/thing~dir~$h"
echo "x's own" >"$x/thing~dir/inner"
echo "y's inner" >"$y/thing/inner"
echo y2 >"$y/thing/other"
dfs_ingest --store "$s2" --name x "$x" >/dev/null || fail "ingest x"
rc=0
dfs_ingest --store "$s2" --name y "$y" >"$W/y.out" 2>&1 || rc=$?
dfs_mount "$s2" "$mnt" || { dfs_finish; exit 1; }
if [ $rc -eq 0 ] && [ "$(cat "$mnt/unsorted/thing~dir~$h~2/inner")" = "y's inner" ] &&
	[ "$(cat "$mnt/unsorted/thing~dir/inner")" = "x's own" ] &&
	[ "$(ls "$mnt/unsorted/thing~dir")" = inner ] &&
	! getfattr -n user.defrag.versions "$mnt/unsorted/thing~dir/inner" >/dev/null 2>&1; then
	pass "a directory blocked by files goes to name~dir~hash~2, apart from name~dir"
else
	cat "$W/y.out"; ls -la "$mnt/unsorted"
	fail "directory name fallback: ingest exit $rc"
fi
dfs_umount "$mnt"
dfs_finish
