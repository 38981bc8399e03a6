#!/usr/bin/env bash
# Classification is redone from the index alone: defrag-reclassify with changed rules
# gives exactly the tree (names, types, modes, bytes, xattrs incl. user.defrag.rule and
# origins) that a fresh ingest with those rules gives; every source content stays
# reachable; reclassify never opens a source (the sources are gone when it runs); a rules
# error changes nothing; an ingest with --no-organize leaves the tree to the next run.
set -eu
. "$(dirname "$0")/lib.sh"
DFS_NEEDS="defrag-ingest defrag-reclassify defragfs" dfs_setup

s1=$W/drives/s1
s2=$W/drives/s2
mkdir -p "$s1/home/ann/notes" "$s1/work/proj/src" "$s2/home/ann/notes" "$W/ma" "$W/mb"
"$DFS_BIN/dfs-treegen" "$s1/gen" --seed 11 >/dev/null
for i in $(seq 1 12); do seq 1 $((i * 300)) >"$s1/home/ann/notes/n$i.txt"; done
cp -a "$s1/home/ann/notes/." "$s2/home/ann/notes/"
echo "changed on s2" >>"$s2/home/ann/notes/n3.txt"	# a conflict at one path
printf 'int main(void) { return 0; }\n' >"$s1/work/proj/src/main.c"
git -C "$s1/work/proj" init -q
git -C "$s1/work/proj" -c user.name=t -c user.email=t@t add -A
git -C "$s1/work/proj" -c user.name=t -c user.email=t@t commit -qm init
head -c 200000 /dev/urandom >"$s2/photo.jpg"
# no extension: placed by its MIME type (computed by ingest from the bytes it read)
{ printf '\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06'
  printf '\x00\x00\x00'; head -c 5000 /dev/urandom; } >"$s2/scan0001"

cat >"$W/rules.yml" <<'YML'
version: 1
rules:
  - name: notes-by-source
    category: documents/notes
    match: {ext: txt, path: "home/*/notes/**"}
    to: "notes/{source}/{name}"
  - name: my-repos
    category: development/projects
    match: {unit: git-worktree}
    to: "code/{name}"
  - name: pictures
    category: media/images
    match: {ext: [jpg, jpeg]}
    to: "pictures/{year}/{name}"
YML
printf 'version: 1\nrules:\n  - name: x\n    to: "a/{nosuchvar}"\n' >"$W/bad.yml"

# A: default rules, then reclassified with rules.yml; B: ingested with rules.yml.
for s in s1 s2; do
	dfs_ingest --store "$W/a" --name $s --json "$W/drives/$s" >"$W/a-$s.json" ||
		fail "ingest A $s"
	dfs_ingest --store "$W/b" --name $s --rules "$W/rules.yml" "$W/drives/$s" >/dev/null ||
		fail "ingest B $s"
done
# the sources disappear: reclassify must work from the index alone
mv "$W/drives" "$W/drives.away"

dfs_mount "$W/a" "$W/ma"
find "$W/ma" -printf '%P\n' | sort >"$W/before"
[ "$(getfattr --only-values -n user.defrag.rule "$W/ma/media/images/scan0001" 2>/dev/null)" = \
	images-by-content ] && pass "an extension-less PNG placed by its MIME type" ||
	fail "MIME placement (scan0001)"
grep -q '"organize_mime_computed": 0,' "$W/a-s2.json" &&
	pass "ingest computed the MIME types from the bytes it read" ||
	{ grep organize_mime "$W/a-s2.json"; fail "the organizer had to compute MIME types"; }
dfs_umount "$W/ma"
# s2 came after s1 was organized: only s2 was placed (an append build), and the result is
# the tree a full build gives (conflict and merges with s1 included)
grep -q '"organize_append": true' "$W/a-s2.json" && pass "the second source: an append build" ||
	fail "the second source's build was not an append build"
