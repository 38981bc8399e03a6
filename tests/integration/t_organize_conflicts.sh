#!/usr/bin/env bash
# Namespace dedup and conflicts across drives: the same unit on two drives is one entry
# with both origins; two versions of a unit at the same place are never merged file by
# file (the second is NAME~hash8), even when they differ only in a symlink target;
# different files at one path are name~hash8.ext; when that name is taken too,
# name~hash16.ext, then name~hash16~orig8.ext; nothing is ever left out of the tree.
set -eu
. "$(dirname "$0")/lib.sh"
dfs_setup

d=$W/drives
mnt=$W/mnt
mkdir -p "$mnt"
mkrepo() {	# mkrepo DIR TEXT: a git working tree with one commit
	mkdir -p "$1/src"
	printf '%s\n' "$2" >"$1/src/main.c"
	printf 'link target\n' >"$1/README"
	ln -s README "$1/LINK"
	git -C "$1" init -q
	git -C "$1" -c user.name=t -c user.email=t@t add -A
	GIT_AUTHOR_DATE=2020-01-01T00:00:00Z GIT_COMMITTER_DATE=2020-01-01T00:00:00Z \
		git -C "$1" -c user.name=t -c user.email=t@t commit -qm init
}
for s in s1 s2 s3 s4; do mkdir -p "$d/$s/docs"; done
# each drive's only unit sits at the same place: s2's is another version, s3's the same
mkrepo "$d/s1/home/ann/app" "int main(void) { return 1; }"
mkrepo "$d/s2/home/ann/app" "int main(void) { return 2; }"
mkdir -p "$d/s3/home/ann" && cp -a "$d/s1/home/ann/app" "$d/s3/home/ann/app"
mkdir -p "$d/s4/home/ann" && cp -a "$d/s1/home/ann/app" "$d/s4/home/ann/app"
ln -sfn src "$d/s4/home/ann/app/LINK"		# differs from s1's in a symlink target only
echo one >"$d/s1/docs/x.txt"
echo two >"$d/s2/docs/x.txt"
for s in s1 s2 s3 s4; do
	dfs_ingest --store "$W/st" --name $s "$d/$s" >/dev/null || fail "ingest $s"
done

dfs_mount "$W/st" "$mnt"
p=$mnt/development/projects
[ -d "$p/app" ] && [ "$(ls -d "$p"/app~???????? | wc -l)" = 2 ] &&
	pass "three versions of a unit: app and two app~hash8" || { ls "$p"; fail "unit versions"; }
for u in "$p"/app~*; do [ "$(readlink "$u/LINK")" = src ] && sl=$u; done
[ -n "${sl:-}" ] && pass "a unit differing only in a symlink target is its own version" ||
	fail "symlink-only difference merged away"
[ -z "$(find "$p/app" -name '*~*')" ] && pass "versions are not merged file by file" ||
	{ find "$p/app" -name '*~*'; fail "a unit was merged file by file"; }
grep -q "return 1" "$p/app/src/main.c" && grep -q "return 2" "$p"/app~*/src/main.c &&
	pass "each version keeps its own bytes" || fail "unit versions mixed"
o=$(getfattr --only-values -n user.defrag.origins "$p/app/src/main.c" 2>/dev/null | wc -l)
[ "$o" = 2 ] && pass "an identical unit on two drives is one entry, 2 origins" ||
	fail "identical unit: $o origins"
[ "$(readlink "$p/app/LINK")" = README ] && pass "symlinks inside units" || fail "unit symlink"
conf=$(cd "$mnt/documents/docs" && ls x~????????.txt)
[ -f "$mnt/documents/docs/x.txt" ] && [ -n "$conf" ] &&
	pass "a file conflict: x.txt and $conf" || fail "loose conflict"
dfs_umount "$mnt"

# s1 now also holds files named like s2's conflict names, with other bytes: s2's x.txt
# must still be in the tree, under the next name of the sequence
echo three >"$d/s1/docs/$conf"
dfs_ingest --store "$W/st" --name s1 "$d/s1" >/dev/null || fail "re-ingest s1"
dfs_mount "$W/st" "$mnt"
ls "$mnt/documents/docs" >"$W/ls"
c16=$(grep -x 'x~[0-9a-f]\{16\}\.txt' "$W/ls" || true)
[ -n "$c16" ] && pass "a taken conflict name: then $c16" || { cat "$W/ls"; fail "x~hash16.txt"; }
dfs_umount "$mnt"
echo four >"$d/s1/docs/$c16"
dfs_ingest --store "$W/st" --name s1 "$d/s1" >/dev/null || fail "re-ingest s1 (2)"
dfs_mount "$W/st" "$mnt"
ls "$mnt/documents/docs" >"$W/ls"
grep -qx "${c16%.txt}~[0-9a-f]\{8\}\.txt" "$W/ls" && pass "then name~hash16~orig8.txt" ||
	{ cat "$W/ls"; fail "x~hash16~orig8.txt"; }
for s in s1 s2 s3 s4; do
	dfs_all_reachable "$d/$s" "$mnt" && pass "every content of $s is in the tree" ||
		fail "content of $s missing from the tree"
done
dfs_umount "$mnt"

# Origins across rebuilds: an entry a rebuild finds unchanged is not written again, and
# its origins are what this build confirms, in order; one gone is dropped (in the middle
# of the list, and at its end).
origins_now() {	# the origins of documents/shared/a.txt, on one line
	dfs_mount "$W/st" "$mnt"
	getfattr --only-values -n user.defrag.origins "$mnt/documents/shared/a.txt" 2>/dev/null |
		tr '\n' ' '
	getfattr --only-values -n user.defrag.origins_count "$mnt/documents/shared/a.txt" \
		2>/dev/null
	dfs_umount "$mnt"
}
for s in s1 s3 s4; do mkdir -p "$d/$s/shared" && echo shared >"$d/$s/shared/a.txt"; done
for s in s1 s3 s4; do
	dfs_ingest --store "$W/st" --name $s "$d/$s" >/dev/null || fail "ingest $s (shared)"
done
o=$(origins_now)
[ "$o" = "s1:/shared/a.txt s3:/shared/a.txt s4:/shared/a.txt 3" ] &&
	pass "three origins, in source order" || fail "origins: '$o'"
rm "$d/s3/shared/a.txt"
dfs_ingest --store "$W/st" --name s3 "$d/s3" >/dev/null || fail "re-ingest s3 (shared)"
o=$(origins_now)
[ "$o" = "s1:/shared/a.txt s4:/shared/a.txt 2" ] &&
	pass "an origin gone from the middle is dropped" || fail "origins after s3: '$o'"
rm "$d/s4/shared/a.txt"
dfs_ingest --store "$W/st" --name s4 "$d/s4" >/dev/null || fail "re-ingest s4 (shared)"
o=$(origins_now)
[ "$o" = "s1:/shared/a.txt 1" ] && pass "an origin gone from the end is dropped" ||
	fail "origins after s4: '$o'"
dfs_finish
