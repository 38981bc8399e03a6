# rgw.sh - a throw-away one-node Ceph cluster with radosgw on 127.0.0.1, for the tests
# and benchmarks of the S3 pack backend (sourced after lib.sh, or alone by bench/).
#
#   dfs_rgw_skip_unless_installed   exit 77 (skip, said) without ceph-mon, ceph-osd,
#                          radosgw, radosgw-admin, ceph, monmaptool (.ci/deps.sh
#                          installs them)
#   dfs_rgw_start DIR      a mon, one bluestore OSD on a sparse 10 GiB file, pools of size
#                          1, radosgw (beast) on a free port of 127.0.0.1, an S3 user;
#                          everything under DIR. Exports DFS_S3_ENDPOINT,
#                          AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION.
#                          RGW_STORE=memstore puts the OSD in memory instead.
#   dfs_rgw_stop_gw        stops radosgw only (the object store unreachable)
#   dfs_rgw_start_gw       starts radosgw again on the same port, waits for it
#   dfs_rgw_stop           stops every daemon it started, by pid (radosgw, osd, mon)
#   dfs_s3 BUCKET METHOD KEY [curl args]   a signed request (curl's SigV4), body on stdout
#   dfs_s3_objects BUCKET PREFIX           "KEY SIZE" lines of the objects under PREFIX/,
#                          sorted (every page of the listing)
#   dfs_s3_left_staged STORE               staged packs (STORE/packs) but the newest when
#                          it is under 4 MiB (kept open across commits: store_int.h)
# A sourcing test's EXIT trap (lib.sh) calls dfs_rgw_stop.
# The steps follow the project's reference script (ceph-rgw-loopback.sh of the design
# folder): auth none, msgr2 on 127.0.0.1 only, "ms mon client mode = crc secure" for
# radosgw, "paxos propose interval = 0.1" so that radosgw's pool creation is quick.

_dfs_rgw_pids=()	# mon osd rgw, in start order
_dfs_rgw_dir=
_dfs_rgw_port=

dfs_rgw_skip_unless_installed() {
	local b
	for b in ceph-mon ceph-osd radosgw radosgw-admin ceph monmaptool ceph-authtool uuidgen curl ss; do
		if ! command -v "$b" >/dev/null 2>&1; then
			echo "skip: $b is not installed (apt-get install ceph-mon ceph-osd radosgw" \
				"ceph-common uuid-runtime curl iproute2: .ci/deps.sh)"
			exit 77
		fi
	done
}

# _dfs_rgw_free_port: a port of 127.0.0.1 nobody listens on, from a random start.
_dfs_rgw_free_port() {
	local p tries
	for tries in $(seq 1 200); do
		p=$((20000 + RANDOM % 30000))
		ss -Hltn "sport = :$p" | grep -q . || { echo "$p"; return 0; }
	done
	return 1
}

_dfs_rgw_wait_gw() {
	local i code=
	for i in $(seq 1 600); do
		code=$(curl -s -o /dev/null -w '%{http_code}' "$DFS_S3_ENDPOINT/" || true)
		[ "$code" = 200 ] && return 0
		kill -0 "${_dfs_rgw_pids[2]}" 2>/dev/null || { echo "radosgw died"; return 1; }
		sleep 0.2
	done
	echo "radosgw does not answer on $DFS_S3_ENDPOINT (last code $code)"
	return 1
}

