#!/usr/bin/env bash
# Access through the organized tree (FS.md, "Access through the organized tree"): mounted
# with allow_other,default_permissions, every organized entry is readable by a non-root
# user exactly when one of its origins is readable under /.sources, its name is listed
# only to users who can reach an origin, and user.defrag.origins names only origins the
# reader can reach. The kernel shares its entry, attribute and readdir caches between
# users: each user runs after the owner has read everything.
set -eu
. "$(dirname "$0")/lib.sh"
dfs_setup
command -v setpriv >/dev/null && command -v setfacl >/dev/null ||
	{ echo "skip: needs setpriv and setfacl"; exit 77; }

chmod 755 "$W"
src=$W/src
pub=$W/pub
store=$W/store
mnt=$W/mnt
mkdir -p "$mnt" "$src"
(
	cd "$src"
	mkdir -p home/alice/docs home/alice/pics home/alice/proj home/bob/sub team acld \
		open sticky grp
	echo secret >home/alice/docs/secret.txt
	echo "alice's own" >home/alice/docs/mine.txt
	echo "password=hunter2" >home/alice/docs/ver.txt
	printf '\xff\xd8\xff\xe0JFIF-alice' >home/alice/pics/cat.jpg
	git -C home/alice/proj init -q 2>/dev/null || mkdir -p home/alice/proj/.git
	echo 'int main(void) { return 0; }' >home/alice/proj/main.c
	echo notes >home/bob/notes.txt
	echo deeper >home/bob/sub/deep.txt
	echo plan >team/plan.txt
	printf '\xff\xd8\xff\xe0JFIF-team' >team/t.jpg
	echo report >acld/report.txt
	echo readme >open/readme.txt
	echo private >open/private.txt
	printf '\xff\xd8\xff\xe0JFIF-open' >open/b.jpg
	echo by-name >sticky/x.txt
	echo group >grp/g.txt
	chown -R 1001:1001 home/alice && chmod 700 home/alice
	chown -R 1002:1002 home/bob && chmod 750 home/bob && chgrp 2001 home/bob
	chgrp -R 2002 team && chmod 770 team
	chmod 700 acld && setfacl -m u:1003:rx acld
	chown 1001 open/private.txt && chmod 600 open/private.txt
	chmod 711 sticky
	# group may search, but a named-group entry of the ACL keeps group 2002 out
	chmod 750 grp && chgrp 2001 grp && setfacl -m g:2002:r grp
)
# a second drive with a copy of alice's document at the same place, readable by all
mkdir -p "$pub/home/alice/docs"
cp "$src/home/alice/docs/secret.txt" "$pub/home/alice/docs/secret.txt"
echo "public version" >"$pub/home/alice/docs/ver.txt"	# another version, readable by all
chmod -R a+rX "$pub"
dfs_ingest --store "$store" --name drv "$src" >/dev/null || fail "ingest drv"
dfs_ingest --store "$store" --name pub "$pub" >/dev/null || fail "ingest pub"
dfs_mount "$store" "$mnt" "allow_other,default_permissions" || { dfs_finish; exit 1; }

# uid:gid:supplementary groups
users="1001:1001: 1002:1002:2001 1003:1003:2002 1004:1004:2001,2002 65534:65534:"
as() {
	local u g sg
	IFS=: read -r u g sg <<<"$1"
	shift
	if [ -n "$sg" ]; then
		setpriv --reuid="$u" --regid="$g" --groups="$sg" -- "$@"
	else
		setpriv --reuid="$u" --regid="$g" --clear-groups -- "$@"
	fi
}

# every organized entry and its origins, as root
find "$mnt" -path "$mnt/.sources" -prune -o -mindepth 1 -print | sort >"$W/all"
: >"$W/pairs"
while IFS= read -r o; do
	getfattr --absolute-names -n user.defrag.origins --only-values "$o" 2>/dev/null |
		while IFS= read -r org; do
			printf '%s\t%s\n' "$o" "$mnt/.sources/${org%%:*}${org#*:}"
		done >>"$W/pairs"
done <"$W/all"
[ "$(wc -l <"$W/pairs")" -ge 15 ] && pass "$(wc -l <"$W/pairs") organized entries with origins" ||
	{ cat "$W/pairs"; fail "too few organized entries with origins"; }
grep -q "\.sources/pub/home/alice/docs/secret.txt" "$W/pairs" &&
	grep -q "\.sources/drv/home/alice/docs/secret.txt" "$W/pairs" &&
	pass "the copy on pub is a second origin" || fail "no merged origin for secret.txt"

