#!/usr/bin/env bash
# More of the S3 pack backend against a real one-node Ceph with radosgw (rgw.sh), beside
# t_s3.sh (the round trip, the server's faults, gc, push and pull):
#  - uploads overlapped with the ingest: packs sealed by size are put before the commit
#    that names them (DFS_FAULT_S3=seal cuts the run there: they are on the server);
#  - a rerun after that cut puts the staged packs that are whole and uses them (their
#    objects stay, nothing is stored twice), bit-exact;
#  - commits that store no data leave no object each (the newest pack kept open while
#    small); a cut after its new put; a local store's runs add no pack file either;
#  - --s3-credentials FILE with no keys in the environment; a wrong secret refused;
#  - listing past 1,000 objects (recover sees all 1,104);
#  - defrag-store push and pull killed between objects (DFS_FAULT_MOVE), reruns bit-exact;
#  - ETags that are not the MD5 (DFS_FAULT_S3_ETAG=opaque): confirmed by reading back;
#  - leftovers: stale private pack caches removed, an orphan object removed by gc;
#  - the kept-open pack growing, then sealed, under a live mount and a kept pack cache.
# The fault switches need a DFS_TEST_FAULTS build; without one those checks are skipped.
# Skipped (exit 77, said) when the Ceph binaries are absent; .ci/deps.sh installs them.
set -eu
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/rgw.sh"
DFS_NEEDS="defrag-ingest defrag-verify defrag-recover defrag-store defrag-forget defrag-gc" dfs_setup
dfs_rgw_skip_unless_installed

dfs_rgw_start "$W/ceph" || { fail "one-node Ceph with radosgw did not start"; dfs_finish; }
ep=$DFS_S3_ENDPOINT
B=dfs-m

s3() { dfs_s3 "$B" "$@"; }	# s3 METHOD KEY [curl args]
objects() { dfs_s3_objects "$B" "$1"; }	# objects PREFIX: "KEY SIZE" lines
staged() { find "$1/packs" -name '*.pack' | wc -l; }
left() { dfs_s3_left_staged "$1"; }	# staged, but a kept-open newest pack
staged_ids() { find "$1/packs" -name '*.pack' -printf '%f\n' | sort; }

# ---- uploads overlapped with the ingest; a cut after seal, before confirm ----------------
u=$W/u
ust=$W/ust
mkdir -p "$u/a" "$u/b"
seq 1 1000 >"$u/a/first.txt"
DFS_FAULT_PACK_TARGET=1048576 dfs_ingest --store "$ust" --name u --packs "s3://$B/up" \
	--s3-endpoint "$ep" "$u" >/dev/null || fail "overlap: first ingest"
objects up >"$W/up0"
for i in 1 2 3 4 5 6; do head -c 2M /dev/urandom >"$u/b/r$i.bin"; done
rc=0
DFS_FAULT_S3=seal "$DFS_BIN/defrag-ingest" --progress=never --store "$ust" --name u "$u" \
	>/dev/null 2>"$W/seal.err" || rc=$?