dfs_rgw_start() {
	local d=$1 mon_port fsid osd_uuid i
	_dfs_rgw_dir=$d
	mkdir -p "$d"/{log,run,mon.a,osd.0,rgw}
	mon_port=$(_dfs_rgw_free_port) || return 1
	_dfs_rgw_port=$(_dfs_rgw_free_port) || return 1
	fsid=$(uuidgen)
	export CEPH_CONF=$d/ceph.conf
	cat >"$CEPH_CONF" <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mon_port
ms bind msgr1 = false
public addr = 127.0.0.1
public network = 127.0.0.1/32
auth cluster required = none
auth service required = none
auth client required = none
run dir = $d/run
admin socket = $d/run/\$name.asok
log file = $d/log/\$name.log
pid file = $d/run/\$name.pid
crash dir = $d/crash
log to stderr = false
err to stderr = true
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon max pg per osd = 1000
osd crush chooseleaf type = 0
mon data avail warn = 2
mon data avail crit = 1
paxos propose interval = 0.1
[mon]
mon data = $d/\$name
[osd]
osd data = $d/\$name
osd objectstore = ${RGW_STORE:-bluestore}
bluestore block create = true
bluestore block size = 10737418240
bluestore fsck on mount = false
memstore device bytes = 2147483648
osd memory target = 1073741824
[client]
keyring = $d/keyring
[client.rgw]
rgw data = $d/rgw
rgw frontends = beast endpoint=127.0.0.1:$_dfs_rgw_port
rgw thread pool size = 32
rgw dns name = localhost
ms mon client mode = crc secure
EOF
	: >"$d/keyring"
	monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" "$d/monmap" >/dev/null
	ceph-authtool --create-keyring "$d/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
	ceph-mon --mkfs -i a --monmap "$d/monmap" --keyring "$d/mon.keyring"
	ceph-mon -f -i a >"$d/log/mon.a.out" 2>&1 &
	_dfs_rgw_pids[0]=$!
	for i in $(seq 1 100); do
		ceph --connect-timeout 3 mon stat >/dev/null 2>&1 && break
		sleep 0.2
	done
	ceph --connect-timeout 3 mon stat >/dev/null || { echo "ceph-mon did not start"; return 1; }
	osd_uuid=$(uuidgen)
	[ "$(ceph osd new "$osd_uuid")" = 0 ] || { echo "unexpected osd id"; return 1; }
	ceph-osd -i 0 --mkfs --osd-uuid "$osd_uuid" >"$d/log/osd.0.mkfs.out" 2>&1
	ceph-osd -f -i 0 >"$d/log/osd.0.out" 2>&1 &
	_dfs_rgw_pids[1]=$!
	for i in $(seq 1 300); do
		ceph osd dump 2>/dev/null | grep -q '^osd\.0 up' && break
		sleep 0.2
	done
	ceph osd dump | grep -q '^osd\.0 up' || { echo "osd.0 did not come up"; return 1; }
	export DFS_S3_ENDPOINT=http://127.0.0.1:$_dfs_rgw_port
	dfs_rgw_start_gw || return 1
	export AWS_ACCESS_KEY_ID=DFSTESTACCESSKEY0001
	export AWS_SECRET_ACCESS_KEY=dfstestsecretkey00000000000000000000001
	export AWS_REGION=us-east-1
	radosgw-admin user create --uid=dfs --display-name=dfs \
		--access-key="$AWS_ACCESS_KEY_ID" --secret-key="$AWS_SECRET_ACCESS_KEY" >/dev/null
}

dfs_rgw_start_gw() {
	CEPH_CONF=$_dfs_rgw_dir/ceph.conf radosgw -f -n client.rgw \
		>>"$_dfs_rgw_dir/log/rgw.out" 2>&1 &
	_dfs_rgw_pids[2]=$!
	_dfs_rgw_wait_gw
}

_dfs_rgw_kill() {
	local p=$1 i
	[ -n "$p" ] && kill -0 "$p" 2>/dev/null || return 0
	kill -TERM "$p" 2>/dev/null || true
	for i in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null || true
	wait "$p" 2>/dev/null || true
}

dfs_rgw_stop_gw() {
	_dfs_rgw_kill "${_dfs_rgw_pids[2]:-}"
	_dfs_rgw_pids[2]=
}

dfs_rgw_stop() {
	_dfs_rgw_kill "${_dfs_rgw_pids[2]:-}"
	_dfs_rgw_kill "${_dfs_rgw_pids[1]:-}"
	_dfs_rgw_kill "${_dfs_rgw_pids[0]:-}"
	_dfs_rgw_pids=()
}

dfs_s3() {
	local b=$1 m=$2 k=$3
	shift 3
	curl -sS --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
		-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -X "$m" "$@" "$DFS_S3_ENDPOINT/$b/$k"
}

dfs_s3_objects() {
	local b=$1 p=$2 tok="" page
	while :; do
		# parameters in name order: libcurl 7.88 signs the query as it is written
		page=$(dfs_s3 "$b" GET "?${tok:+continuation-token=$tok&}list-type=2&prefix=$p%2F")
		echo "$page" | grep -o '<Key>[^<]*</Key>[^S]*<Size>[0-9]*' |
			sed 's/<Key>\([^<]*\)<\/Key>.*<Size>\([0-9]*\)/\1 \2/'
		echo "$page" | grep -q '<IsTruncated>true</IsTruncated>' || break
		tok=$(echo "$page" | grep -o '<NextContinuationToken>[^<]*' | cut -d'>' -f2 |
			jq -sRr 'rtrimstr("\n") | @uri')
	done | sort
}

dfs_s3_left_staged() {
	find "$1/packs" -name '*.pack' -printf '%f %s\n' | sort |
		awk '{ n++; s = $2 } END { print n - (n > 0 && s < 4194304) }'
}