cp -a "$W/a" "$W/a-full"
"$DFS_BIN/defrag-reclassify" --store "$W/a-full" >/dev/null || fail "full reclassify"
dfs_mount "$W/a" "$W/ma"
dfs_mount "$W/a-full" "$W/mb"
"$DFS_BIN/dfs-treecmp" --ignore-atime --ignore-ctime "$W/ma" "$W/mb" >"$W/cmp" 2>&1 &&
	pass "an append build equals a full build" ||
	{ head -n 30 "$W/cmp"; fail "append build differs from a full build"; }
dfs_umount "$W/ma"
dfs_umount "$W/mb"
rm -rf "$W/a-full"
rc=0
"$DFS_BIN/defrag-reclassify" --store "$W/a" --rules "$W/bad.yml" >"$W/bad.out" 2>&1 || rc=$?
[ $rc -eq 2 ] && grep -q "bad.yml:[0-9]*:[0-9]*" "$W/bad.out" &&
	pass "a rules error is reported with line:column (exit 2)" ||
	{ cat "$W/bad.out"; fail "bad rules: exit $rc"; }
dfs_mount "$W/a" "$W/ma"
find "$W/ma" -printf '%P\n' | sort >"$W/after-bad"
dfs_umount "$W/ma"
cmp -s "$W/before" "$W/after-bad" && pass "a rules error changes nothing" ||
	fail "a failed reclassify changed the tree"

# (DFS_TEST_FAULTS builds: the build commits each time it waits for its producer, as
# large trees do; the tree must not depend on where the commits fall)
DFS_FAULT_ORG_COMMIT=1 "$DFS_BIN/defrag-reclassify" --store "$W/a" --rules "$W/rules.yml" \
	>"$W/re.out" 2>&1 &&
	pass "reclassify ran without the sources" || { cat "$W/re.out"; fail "reclassify"; }

dfs_mount "$W/a" "$W/ma"
dfs_mount "$W/b" "$W/mb"
[ -f "$W/ma/notes/s1/n1.txt" ] && [ -f "$W/ma/notes/s2/n3.txt" ] &&
	[ -d "$W/ma/code/proj/.git" ] && [ -n "$(ls "$W/ma/pictures")" ] &&
	pass "the new rules placed the files" || { ls -R "$W/ma" | head -40; fail "rules not applied"; }
[ "$(getfattr --only-values -n user.defrag.rule "$W/ma/notes/s1/n1.txt" 2>/dev/null)" = \
	notes-by-source ] && pass "user.defrag.rule names the new rule" || fail "rule xattr"
"$DFS_BIN/dfs-treecmp" --ignore-atime --ignore-ctime "$W/ma" "$W/mb" >"$W/cmp" 2>&1 &&
	pass "reclassified tree equals a fresh ingest with the same rules" ||
	{ head -n 30 "$W/cmp"; fail "reclassify differs from a fresh ingest"; }
mv "$W/drives.away" "$W/drives"
for s in s1 s2; do
	dfs_all_reachable "$W/drives/$s" "$W/ma" && pass "every content of $s reachable" ||
		fail "content of $s unreachable after reclassify"
done
dfs_umount "$W/ma"
dfs_umount "$W/mb"

# The organized tree is rebuilt only when something it depends on changed: the sources'
# views, the rules, the algorithm. (Back to the built-in rules here, --rules builtin: a
# change; the store kept rules.yml from the reclassify above.)
skipped() { grep -o '"organize_skipped": [a-z]*' "$1" | cut -d' ' -f2; }
tree_of() {	# sizes and names of the mounted store $1, into $2
	dfs_mount "$1" "$W/ma"
	find "$W/ma" -printf '%s %P\n' | sort -k2 >"$2"
	dfs_umount "$W/ma"
}
dfs_ingest --store "$W/a" --name s1 --rules builtin --json "$W/drives/s1" >"$W/r1.json" ||
	fail "re-ingest 1"
[ "$(skipped "$W/r1.json")" = false ] && pass "other rules than the last build's: rebuilt" ||
	fail "rules changed but the tree was not rebuilt: $(skipped "$W/r1.json")"
