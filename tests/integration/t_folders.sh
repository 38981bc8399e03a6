#!/usr/bin/env bash
# Issue 22: the organized tree keeps folders together and sorts what the seed names.
# A real ingest and a real mount of a generated drive: a package doc folder (compressed
# changelog, copyright, icon, README) stays whole under documents/; a folder of photos
# keeps its one note; real compressed tarballs (gzip, bzip2, xz, zstd) go to
# backups/archive apart from their folder while a gzip'ed man page does not; a SQLite
# database (by its header, made by sqlite3) goes to databases/sqlite; a Maven project's
# target/ and an npm project's dist/ go to artifacts/build-outputs; --explain says
# "placed with its folder"; a user's folder rule (contains: ... at_least) changes the
# threshold; the summary and --json give the figures; an append build and a reclassify
# give the same tree.
set -eu
. "$(dirname "$0")/lib.sh"
DFS_NEEDS="defrag-ingest defrag-reclassify defragfs" dfs_setup

store=$W/store mnt=$W/mnt
mkdir -p "$mnt"
cd "$W"
s=$W/d1
doc=$s/usr/share/doc/cmake-data
mkdir -p "$doc" "$s/home/ann/Photos" "$s/home/ann/Letters" "$s/srv/db/sqlite" \
	"$s/usr/share/man/man1" "$s/home/ann/mvn/src/main/java" "$s/home/ann/mvn/target/classes" \
	"$s/home/ann/web/src" "$s/home/ann/web/dist" "$s/home/ann/Mixed"
seq 1 200 | sed 's/^/  * change /' | gzip -9n >"$doc/changelog.Debian.gz"
echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/" >"$doc/copyright"
printf '\x89PNG\r\n\x1a\n' >"$doc/cmake.png"; head -c 300 /dev/urandom >>"$doc/cmake.png"
echo "CMake data files" >"$doc/README.Debian"
for i in 1 2 3 4 5; do printf '\xff\xd8\xff\xe0photo %s' $i >"$s/home/ann/Photos/img$i.jpg"; done
echo "who is who" >"$s/home/ann/Photos/notes.txt"
echo "dear a" >"$s/home/ann/Letters/a.txt"; echo "dear b" >"$s/home/ann/Letters/b.txt"
echo "dear c" >"$s/home/ann/Letters/c.txt"
tar -C "$s/home/ann/Letters" -czf "$W/letters.tar.gz" a.txt b.txt
mv "$W/letters.tar.gz" "$s/home/ann/Letters/"
tar -C "$s/home/ann/Letters" -cjf "$s/home/ann/Letters/letters.tar.bz2" a.txt
tar -C "$s/home/ann/Letters" -cJf "$s/home/ann/Letters/letters.tar.xz" a.txt
tar -C "$s/home/ann/Letters" --zstd -cf "$s/home/ann/Letters/letters.tar.zst" a.txt
echo ".TH LS 1" | gzip -9n >"$s/usr/share/man/man1/ls.1.gz"
sqlite3 "$s/srv/db/sqlite/app.db" "create table t(a); insert into t values (1);"
echo "<project/>" >"$s/home/ann/mvn/pom.xml"
echo "class App {}" >"$s/home/ann/mvn/src/main/java/App.java"
printf '\xca\xfe\xba\xbe' >"$s/home/ann/mvn/target/classes/App.class"
head -c 500 /dev/urandom >"$s/home/ann/mvn/target/app-1.0.jar"
echo '{"name":"web"}' >"$s/home/ann/web/package.json"
echo "export const x = 1;" >"$s/home/ann/web/src/index.js"
echo "var x=1;" >"$s/home/ann/web/dist/bundle.js"; echo "{}" >"$s/home/ann/web/dist/bundle.js.map"
# a folder of 2 documents and 2 images: no category has 60%, each file goes by its kind
echo a >"$s/home/ann/Mixed/a.txt"; echo b >"$s/home/ann/Mixed/b.txt"
printf '\xff\xd8\xff\xe0x' >"$s/home/ann/Mixed/c.jpg"; printf '\xff\xd8\xff\xe0y' >"$s/home/ann/Mixed/d.jpg"