if [ $rc -eq 137 ]; then
	objects up >"$W/up1"
	staged_ids "$ust" >"$W/st1"
	early=$(comm -13 "$W/up0" "$W/up1" | wc -l)
	[ "$early" -ge 4 ] && [ "$(staged "$ust")" -gt "$early" ] &&
		pass "packs sealed by size are put before the commit ($early objects at the cut, $(staged "$ust") staged)" ||
		{ cat "$W/up1"; fail "overlap: $early objects put before the commit"; }
	"$DFS_BIN/defrag-ingest" --progress=never -v --store "$ust" --name u "$u" \
		>/dev/null 2>"$W/adopt.err" || { cat "$W/adopt.err"; fail "rerun after the cut"; }
	objects up >"$W/up2"
	missing=0
	while read -r f; do
		grep -q "/$f " "$W/up2" || missing=$((missing + 1))
	done <"$W/st1"
	nadopt=$(grep -c "no commit names it: put, and the next commit names it" "$W/adopt.err" || true)
	[ $missing -eq 0 ] && [ "$(left "$ust")" -eq 0 ] && [ "$nadopt" -ge 4 ] &&
		pass "the rerun puts the whole staged packs and uses them ($nadopt; every staged pack's object stays)" ||
		{ cat "$W/adopt.err"; fail "rerun: $missing staged packs not on the server, $nadopt adopted"; }
	"$DFS_BIN/defrag-verify" --store "$ust" --against "$u" --name u >"$W/gu" 2>&1 &&
		"$DFS_BIN/defrag-verify" --store "$ust" --read-data >"$W/vu" 2>&1 &&
		pass "after the rerun: gate and verify --read-data clean" ||
		{ tail "$W/gu" "$W/vu"; fail "after the rerun"; }
	# the same data is not stored twice: the stored bytes stay near the 12 MiB of data
	sum=$(objects up | awk '{s+=$2}END{print s}')
	[ "$sum" -lt $((13 * 1048576 + 200000)) ] && pass "nothing stored twice ($sum bytes on the server)" ||
		{ cat "$W/up2"; fail "stored bytes $sum"; }
	rc=0
	"$DFS_BIN/defrag-recover" --store "$ust" >"$W/rec" 2>&1 || rc=$?
	[ $rc -eq 0 ] && "$DFS_BIN/defrag-verify" --store "$ust" --against "$u" --name u >"$W/gu2" 2>&1 &&
		pass "recover from the bucket after it (the dead commit's META record is not replayed)" ||
		{ cat "$W/rec"; tail "$W/gu2"; fail "recover after the adopted packs ($rc)"; }
	# ---- commits that store no data leave no object each (the newest pack kept open) ----
	n0=$(objects up | wc -l)
	for i in 1 2 3; do
		dfs_ingest --store "$ust" --name u "$u" >/dev/null || fail "unchanged re-ingest $i"
	done
	"$DFS_BIN/defrag-verify" --store "$ust" --against "$u" --name u >"$W/gu3" 2>&1 ||
		{ tail "$W/gu3"; fail "gate after the re-ingests"; }
	n1=$(objects up | wc -l)
	[ "$n1" -le $((n0 + 1)) ] && [ "$(left "$ust")" -eq 0 ] &&
		pass "3 unchanged re-ingests and a gate (data-less commits): $n0 -> $n1 objects" ||
		{ objects up; fail "data-less commits: $n0 -> $n1 objects, $(left "$ust") staged"; }
	# a cut after the kept-open pack was put again, before the commit that names its
	# new bytes: the rerun cuts them and puts the committed bytes back
	echo more >>"$u/a/first.txt"
	rc=0
	DFS_FAULT_S3=put "$DFS_BIN/defrag-ingest" --progress=never --store "$ust" --name u "$u" \
		>/dev/null 2>"$W/put.err" || rc=$?
	[ $rc -eq 137 ] || { cat "$W/put.err"; fail "cut after the put of the open pack ($rc)"; }
	dfs_ingest --store "$ust" --name u "$u" >/dev/null &&
		"$DFS_BIN/defrag-verify" --store "$ust" --against "$u" --name u >"$W/gu4" 2>&1 &&
		"$DFS_BIN/defrag-verify" --store "$ust" --read-data >"$W/vu4" 2>&1 &&
		"$DFS_BIN/defrag-recover" --store "$ust" >"$W/rec4" 2>&1 &&
		"$DFS_BIN/defrag-verify" --store "$ust" --against "$u" --name u >"$W/gu5" 2>&1 &&
		pass "a cut after the open pack's put: the rerun, verify and recover are clean" ||
		{ tail "$W/gu4" "$W/vu4" "$W/rec4" "$W/gu5"; fail "after the cut of the open pack"; }
	# the local backend: a run that stores nothing adds no pack file either
	lo=$W/lo
	dfs_ingest --store "$lo" --name l "$u/a" >/dev/null || fail "local ingest"
	p0=$(staged "$lo")
	dfs_ingest --store "$lo" --name l "$u/a" >/dev/null && dfs_ingest --store "$lo" --name l "$u/a" \
		>/dev/null || fail "local re-ingests"
	[ "$(staged "$lo")" -eq "$p0" ] && pass "a local store: unchanged re-ingests add no pack file ($p0)" ||
		fail "local store: $p0 -> $(staged "$lo") pack files"
elif [ $rc -eq 0 ]; then
	echo "# the cut needs a DFS_TEST_FAULTS build (DFS_FAULT_S3): skipped"
else
	cat "$W/seal.err"; fail "cut at seal: exit $rc"
fi

# ---- the credentials in a file (--s3-credentials), none in the environment ----------------
cred=$W/cred
printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' \
	"$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >"$cred"
