#!/usr/bin/env bash
# Issue 23, item 11: the rules checker. An unknown unit kind (`unit: sqlite`) and a
# malformed category are errors (exit 2, FILE:LINE:COL, nothing ingested or changed);
# an `ext` with a leading dot (".db" never matches), a rule name used twice and an empty
# file are warnings (the run goes on), from defrag-ingest and defrag-reclassify alike.
# Issue 22: a folder rule (contains: {category, at_least}) is accepted; a percentage out
# of range, a missing category and a file condition beside contains are errors.
set -eu
. "$(dirname "$0")/lib.sh"
DFS_NEEDS="defrag-ingest defrag-reclassify" dfs_setup

store=$W/store
src=$W/src
mkdir -p "$src"
echo x >"$src/a.db"
dfs_ingest --store "$store" --name s "$src" >/dev/null || fail "ingest"

check() {	# check NAME WANT_EXIT PATTERN: ingest and reclassify with $W/NAME.yml
	local rc
	for tool in ingest reclassify; do
		rc=0
		if [ $tool = ingest ]; then
			"$DFS_BIN/defrag-ingest" --progress=never --store "$store" --name s \
				--rules "$W/$1.yml" "$src" >"$W/$1.$tool" 2>&1 || rc=$?
		else
			"$DFS_BIN/defrag-reclassify" --store "$store" --rules "$W/$1.yml" \
				--dry-run >"$W/$1.$tool" 2>&1 || rc=$?
		fi
		if [ $rc -eq "$2" ] && grep -q -- "$3" "$W/$1.$tool"; then
			pass "$1: defrag-$tool exits $rc and says '$3'"
		else
			cat "$W/$1.$tool"
			fail "$1: defrag-$tool exit $rc (want $2), '$3'"
		fi
	done
}

printf 'version: 1\nrules:\n  - name: dbs\n    match: {unit: sqlite}\n    to: "db/{name}"\n' \
	>"$W/unit.yml"
check unit 2 "unit.yml:4:19: unknown unit kind 'sqlite'"
printf 'version: 1\nrules:\n  - name: repos\n    match: {unit: git-worktree}\n    to: "r/{name}"\n' \
	>"$W/unitok.yml"
check unitok 0 ""
printf 'version: 1\nrules:\n  - name: dbs\n    category: "data//db"\n    to: "db/{name}"\n' \
	>"$W/cat.yml"
check cat 2 "cat.yml:4:15: category 'data//db' must be names"
printf 'version: 1\nrules:\n  - name: dbs\n    category: "../db"\n    to: "db/{name}"\n' \
	>"$W/cat2.yml"
check cat2 2 "category '../db' must be names"
printf 'version: 1\nrules:\n  - name: dbs\n    category: my/own/databases\n    match: {ext: db}\n    to: "db/{name}"\n' \
	>"$W/catok.yml"
check catok 0 ""
printf 'version: 1\nrules:\n  - name: dbs\n    match: {ext: [.db, sqlite]}\n    to: "db/{name}"\n' \
	>"$W/dot.yml"
check dot 0 "dot.yml:4:13: warning: ext '.db' starts with a dot and never matches"
printf 'version: 1\nrules:\n  - name: dbs\n    match: {ext: db}\n    to: "a/{name}"\n  - name: dbs\n    match: {ext: txt}\n    to: "b/{name}"\n' \
	>"$W/dup.yml"
check dup 0 "dup.yml:6:5: warning: rule name 'dbs' is already used at line 3"
: >"$W/empty.yml"
check empty 0 "empty.yml: warning: an empty rules file"
printf 'version: 1\nrules: []\n' >"$W/none.yml"
check none 0 "none.yml: warning: no rules in this file"
# issue 22: folder rules (contains: {category, at_least, except})
printf 'version: 1\nrules:\n  - name: papers\n    match: {contains: {category: documents, at_least: 60%%}}\n' \
	>"$W/folderok.yml"
check folderok 0 "1 entries"
printf 'version: 1\nrules:\n  - name: papers\n    match: {contains: {category: documents, at_least: 160%%}}\n' \
	>"$W/pct.yml"
check pct 2 "pct.yml:4:55: at_least must be a percentage from 1% to 100%"
printf 'version: 1\nrules:\n  - name: papers\n    match: {contains: {at_least: 60%%}}\n' \
	>"$W/nocat.yml"
check nocat 2 "nocat.yml:4:23: 'contains' needs 'category'"
printf 'version: 1\nrules:\n  - name: papers\n    match: {ext: txt, contains: {category: d, at_least: 6}}\n' \
	>"$W/folderext.yml"
check folderext 2 "folderext.yml:3:5: a folder rule ('contains') matches a directory"
grep -q "warning" "$W/catok.ingest" "$W/unitok.ingest" "$W/folderok.ingest" &&
	fail "warnings for a good file" ||
	pass "a good file gives no warning"

dfs_finish