"$DFS_BIN/defrag-ingest" --store "$store" --name d1 --progress=never --json "$s" >"$W/j1" \
	2>>"$W/ingest.log" || fail "ingest d1"
dfs_mount "$store" "$mnt" || exit 1
at() {	# at PATH [RULE]: PATH is in the organized tree (placed by RULE)
	[ -f "$mnt/$1" ] || { echo "missing: $1"; return 1; }
	[ -z "${2:-}" ] || [ "$(getfattr --absolute-names -n user.defrag.rule --only-values \
		"$mnt/$1")" = "$2" ] || { echo "$1: rule $(getfattr --absolute-names -n \
		user.defrag.rule --only-values "$mnt/$1"), want $2"; return 1; }
}
D=documents/usr/share/doc/cmake-data
at $D/changelog.Debian.gz && at $D/copyright && at $D/README.Debian && at $D/cmake.png folder &&
	[ "$(getfattr --absolute-names -n user.defrag.category --only-values "$mnt/$D/cmake.png")" = documents ] &&
	pass "a package's doc folder stays whole under documents/ (its icon placed by 'folder')" ||
	fail "the doc folder is split"
P=media/images/home/ann/Photos
at $P/img1.jpg images && at $P/notes.txt folder && pass "a folder of photos keeps its one note" ||
	fail "the photos' note left them"
L=home/ann/Letters
at backups/archive/$L/letters.tar.gz compressed-tarballs &&
	at backups/archive/$L/letters.tar.bz2 compressed-tarballs &&
	at backups/archive/$L/letters.tar.xz compressed-tarballs &&
	at backups/archive/$L/letters.tar.zst compressed-tarballs && at documents/$L/a.txt &&
	pass "real .tar.gz/.bz2/.xz/.zst are backup archives (by content), apart from their folder" ||
	fail "compressed tarballs"
at documents/usr/share/man/man1/ls.1.gz && [ ! -e "$mnt/backups/archive/usr/share/man/man1/ls.1.gz" ] &&
	pass "a gzip'ed man page is not a backup archive" || fail "man page"
at databases/sqlite/srv/db/sqlite/app.db sqlite && pass "app.db (SQLite header) goes to databases/sqlite" ||
	fail "sqlite"
at artifacts/build-outputs/home/ann/mvn/target/classes/App.class build-output-target &&
	at artifacts/build-outputs/home/ann/mvn/target/app-1.0.jar &&
	at development/sources/home/ann/mvn/src/main/java/App.java &&
	at artifacts/build-outputs/home/ann/web/dist/bundle.js build-output-dist &&
	at artifacts/build-outputs/home/ann/web/dist/bundle.js.map &&
	pass "a Maven project's target/ and an npm project's dist/ follow the seed (artifacts/build-outputs)" ||
	fail "build outputs"
at documents/home/ann/Mixed/a.txt documents && at media/images/home/ann/Mixed/c.jpg images &&
	pass "a folder with no main kind (50/50) places each file by its own kind" || fail "mixed folder"
dfs_umount "$mnt"

# --explain says why
"$DFS_BIN/defrag-ingest" --store "$store" --name d1 --explain usr/share/doc/cmake-data/cmake.png \
	"$s" >"$W/ex" 2>&1 || fail "explain"
grep -q "placed with its folder: 3 of 4 files are documents (rule folder)" "$W/ex" &&
	grep -q "^result: $D/cmake.png (category documents, rule folder)" "$W/ex" &&
	grep -q "^in the store: $D/cmake.png" "$W/ex" &&
	pass "--explain: placed with its folder: 3 of 4 files are documents" || { cat "$W/ex"; fail "explain"; }
"$DFS_BIN/defrag-ingest" --store "$store" --name d1 --explain $L/letters.tar.gz "$s" >"$W/ex2" 2>&1 ||
	fail "explain tar"