chmod 600 "$cred"
noenv() { env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY "$@"; }
cst=$W/cst
if noenv "$DFS_BIN/defrag-ingest" --progress=never --store "$cst" --name c --packs "s3://$B/cred" \
	--s3-endpoint "$ep" --s3-credentials "$cred" "$u/a" >/dev/null 2>"$W/cred.err"; then
	grep -q "^s3_credentials $cred$" "$cst/config" && ! grep -q "$AWS_SECRET_ACCESS_KEY" "$cst/config" &&
		noenv "$DFS_BIN/defrag-verify" --store "$cst" --read-data >"$W/vc" 2>&1 &&
		noenv "$DFS_BIN/defrag-verify" --store "$cst" --against "$u/a" --name c >"$W/gc" 2>&1 &&
		pass "--s3-credentials FILE: ingest, verify and gate with no keys in the environment" ||
		{ cat "$cst/config"; tail "$W/vc" "$W/gc"; fail "credentials file"; }
else
	cat "$W/cred.err"; fail "ingest with --s3-credentials"
fi
printf 'aws_access_key_id=%s\naws_secret_access_key=wrongwrongwrong\n' "$AWS_ACCESS_KEY_ID" >"$W/bad"
rc=0
noenv "$DFS_BIN/defrag-ingest" --progress=never --store "$W/cbad" --name c --packs "s3://$B/cbad" \
	--s3-endpoint "$ep" --s3-credentials "$W/bad" "$u/a" >/dev/null 2>"$W/bad.err" || rc=$?
[ $rc -ne 0 ] && grep -qi "SignatureDoesNotMatch\|denied\|refused\|permission" "$W/bad.err" &&
	pass "a wrong secret in the file: refused, said (exit $rc)" ||
	{ cat "$W/bad.err"; fail "wrong secret: exit $rc"; }

# ---- listing past 1,000 objects (continuation tokens) -------------------------------------
pst=$W/pgst
dfs_ingest --store "$pst" --name g --packs "s3://$B/pg" --s3-endpoint "$ep" "$u/a" >/dev/null ||
	fail "listing: ingest"
real=$(objects pg | wc -l)
printf x >"$W/tiny"
for i in $(seq 1 1100); do
	printf 'url = "%s/%s/pg/%08x.pack"\nupload-file = "%s"\n' "$ep" "$B" $((0x100000 + i)) "$W/tiny"
done >"$W/curl.cfg"
curl -sS --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
	-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -K "$W/curl.cfg" >/dev/null
total=$(objects pg | wc -l)
[ "$total" -eq $((real + 1100)) ] || fail "1,100 objects put: the bucket lists $total (+$real)"
"$DFS_BIN/defrag-recover" --store "$pst" --json >"$W/rec.json" 2>"$W/rec.err" || true
seen=$(jq -r .packs "$W/rec.json" 2>/dev/null || echo none)
[ "$seen" = "$total" ] &&
	pass "recover lists every object past the first 1,000 ($seen of $total: continuation tokens)" ||
	{ head -c 600 "$W/rec.json"; tail -3 "$W/rec.err"; fail "recover saw $seen of $total packs"; }

