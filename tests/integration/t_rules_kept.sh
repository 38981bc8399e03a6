#!/usr/bin/env bash
# Issue 23, item 3: the store remembers its rules. defrag-reclassify --rules FILE keeps a
# copy of FILE in the store (a META record): a plain defrag-ingest afterwards keeps the
# custom categories (before, it rebuilt the tree with the built-in rules, silently), and
# says which rules are in force; --rules builtin returns to the built-in set and says so;
# defrag-ingest --rules FILE keeps its file the same way; the copy survives
# defrag-recover (rebuilt from the packs alone); the file may change or vanish after it
# was given; a dry run keeps nothing; a broken file is refused and changes nothing.
set -eu
. "$(dirname "$0")/lib.sh"
DFS_NEEDS="defrag-ingest defragfs defrag-reclassify defrag-recover" dfs_setup

store=$W/store
src=$W/home
mnt=$W/mnt
mkdir -p "$mnt" "$src/notes" "$src/pics"
echo "a note" >"$src/notes/todo.txt"
head -c 5000 /dev/urandom >"$src/pics/cat.jpg"
cat >"$W/my.yml" <<'YML'
version: 1
rules:
  - name: my-notes
    category: personal/notes
    match: {ext: txt}
    to: "mine/notes/{name}"
YML
cat >"$W/other.yml" <<'YML'
version: 1
rules:
  - name: other-notes
    category: personal/other
    match: {ext: txt}
    to: "other/{name}"
YML

placed() {	# placed PATH: the organized tree of $store has PATH
	local rc=0
	dfs_mount "$store" "$mnt" || return 1
	[ -e "$mnt/$1" ] || rc=1
	[ $rc -eq 0 ] || find "$mnt" -path "$mnt/.sources" -prune -o -print | head -n 20
	dfs_umount "$mnt"
	return $rc
}

dfs_ingest --store "$store" --name home "$src" >/dev/null || fail "ingest"

# reclassify with custom rules: kept, and said
"$DFS_BIN/defrag-reclassify" --store "$store" --rules "$W/my.yml" >"$W/rc1.out" 2>&1 ||
	{ cat "$W/rc1.out"; fail "reclassify --rules"; }
grep -q "rules: changed to $W/my.yml, kept in the store" "$W/rc1.out" &&
	pass "reclassify says the rules changed and are kept" || { cat "$W/rc1.out"; fail "no rules line"; }
placed "mine/notes/todo.txt" && pass "the custom rules placed the file" || fail "custom rules not applied"

# the rules file changes and then vanishes: the kept copy is what counts
cp "$W/my.yml" "$W/my.yml.orig"
rm "$W/my.yml"
dfs_ingest --store "$store" --name home "$src" >"$W/in1.out" ||
	{ cat "$W/in1.out"; fail "plain ingest"; }
grep -q "rules: $W/my.yml (kept in the store)" "$W/in1.out" &&
	pass "a plain ingest says the kept rules are in force" || { cat "$W/in1.out"; fail "no rules line"; }
echo "another" >"$src/notes/more.txt"	# a change: the tree is rebuilt
dfs_ingest --store "$store" --name home --json "$src" >"$W/in2.json" || fail "plain ingest 2"
python3 - "$W/in2.json" <<'PY' && pass "--json: the rules in force, unchanged" || { cat "$W/in2.json"; fail "--json rules"; }
import json, sys
j = json.load(open(sys.argv[1]))
assert j["rules"]["changed"] is False and "kept in the store" in j["rules"]["in_force"], j["rules"]
assert j["organize_skipped"] is False
PY
placed "mine/notes/more.txt" && placed "mine/notes/todo.txt" &&
	pass "a plain ingest afterwards keeps the custom categories" ||
	fail "a plain ingest dropped the custom rules"

# recover: the kept rules come back from the packs
"$DFS_BIN/defrag-recover" --store "$store" >"$W/rec.out" 2>&1 || { cat "$W/rec.out"; fail "recover"; }
echo "third" >"$src/notes/third.txt"
dfs_ingest --store "$store" --name home "$src" >"$W/in3.out" || fail "ingest after recover"
grep -q "rules: $W/my.yml (kept in the store)" "$W/in3.out" && placed "mine/notes/third.txt" &&
	pass "after defrag-recover the kept rules still place new files" ||
	{ cat "$W/in3.out"; fail "recover lost the rules"; }

# a broken file is refused (exit 2) and the kept rules stay
printf 'version: 1\nrules:\n  - name: x\n    to: "a/{nosuchvar}"\n' >"$W/bad.yml"
rc=0
"$DFS_BIN/defrag-reclassify" --store "$store" --rules "$W/bad.yml" >"$W/bad.out" 2>&1 || rc=$?
[ $rc -eq 2 ] && grep -q "bad.yml:" "$W/bad.out" && pass "a broken rules file: exit 2" ||
	{ cat "$W/bad.out"; fail "broken rules: exit $rc"; }
# a dry run keeps nothing
"$DFS_BIN/defrag-reclassify" --store "$store" --rules "$W/other.yml" --dry-run >"$W/dry.out" 2>&1 ||
	{ cat "$W/dry.out"; fail "reclassify --dry-run"; }
"$DFS_BIN/defrag-reclassify" --store "$store" >"$W/rc2.out" 2>&1 || fail "plain reclassify"
grep -q "rules: $W/my.yml (kept in the store)" "$W/rc2.out" && placed "mine/notes/todo.txt" &&
	pass "a broken file and a dry run leave the kept rules" || { cat "$W/rc2.out"; fail "kept rules lost"; }

# --rules builtin: back to the built-in set, said
dfs_ingest --store "$store" --name home --rules builtin "$src" >"$W/bi.out" || fail "ingest --rules builtin"
grep -q "rules: changed to the built-in rules (the store no longer keeps $W/my.yml)" "$W/bi.out" &&
	pass "--rules builtin is said" || { cat "$W/bi.out"; fail "no builtin line"; }
placed "documents/notes/todo.txt" && pass "--rules builtin returns to the built-in set" ||
	fail "the built-in rules do not place todo.txt"
dfs_ingest --store "$store" --name home "$src" >"$W/in4.out" || fail "plain ingest 4"
! grep -q "^rules:" "$W/in4.out" && pass "then a plain ingest keeps the built-in set" ||
	{ cat "$W/in4.out"; fail "rules line after builtin"; }

# defrag-ingest --rules FILE keeps its file too
cp "$W/my.yml.orig" "$W/other-name.yml"
dfs_ingest --store "$store" --name home --rules "$W/other.yml" "$src" >"$W/in5.out" ||
	fail "ingest --rules"
grep -q "rules: changed to $W/other.yml, kept in the store for later runs (before: the built-in rules)" \
	"$W/in5.out" && pass "ingest --rules says the change" || { cat "$W/in5.out"; fail "no change line"; }
"$DFS_BIN/defrag-reclassify" --store "$store" >"$W/rc3.out" 2>&1 || fail "reclassify"
placed "other/todo.txt" && pass "a later reclassify uses the rules ingest kept" ||
	fail "reclassify forgot the ingest's rules"

dfs_finish