grep -q "rule compressed-tarballs places this file apart from it (alone)" "$W/ex2" &&
	pass "--explain: an archive leaves its folder (alone)" || { cat "$W/ex2"; fail "explain alone"; }
"$DFS_BIN/defrag-ingest" --store "$store" --name d1 --explain home/ann/Mixed/c.jpg "$s" >"$W/ex3" 2>&1 ||
	fail "explain mixed"
grep -q "folder rule folder .*no (most are documents: 2 of 4 files, needs 60%)" "$W/ex3" &&
	pass "--explain: a folder below the threshold says so" || { cat "$W/ex3"; fail "explain mixed"; }

# the figures, in --json and in the summary
python3 - "$W/j1" <<'PY' && pass "--json: organize_figures (split directories, unsorted files)" || fail "figures json"
import json, sys
j = json.load(open(sys.argv[1]))
f = j["organize_figures"]
assert f["dirs"] >= 10 and f["files"] >= 25, f
assert f["dirs_split"] == 2, f  # Mixed (50/50) and Letters (its archives leave it)
assert f["files_unsorted"] == 0, f
PY

# a second drive: an append build; then a reclassify must give the same tree
s2=$W/d2
mkdir -p "$s2/notes"
echo n1 >"$s2/notes/n1.txt"; echo n2 >"$s2/notes/n2.txt"; echo blob >"$s2/notes/data"
"$DFS_BIN/defrag-ingest" --store "$store" --name d2 --progress=never --json "$s2" >"$W/j2" \
	2>>"$W/ingest.log" || fail "ingest d2"
grep -q '"organize_append": true' "$W/j2" && pass "the second drive is an append build" ||
	fail "not an append build"
"$DFS_BIN/defrag-ingest" --store "$store" --name d2 --progress=never "$s2" >"$W/sum2" 2>&1 || true
dfs_mount "$store" "$mnt" || exit 1
(cd "$mnt" && find . -path ./.sources -prune -o -print | LC_ALL=C sort) >"$W/tree.append"
at documents/notes/data folder && pass "the appended drive's folder is whole too" || fail "append folder"
dfs_umount "$mnt"
"$DFS_BIN/defrag-reclassify" --store "$store" >"$W/re" 2>&1 || fail "reclassify"
grep -Eq "^  folders: [0-9]+ of [0-9]+ source directories with files are split across categories \([0-9.]+%\); 0 of [0-9]+ files are in unsorted/ \(0.0%\)" "$W/re" &&
	pass "the reclassify summary says the figures" || { cat "$W/re"; fail "summary figures"; }
dfs_mount "$store" "$mnt" || exit 1
(cd "$mnt" && find . -path ./.sources -prune -o -print | LC_ALL=C sort) >"$W/tree.full"
dfs_umount "$mnt"
diff -u "$W/tree.append" "$W/tree.full" >"$W/tree.diff" &&
	pass "the append build and a full rebuild give the same tree" || { cat "$W/tree.diff"; fail "append != full"; }

# a user's folder rule: documents from 40% on (the 2-of-5 folder becomes documents)
mkdir -p "$s/home/ann/Low"
echo a >"$s/home/ann/Low/a.txt"; echo b >"$s/home/ann/Low/b.txt"
for i in 1 2 3; do printf '\xff\xd8\xff\xe0%s' $i >"$s/home/ann/Low/p$i.jpg"; done
cat >"$W/rules.yml" <<'YML'
version: 1
rules:
  - name: papers
    match:
      path: "home/*/Low"
      contains: {category: documents, at_least: 40%}
YML
"$DFS_BIN/defrag-ingest" --store "$store" --name d1 --progress=never --rules "$W/rules.yml" "$s" \
	>/dev/null 2>>"$W/ingest.log" || fail "ingest with a folder rule"
dfs_mount "$store" "$mnt" || exit 1
at documents/home/ann/Low/p1.jpg papers && at $P/img1.jpg &&
	pass "a user's folder rule (contains documents at_least 40%) places the folder whole" ||
	fail "user folder rule"
dfs_umount "$mnt"
dfs_finish