# ---- kill -9 in the middle of defrag-store push and pull, then reruns --------------------
if [ -n "$(find "$ust" -maxdepth 0 2>/dev/null)" ] && [ -f "$W/st1" ]; then
	mst=$W/mst
	DFS_FAULT_PACK_TARGET=1048576 dfs_ingest --store "$mst" --name m "$u/b" >/dev/null ||
		fail "move: local ingest"
	n=$(staged "$mst")
	rc=0
	DFS_FAULT_MOVE=3 "$DFS_BIN/defrag-store" --store "$mst" push --packs "s3://$B/mv" \
		--s3-endpoint "$ep" >"$W/push1" 2>&1 || rc=$?
	[ $rc -eq 137 ] && [ "$(objects mv | wc -l)" -eq 3 ] && grep -q '^defragfs-store 1$' "$mst/config" ||
		{ cat "$W/push1"; fail "push killed after 3 of $n packs ($rc)"; }
	"$DFS_BIN/defrag-store" --store "$mst" push --packs "s3://$B/mv" --s3-endpoint "$ep" \
		>"$W/push2" 2>&1 &&
		[ "$(objects mv | wc -l)" -eq "$n" ] && [ "$(staged "$mst")" -eq 0 ] &&
		"$DFS_BIN/defrag-verify" --store "$mst" --read-data >"$W/vm1" 2>&1 &&
		"$DFS_BIN/defrag-verify" --store "$mst" --against "$u/b" --name m >"$W/gm1" 2>&1 &&
		pass "push killed (-9) after 3 of $n packs: the rerun finishes, bit-exact" ||
		{ cat "$W/push2"; tail "$W/vm1" "$W/gm1"; fail "push rerun"; }
	n=$(objects mv | wc -l)	# the verify runs above committed (a pack each)
	rc=0
	DFS_FAULT_MOVE=3 "$DFS_BIN/defrag-store" --store "$mst" pull >"$W/pull1" 2>&1 || rc=$?
	rc2=0
	DFS_FAULT_MOVE=$((n + 2)) "$DFS_BIN/defrag-store" --store "$mst" pull >"$W/pull2" 2>&1 || rc2=$?
	[ $rc -eq 137 ] && [ $rc2 -eq 137 ] && [ "$(objects mv | wc -l)" -eq $((n - 2)) ] &&
		grep -q '^defragfs-store 2$' "$mst/config" ||
		{ cat "$W/pull1" "$W/pull2"; fail "pull killed while fetching ($rc), while deleting ($rc2)"; }
	"$DFS_BIN/defrag-verify" --store "$mst" --against "$u/b" --name m >"$W/gm2" 2>&1 ||
		{ tail "$W/gm2"; fail "the store between two cut pulls"; }
	"$DFS_BIN/defrag-store" --store "$mst" pull >"$W/pull3" 2>&1 &&
		grep -q '^defragfs-store 1$' "$mst/config" && [ "$(objects mv | wc -l)" -eq 0 ] &&
		[ "$(staged "$mst")" -ge "$n" ] &&
		"$DFS_BIN/defrag-verify" --store "$mst" --read-data >"$W/vm3" 2>&1 &&
		"$DFS_BIN/defrag-verify" --store "$mst" --against "$u/b" --name m >"$W/gm3" 2>&1 &&
		pass "pull killed (-9) while fetching, then while deleting: the rerun finishes, bit-exact" ||
		{ cat "$W/pull3"; tail "$W/vm3" "$W/gm3"; fail "pull rerun"; }

	# ---- a server whose ETag is not the MD5 of the object (multipart, SSE-KMS) ----------
	# DFS_FAULT_S3_ETAG=opaque: the client sees "MD5-1" ETags. The confirmation reads the
	# object back; objects of the right size and other bytes are not taken for the pack.
	for f in $(find "$mst/packs" -name '*.pack'); do
		head -c "$(stat -c %s "$f")" /dev/urandom >"$W/junk"
		s3 PUT "et/$(basename "$f")" -T "$W/junk" -o /dev/null
	done
	if DFS_FAULT_S3_ETAG=opaque "$DFS_BIN/defrag-store" --store "$mst" push --packs "s3://$B/et" \
		--s3-endpoint "$ep" >"$W/push3" 2>&1; then
		"$DFS_BIN/defrag-verify" --store "$mst" --read-data >"$W/vm4" 2>&1 &&
			"$DFS_BIN/defrag-verify" --store "$mst" --against "$u/b" --name m >"$W/gm4" 2>&1 &&
			pass "opaque ETags: objects of the right size with other bytes are replaced, each put confirmed by reading it back" ||
			{ tail "$W/vm4" "$W/gm4"; fail "opaque ETags: the server holds other bytes"; }
	else
		cat "$W/push3"; fail "push with opaque ETags"
	fi
	DFS_FAULT_S3_ETAG=opaque dfs_ingest --store "$mst" --name e "$u/a" >/dev/null &&
		[ "$(left "$mst")" -eq 0 ] &&
		"$DFS_BIN/defrag-verify" --store "$mst" --against "$u/a" --name e >"$W/ge" 2>&1 &&
		pass "opaque ETags: an ingest's packs are confirmed by reading them back" ||
		{ tail "$W/ge"; fail "ingest with opaque ETags"; }
fi

# ---- leftovers: a crashed tool's private pack cache, an object whose delete failed -------
if [ -d "$cst" ]; then
	mkdir -p "$cst/pcache.stale1" "$cst/pcache.alive1"
	echo x >"$cst/pcache.stale1/00000001.pack"
	touch -d '5 minutes ago' "$cst/pcache.stale1" "$cst/pcache.alive1"
	flock "$cst/pcache.alive1" -c 'sleep 60' &
	lpid=$!
	for i in $(seq 1 50); do
		flock -n "$cst/pcache.alive1" -c true 2>/dev/null || break
		sleep 0.1
	done
	touch -d '5 minutes ago' "$cst/pcache.alive1"
	noenv "$DFS_BIN/defrag-verify" --store "$cst" >"$W/vs" 2>&1 || { cat "$W/vs"; fail "verify"; }
	[ ! -e "$cst/pcache.stale1" ] && [ -d "$cst/pcache.alive1" ] &&
		pass "a tool removes the private pack caches nobody holds, not one that is locked" ||
		{ ls -la "$cst"; fail "stale pack caches"; }
	kill "$lpid" 2>/dev/null || true
	wait "$lpid" 2>/dev/null || true
	rmdir "$cst/pcache.alive1"