bad=0 checks=0
for u in $users; do
	# root first: the owner's reads fill the kernel's caches for the others
	cat $(cut -f1 "$W/pairs" | sort -u | while read -r o; do [ -f "$o" ] && echo "$o"; done) \
		>/dev/null 2>&1 || true
	as "$u" find "$mnt" -path "$mnt/.sources" -prune -o -mindepth 1 -print 2>/dev/null |
		sort >"$W/seen" || true
	cut -f1 "$W/pairs" | sort -u | while IFS= read -r o; do
		reach=0 read=0 oread=0 seen=0
		while IFS=$'\t' read -r oo s; do
			[ "$oo" = "$o" ] || continue
			as "$u" test -e "$s" 2>/dev/null && reach=1
			if [ -f "$s" ]; then
				as "$u" cat "$s" >/dev/null 2>&1 && read=1
			elif [ -d "$s" ]; then
				as "$u" ls "$s" >/dev/null 2>&1 && read=1
			fi
		done <"$W/pairs"
		if [ -f "$o" ]; then
			as "$u" cat "$o" >/dev/null 2>&1 && oread=1
		else
			as "$u" ls "$o" >/dev/null 2>&1 && oread=1
		fi
		grep -qxF "$o" "$W/seen" && seen=1
		if [ $read != $oread ]; then
			echo "FAIL - uid ${u%%:*}: $o readable $oread in the organized tree, $read under /.sources"
			echo x >>"$W/bad"
		fi
		if [ $seen = 1 ] && [ $reach = 0 ]; then
			echo "FAIL - uid ${u%%:*}: $o listed, but no origin is reachable"
			echo x >>"$W/bad"
		fi
		if [ $reach = 1 ] && [ $seen = 0 ] && [ -f "$o" ]; then
			echo "FAIL - uid ${u%%:*}: $o reachable through an origin, but not listed"
			echo x >>"$W/bad"
		fi
		# the origins it is told must be ones it can reach
		if [ $oread = 1 ] || [ $seen = 1 ]; then
			as "$u" getfattr --absolute-names -n user.defrag.origins --only-values "$o" \
				2>/dev/null | while IFS= read -r org; do
				s="$mnt/.sources/${org%%:*}${org#*:}"
				as "$u" test -e "$s" || {
					echo "FAIL - uid ${u%%:*}: $o names $org, which it cannot reach"
					echo x >>"$W/bad"
				}
			done
		fi
		echo x >>"$W/checks"
	done
done
n=$(wc -l <"$W/checks")
if [ ! -s "$W/bad" ]; then
	pass "$n (user, entry) pairs: organized access is exactly the origins' access"
else
	fail "$(wc -l <"$W/bad") differences over $n (user, entry) pairs"
fi

# Directories, the organizer's made-up ones too: a user sees one (lookup, listing) only
# when it leads to an entry the user reaches through an origin, and always then (unless
# the kernel keeps the user out of the directory above it).
find "$mnt" -path "$mnt/.sources" -prune -o -mindepth 1 -type d -print | sort >"$W/dirs"
: >"$W/dbad"
ndirs=0
for u in $users; do
	while IFS=$'\t' read -r o s; do
		as "$u" test -e "$s" 2>/dev/null && printf '%s\n' "$o"
	done <"$W/pairs" | sort -u >"$W/reached"
	while IFS= read -r d; do
		exp=0 seen=0 listed=0
		awk -v d="$d" 'BEGIN { n = length(d) } $0 == d || substr($0, 1, n + 1) == d "/" { f = 1 }
			END { exit !f }' "$W/reached" && exp=1
		as "$u" stat "$d" >/dev/null 2>&1 && seen=1
		as "$u" ls -a "$(dirname "$d")" 2>/dev/null | grep -qxF "$(basename "$d")" && listed=1
		if [ $exp = 0 ] && { [ $seen = 1 ] || [ $listed = 1 ]; }; then
			echo "FAIL - uid ${u%%:*}: directory $d shown (stat $seen, listed $listed), nothing below reachable"
			echo x >>"$W/dbad"
		fi
		if [ $exp = 1 ] && [ $seen = 0 ] && as "$u" ls "$(dirname "$d")" >/dev/null 2>&1; then
			echo "FAIL - uid ${u%%:*}: directory $d hidden, but leads to what it reaches"
			echo x >>"$W/dbad"
		fi
		ndirs=$((ndirs + 1))
	done <"$W/dirs"
done
made=$(while IFS= read -r d; do grep -qxF "$d" <(cut -f1 "$W/pairs") || echo "$d"; done <"$W/dirs" | wc -l)
if [ ! -s "$W/dbad" ] && [ "$made" -ge 5 ]; then
	pass "$ndirs (user, directory) pairs ($made made-up directories): shown exactly when they lead somewhere reachable"
else
	fail "$(wc -l <"$W/dbad") differences over $ndirs (user, directory) pairs ($made made-up)"
fi
d=$(dirname "$(grep -F "/.sources/drv/home/alice/pics/cat.jpg" "$W/pairs" | cut -f1 | head -1)")
if as 65534:65534: stat "$d" >/dev/null 2>&1 ||
	as 65534:65534: ls -R "$mnt" 2>/dev/null | grep -q 'pics'; then
	fail "nobody sees the name of alice's private folder ($d)"
else
	pass "nobody sees the name of alice's private folder ($(basename "$d")/) anywhere"
