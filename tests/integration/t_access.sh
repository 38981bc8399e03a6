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

# without allow_other nothing changes for root: the same bytes through both views
dfs_umount "$mnt"
dfs_finish
