#!/usr/bin/env bash
# Relative symlinks in the organized tree (issue 23 item 9; CLASSIFY.md, "Symlinks"):
# a relative symlink keeps its target; where the rules placed the target elsewhere it no
# longer leads to it in the organized tree. The build counts them (resolved in the tree
# and on the drive once every entry is placed), and the counts must be what the kernel
# finds through the mount: every relative link of the organized tree is followed with
# test -e, and so is its origin under /.sources.
set -eu
. "$(dirname "$0")/lib.sh"
DFS_NEEDS="defrag-ingest defragfs defrag-reclassify" dfs_setup

src=$W/src store=$W/store mnt=$W/mnt
mkdir -p "$mnt" "$src/docs" "$src/proj/sub" "$src/bin"
echo readme >"$src/docs/readme.txt"
ln -s readme.txt "$src/docs/same-dir.txt"			# same folder: leads there
ln -s ./readme.txt "$src/docs/dot.txt"
echo 'int main(void) { return 0; }' >"$src/proj/main.c"
ln -s ../proj/main.c "$src/docs/code-link"			# main.c goes to development/
ln -s ../../docs/readme.txt "$src/proj/sub/up-two"
ln -s ../nothing/here "$src/docs/broken"			# dangling on the drive
printf '#!/bin/sh\necho hi\n' >"$src/bin/tool"
ln -s tool "$src/bin/tool-link"
ln -s /etc/passwd "$src/docs/absolute"			# absolute: not counted

dfs_ingest --store "$store" --name drv --json "$src" >"$W/ingest.json" ||
	{ cat "$W/ingest.json"; fail "ingest"; }
count() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['organize_symlinks'][sys.argv[2]])" "$W/ingest.json" "$1"; }
rel=$(count relative) elsewhere=$(count elsewhere) dangling=$(count dangling_on_drive)
[ "$rel" = 6 ] && pass "6 relative symlinks counted (the absolute one is not)" ||
	fail "relative: $rel"
[ "$dangling" = 1 ] && pass "one already dangling on the drive" || fail "dangling: $dangling"

dfs_mount "$store" "$mnt" || { dfs_finish; exit 1; }
# what the kernel finds: each relative link of the organized tree, and its origin
k_else=0 k_dang=0 k_rel=0
while IFS= read -r l; do
	t=$(readlink "$l")
	case "$t" in /*) continue ;; esac
	k_rel=$((k_rel + 1))
	# a symlink has no user.* xattrs: its origin by its name (unique in this drive)
	s="$mnt/.sources/drv/$(cd "$src" && find . -name "$(basename "$l")" | head -1)"
	if [ -e "$s" ]; then
		[ -e "$l" ] || k_else=$((k_else + 1))
	else
		k_dang=$((k_dang + 1))
	fi
done < <(find "$mnt" -path "$mnt/.sources" -prune -o -type l -print)
[ "$k_rel" = "$rel" ] && [ "$k_else" = "$elsewhere" ] && [ "$k_dang" = "$dangling" ] &&
	pass "the counts are what the mount shows: $elsewhere of $rel lead elsewhere, $dangling dangle on the drive" ||
	fail "build: $rel/$elsewhere/$dangling, mount: $k_rel/$k_else/$k_dang"
[ "$elsewhere" -ge 1 ] && pass "a link whose target went to another category is counted" ||
	fail "no link counted as leading elsewhere"
dfs_umount "$mnt"

"$DFS_BIN/defrag-reclassify" --store "$store" >"$W/reclassify.out" 2>&1 ||
	{ cat "$W/reclassify.out"; fail "reclassify"; }
grep -q "symlinks: $rel relative, $elsewhere no longer lead to their target" "$W/reclassify.out" &&
	pass "reclassify says the same" || { cat "$W/reclassify.out"; fail "reclassify's line"; }
dfs_finish
