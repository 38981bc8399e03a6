#!/usr/bin/env bash
# Issue 23, item 10: --explain. It takes source-relative and absolute paths without
# following the last symlink (a symlink is explained as the symlink, not its target); it
# shows the placement the store actually holds (a unit's version name such as
# webapp~<hash>/, a loose file's conflict name and the other versions beside it), with
# the rules the store keeps; and it prints only the rules that came close unless -v.
set -eu
. "$(dirname "$0")/lib.sh"
DFS_NEEDS="defrag-ingest defrag-reclassify" dfs_setup

store=$W/store
cd "$W"
for d in a b; do	# two drives: two versions of one git worktree, two note.txt
	mkdir -p $d/projects/webapp $d/docs
	git -C $d/projects/webapp init -q
	echo "print('$d')" >$d/projects/webapp/app.py
	git -C $d/projects/webapp -c user.name=t -c user.email=t@t add -A
	git -C $d/projects/webapp -c user.name=t -c user.email=t@t commit -qm x
	echo "note of $d" >$d/docs/note.txt
done
ln -s ../projects/webapp/app.py a/docs/link.py
dfs_ingest --store "$store" --name a a >/dev/null || fail "ingest a"
dfs_ingest --store "$store" --name b b >/dev/null || fail "ingest b"
X() { "$DFS_BIN/defrag-ingest" --store "$store" "$@"; }

# an absolute path to a symlink: the symlink, not its target (which is inside the unit)
X --name a --explain "$W/a/docs/link.py" a >"$W/link.out" 2>&1 || fail "explain link"
grep -q "^source a, path docs/link.py$" "$W/link.out" && grep -q "not inside a unit" "$W/link.out" &&
	! grep -q "unit: git-worktree" "$W/link.out" &&
	pass "an absolute path to a symlink explains the symlink" || { cat "$W/link.out"; fail "symlink followed"; }
# through a symlinked directory above it: resolved (only the last component is kept)
ln -s "$W/a" "$W/alias"
X --name a --explain "$W/alias/docs/note.txt" a >"$W/alias.out" 2>&1 &&
	grep -q "^source a, path docs/note.txt$" "$W/alias.out" &&
	pass "a symlinked directory above it is resolved" || { cat "$W/alias.out"; fail "alias"; }
# source-relative, with ./ and //
X --name b --explain ./docs//note.txt b >"$W/rel.out" 2>&1 &&
	grep -q "^source b, path docs/note.txt$" "$W/rel.out" &&
	pass "a source-relative path (./, //)" || { cat "$W/rel.out"; fail "relative path"; }
rc=0
X --name b --explain "$W/a/docs/note.txt" b >"$W/out.out" 2>&1 || rc=$?
[ $rc -eq 2 ] && grep -q "is not inside" "$W/out.out" && pass "a path outside the source: exit 2" ||
	{ cat "$W/out.out"; fail "outside: exit $rc"; }
rc=0
X --name b --explain ../a/docs/note.txt b >"$W/dd.out" 2>&1 || rc=$?
[ $rc -eq 2 ] && pass "'..' out of the source: exit 2" || { cat "$W/dd.out"; fail "..: exit $rc"; }

# the placement the store holds: the second version of the worktree under its version name
X --name b --explain projects/webapp/app.py b >"$W/unit.out" 2>&1 || fail "explain unit"
grep -q "inside the unit; its place decides: development/projects/webapp/app.py" "$W/unit.out" &&
	grep -Eq "^in the store: development/projects/webapp~[0-9a-f]{8}/app.py " "$W/unit.out" &&
	pass "a unit's version name is shown (webapp~<hash>/)" || { cat "$W/unit.out"; fail "unit placement"; }
X --name a --explain projects/webapp/app.py a >"$W/unit1.out" 2>&1 || fail "explain unit a"
grep -q "^in the store: development/projects/webapp/app.py$" "$W/unit1.out" &&
	pass "the first version keeps the plain name" || { cat "$W/unit1.out"; fail "unit a placement"; }
X --name b --explain docs/note.txt b >"$W/note.out" 2>&1 || fail "explain note"
grep -Eq "^in the store: documents/docs/note~[0-9a-f]{8}.txt " "$W/note.out" &&
	grep -q "other versions beside it: note.txt" "$W/note.out" &&
	pass "a loose file's conflict name and its other versions" || { cat "$W/note.out"; fail "note placement"; }

# copy alignment: drive f holds a copy of drive e under backup/2024/ (10 files: enough
# evidence to align), placed with e's, away from the rules' result; the whole tree is
# searched for it
mkdir -p e/stuff/texts f/backup/2024
for i in $(seq 1 10); do echo "text $i" >e/stuff/texts/t$i.txt; done
cp -a e/stuff f/backup/2024/
dfs_ingest --store "$store" --name e e >/dev/null || fail "ingest e"
dfs_ingest --store "$store" --name f f >/dev/null || fail "ingest f"
X --name f --explain backup/2024/stuff/texts/t1.txt f >"$W/copy.out" 2>&1 || fail "explain copy"
grep -q "^result: documents/backup/2024/stuff/texts/t1.txt" "$W/copy.out" &&
	grep -q "^in the store: documents/stuff/texts/t1.txt " "$W/copy.out" &&
	pass "an aligned copy: the place the store holds, not the rules' result" ||
	{ cat "$W/copy.out"; fail "aligned copy"; }

# only the rules that came close, unless -v
n=$(grep -c "^  rule " "$W/note.out")
[ "$n" -le 5 ] && grep -q "other rules did not come close; -v lists every rule" "$W/note.out" &&
	pass "only the rules that came close ($n lines)" || { cat "$W/note.out"; fail "$n rule lines"; }
X --name b -v --explain docs/note.txt b >"$W/notev.out" 2>&1 || fail "explain -v"
nv=$(grep -c "^  rule " "$W/notev.out")
[ "$nv" -gt 20 ] && grep -q "rule git-worktree *no (unit)" "$W/notev.out" &&
	pass "-v lists every rule ($nv lines)" || { cat "$W/notev.out"; fail "-v: $nv rule lines"; }

# the rules the store keeps are the ones explained
cat >"$W/my.yml" <<'YML'
version: 1
rules:
  - name: my-notes
    category: personal/notes
    match: {ext: txt}
    to: "mine/{source}/{name}"
YML
"$DFS_BIN/defrag-reclassify" --store "$store" --rules "$W/my.yml" >/dev/null || fail "reclassify"
X --name a --explain docs/note.txt a >"$W/kept.out" 2>&1 || fail "explain with kept rules"
grep -q "rule my-notes *MATCH -> mine/a/note.txt" "$W/kept.out" &&
	grep -q "^in the store: mine/a/note.txt$" "$W/kept.out" &&
	pass "the store's kept rules are explained" || { cat "$W/kept.out"; fail "kept rules"; }
# a store that does not have the source: the rules' result only, said
mkdir -p c/docs && echo c >c/docs/x.txt
X --name c --explain docs/x.txt c >"$W/new.out" 2>&1 &&
	grep -q "in the store: no source named 'c' yet" "$W/new.out" &&
	pass "a source not in the store: said" || { cat "$W/new.out"; fail "new source"; }

dfs_finish