fi
d=$(dirname "$(grep -F "/.sources/pub/home/alice/docs/secret.txt" "$W/pairs" | cut -f1 | head -1)")
as 1002:1002: ls "$d" >/dev/null 2>&1 && pass "bob lists $(basename "$d")/, reached through pub's copy" ||
	fail "bob cannot list $d, which holds pub's copy"

# the merged entry: bob reads alice's document through pub's copy, and is told only pub's
o=$(grep -F "/.sources/pub/home/alice/docs/secret.txt" "$W/pairs" | cut -f1 | head -1)
[ "$(as 1002:1002: cat "$o" 2>&1)" = secret ] && pass "a second, open origin lets others read" ||
	fail "bob cannot read $o"
[ "$(as 1002:1002: getfattr --absolute-names -n user.defrag.origins --only-values "$o")" = \
	"pub:/home/alice/docs/secret.txt" ] &&
	[ "$(as 1002:1002: getfattr --absolute-names -n user.defrag.origins_count --only-values "$o")" = 1 ] &&
	pass "user.defrag.origins shows bob only the origin he can reach" ||
	fail "origins for bob: $(as 1002:1002: getfattr -n user.defrag.origins --only-values "$o")"
[ "$(getfattr --absolute-names -n user.defrag.origins_count --only-values "$o")" = 2 ] &&
	pass "root sees both origins" || fail "root's origins_count"

# versions: the public one names the private one to root only
v=$(grep -F "/.sources/pub/home/alice/docs/ver.txt" "$W/pairs" | cut -f1 | head -1)
[ -n "$v" ] && [ "$(getfattr --absolute-names -n user.defrag.versions --only-values "$v")" = ver.txt ] &&
	! as 1002:1002: getfattr --absolute-names -n user.defrag.versions "$v" >/dev/null 2>&1 &&
	! as 1002:1002: getfattr --absolute-names -d -m - "$v" 2>/dev/null | grep -q versions &&
	pass "user.defrag.versions names a private version to those who reach it only" ||
	fail "versions of $v for bob: $(as 1002:1002: getfattr -n user.defrag.versions --only-values "$v" 2>&1)"

# a guarded file alice has open stays closed to others, and closed in a listing cached
# while she had it
f=$(grep -F "/.sources/drv/home/alice/pics/cat.jpg" "$W/pairs" | cut -f1 | head -1)
exec 7<"$f"
as 1001:1001: ls -l "$(dirname "$f")" >/dev/null
if as 65534:65534: cat "$f" >/dev/null 2>&1 || as 65534:65534: stat "$f" >/dev/null 2>&1 ||
	as 65534:65534: ls "$(dirname "$f")" 2>/dev/null | grep -q cat.jpg; then
	fail "nobody reached $f while alice had it open"
else
	pass "nobody neither reads, stats nor lists a guarded file alice has open"
fi
exec 7<&-

# A directory with more witnesses than it stores (store/witness.h: 32): documents/ leads
# to 40 folders, all closed to others but the one whose witness it did not keep; nobody
# finds it by looking below.
dfs_umount "$mnt"
wide=$W/wide
mkdir -p "$wide"
for i in $(seq -w 0 39); do
	mkdir "$wide/p$i"
	echo "text $i" >"$wide/p$i/note.txt"
	chmod 700 "$wide/p$i"
done
chmod 755 "$wide/p39"
dfs_ingest --store "$W/store2" --name wide "$wide" >/dev/null || fail "ingest wide"
dfs_mount "$W/store2" "$mnt" "allow_other,default_permissions" || { dfs_finish; exit 1; }
top=$(dirname "$(dirname "$(find "$mnt" -path "$mnt/.sources" -prune -o -name note.txt -path '*p39*' -print)")")
seen=$(as 65534:65534: ls "$top" 2>/dev/null | tr '\n' ' ')
[ "$seen" = "p39 " ] && as 65534:65534: cat "$top/p39/note.txt" >/dev/null &&
	! as 65534:65534: stat "$top/p05" >/dev/null 2>&1 &&
	[ "$(ls "$top" | wc -l)" = 40 ] &&
	pass "past the stored witnesses: nobody lists $(basename "$top")/ and sees p39 alone" ||
	fail "nobody in $top sees: '$seen' (root sees $(ls "$top" | wc -l))"
chmod 700 "$wide/p39"
dfs_umount "$mnt"
dfs_ingest --store "$W/store2" --name wide "$wide" >/dev/null || fail "re-ingest wide"
dfs_mount "$W/store2" "$mnt" "allow_other,default_permissions" || { dfs_finish; exit 1; }
! as 65534:65534: stat "$top" >/dev/null 2>&1 &&
	as 65534:65534: ls "$mnt" >/dev/null 2>&1 &&
	! as 65534:65534: ls "$mnt" 2>/dev/null | grep -qx "$(basename "$top")" &&
	pass "closed again (a full build replaces the witnesses): nobody sees $(basename "$top")/" ||
	fail "nobody still sees $top: $(as 65534:65534: ls "$mnt" 2>&1 | tr '\n' ' ')"

# without allow_other nothing changes for root: the same bytes through both views
dfs_umount "$mnt"
dfs_finish