fi
if [ -n "${mst:-}" ] && [ -d "$mst" ]; then
	objects et >"$W/gc0"
	"$DFS_BIN/defrag-forget" --store "$mst" --yes m >"$W/fg" 2>&1 &&
		"$DFS_BIN/defrag-gc" --store "$mst" >"$W/gc1" 2>&1 || { cat "$W/fg" "$W/gc1"; fail "forget, gc"; }
	objects et >"$W/gc2"
	gone=$(comm -23 "$W/gc0" "$W/gc2" | head -n 1 | cut -d' ' -f1)
	if [ -n "$gone" ]; then
		s3 PUT "$gone" -T "$W/tiny" -o /dev/null	# as if its delete had failed
		"$DFS_BIN/defrag-gc" --store "$mst" >"$W/gc3" 2>&1 || { cat "$W/gc3"; fail "second gc"; }
		! objects et | grep -q "^$gone " &&
			"$DFS_BIN/defrag-verify" --store "$mst" --read-data >"$W/vo" 2>&1 &&
			"$DFS_BIN/defrag-verify" --store "$mst" --against "$u/a" --name e >"$W/go" 2>&1 &&
			pass "gc removes an object no pack record names ($gone), and only that" ||
			{ cat "$W/gc3"; tail "$W/vo" "$W/go"; fail "orphan object $gone"; }
	else
		cat "$W/gc1"; fail "gc removed no object"
	fi
fi

# ---- the kept-open newest pack grows under a mount, then is sealed -------------------------
# While it is open the newest pack is read from its staged copy; a later ingest appends
# to it (the object put again, longer), then one past 4 MiB seals it (the staged copy
# goes). A live mount reads each new file; a fresh mount over the same pack cache reads
# every file from the final object.
g=$W/g
gst=$W/gst
gm=$W/gmnt
mkdir -p "$g" "$gm"
head -c 300000 /dev/urandom >"$g/one.bin"
dfs_ingest --store "$gst" --name g --packs "s3://$B/grow" --s3-endpoint "$ep" "$g" \
	>/dev/null || fail "grow: first ingest"
follow() {	# follow FILE: the live mount shows it (catch-up every 2 s), same bytes; 30 s
	for i in $(seq 1 150); do
		[ -e "$gm/.sources/g/$1" ] && break
		sleep 0.2
	done
	cmp -s "$gm/.sources/g/$1" "$g/$1"
}
if dfs_mount "$gst" "$gm" "pack_cache=$W/gpc"; then
	follow one.bin || fail "grow: the first file through the mount"
	head -c 300000 /dev/urandom >"$g/two.bin"
	dfs_ingest --store "$gst" --name g "$g" >/dev/null || fail "grow: second ingest"
	n1=$(objects grow | wc -l)
	follow two.bin && [ "$n1" -eq 1 ] &&
		pass "a live mount reads a file appended to the kept-open pack (one object, put again longer)" ||
		{ objects grow; tail "$W/daemon-gmnt.log"; fail "grow: the appended file ($n1 objects)"; }
	head -c 5000000 /dev/urandom >"$g/three.bin"
	dfs_ingest --store "$gst" --name g "$g" >/dev/null || fail "grow: third ingest"
	follow three.bin && follow one.bin ||
		{ tail "$W/daemon-gmnt.log"; fail "grow: the live mount after the pack was sealed"; }
	dfs_umount "$gm"
	if dfs_mount "$gst" "$gm" "pack_cache=$W/gpc"; then
		follow one.bin && follow two.bin && follow three.bin &&
			pass "after the pack is sealed, live and fresh mounts over the same pack cache read every file" ||
			{ tail "$W/daemon-gmnt.log"; fail "grow: a fresh mount over the kept cache"; }
		dfs_umount "$gm"
	else
		fail "grow: second mount"
	fi
else
	fail "grow: mount"
fi

dfs_rgw_stop
dfs_finish