tree_of "$W/a" "$W/t1"
dfs_ingest --store "$W/a" --name s1 --json "$W/drives/s1" >"$W/r2.json" || fail "re-ingest 2"
[ "$(skipped "$W/r2.json")" = true ] && pass "nothing changed: the tree is not rebuilt" ||
	fail "a no-change ingest rebuilt the tree: $(skipped "$W/r2.json")"
tree_of "$W/a" "$W/t2"
cmp -s "$W/t1" "$W/t2" && sed 's/^[0-9]* //' "$W/t1" | sort | cmp -s - "$W/before" &&
	pass "the kept tree is the default-rules tree" || fail "tree changed without a rebuild"
echo "late addition" >"$W/drives/s1/home/ann/notes/late.txt"
dfs_ingest --store "$W/a" --name s1 --json "$W/drives/s1" >"$W/r3.json" || fail "re-ingest 3"
dfs_mount "$W/a" "$W/ma"
[ "$(skipped "$W/r3.json")" = false ] && [ -n "$(find "$W/ma" -name late.txt)" ] &&
	pass "a new file: rebuilt, and the file is placed" || fail "new file not organized"
dfs_umount "$W/ma"
touch -d '2001-02-03 04:05:06' "$W/drives/s1/home/ann/notes"
dfs_ingest --store "$W/a" --name s1 --json "$W/drives/s1" >"$W/r4.json" || fail "re-ingest 4"
[ "$(skipped "$W/r4.json")" = false ] && pass "a directory's new mtime: rebuilt" ||
	fail "a directory change did not rebuild"
dfs_ingest --store "$W/a" --name s1 --rules "$W/rules.yml" --json "$W/drives/s1" \
	>"$W/r5.json" || fail "re-ingest 5"
[ "$(skipped "$W/r5.json")" = false ] && pass "--rules: rebuilt" ||
	fail "other rules did not rebuild"

# --no-organize: sources only (no MIME types computed); the next ingest organizes, and
# its tree is the tree of a store that never deferred (C: s1, then s2 deferred, then s1
# again; D: s1, s2 both organized)
dfs_ingest --store "$W/c" --name s1 "$W/drives/s1" >/dev/null || fail "ingest C s1"
tree_of "$W/c" "$W/c1"
dfs_ingest --store "$W/c" --name s2 --no-organize --json "$W/drives/s2" >"$W/c2.json" ||
	fail "ingest C s2 --no-organize"
tree_of "$W/c" "$W/c2"
grep -q '"organize_deferred": true' "$W/c2.json" && ! grep -q organize_seconds "$W/c2.json" &&
	[ "$(grep -o '"mime_calls": [0-9]*' "$W/c2.json" | tail -n 1)" = '"mime_calls": 0' ] &&
	cmp -s "$W/c1" "$W/c2" && pass "--no-organize: the organized tree left as it was" ||
	fail "--no-organize organized, or computed MIME types"
dfs_mount "$W/c" "$W/ma"
[ -f "$W/ma/.sources/s2/photo.jpg" ] && pass "--no-organize: the source view is there" ||
	fail "--no-organize: no source view"
dfs_umount "$W/ma"
dfs_ingest --store "$W/c" --name s1 --json "$W/drives/s1" >"$W/c3.json" || fail "ingest C s1 again"
for s in s1 s2; do
	dfs_ingest --store "$W/d" --name $s "$W/drives/$s" >/dev/null || fail "ingest D $s"
done
dfs_mount "$W/c" "$W/ma"
dfs_mount "$W/d" "$W/mb"
[ "$(getfattr --only-values -n user.defrag.rule "$W/ma/media/images/scan0001" 2>/dev/null)" = \
	images-by-content ] && grep -q '"organize_mime_computed": [1-9]' "$W/c3.json" &&
	pass "the deferred source organized later (MIME types from the stored heads)" ||
	fail "the deferred source was not organized"
"$DFS_BIN/dfs-treecmp" --ignore-atime --ignore-ctime "$W/ma" "$W/mb" >"$W/cmp" 2>&1 &&
	pass "organized later equals organized at once" ||
	{ head -n 30 "$W/cmp"; fail "a deferred organize differs"; }
dfs_umount "$W/ma"
dfs_umount "$W/mb"
dfs_finish
