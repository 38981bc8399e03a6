# lib.sh - shared helpers of the integration tests (sourced by t_*.sh, which use set -eu).
#
#   dfs_setup              workdir $W (mktemp -d), binaries in $DFS_BIN, skip (exit 77)
#                          without /dev/fuse or root; installs the cleanup trap; exports
#                          DEFRAGFS_ALLOW_SAME_FILESYSTEM=1 (stores beside sources)
#   dfs_ingest ARGS...     runs defrag-ingest --progress=never ARGS; its stderr goes to
#                          $W/ingest.log (printed on failure)
#   dfs_mount STORE MNT [OPTS]   starts defragfs in the foreground (-f) in the background,
#                          waits until MNT is a mount point (readiness), records the pid
#   dfs_umount MNT         fusermount3 -u (umount -l as a fallback), waits for the daemon
#   pass MSG / fail MSG    count results; fail keeps going, dfs_finish decides
#   dfs_content_set DIR    sorted unique SHA-256 sums of the regular files under DIR
#   dfs_all_reachable SRC ORG   every file content of SRC is present in ORG
#   dfs_flip_in STORE FILE [OFF] damages the pack record holding FILE's bytes (incompressible)
#   dfs_cold_packs STORE   drops STORE's packs from the page cache
#   dfs_finish             prints "N passed, N failed" and exits 0 or 1
# With DFS_VALGRIND=1 the daemon runs under valgrind (memcheck, errors fail the test).
# Logs: $W/daemon-*.log, printed when a test fails; $W is removed on success.

DFS_SRC=${DFS_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
DFS_BIN=${DFS_BIN:-$DFS_SRC/build/bin}
_dfs_pass=0
_dfs_fail=0
_dfs_mounts=()
_dfs_pids=()
DFS_CLEAN_MOUNTS=${DFS_CLEAN_MOUNTS:-}

pass() { _dfs_pass=$((_dfs_pass + 1)); echo "ok - $*"; }
fail() { _dfs_fail=$((_dfs_fail + 1)); echo "FAIL - $*"; }

# _dfs_is_child PID: PID is a live child of this shell. A daemon the test already waited
# for leaves its pid behind, and with pid_max 32768 a long test can see that pid reused
# by another test's process (CI: a crash walk's cleanup sent SIGTERM to a `cut` of
# t_ingest_roundtrip running beside it); only our own children are signalled.
_dfs_is_child() {
	local st
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	st=${st##*) }	# after the command name, which may hold spaces and parentheses
	set -- $st	# state ppid ...
	[ "${2:-}" = "$$" ]
}

_dfs_cleanup() {
	local rc=$? m p
	for m in "${_dfs_mounts[@]:-}"; do
		[ -n "$m" ] || continue
		if mountpoint -q "$m" 2>/dev/null; then
			fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
		fi
	done
	for m in $DFS_CLEAN_MOUNTS; do
		mountpoint -q "$m" 2>/dev/null && umount -l "$m" 2>/dev/null || true
	done
	for p in "${_dfs_pids[@]:-}"; do
		[ -n "$p" ] && _dfs_is_child "$p" && kill "$p" 2>/dev/null || true
	done
	# a one-node Ceph of rgw.sh, if the test started one
	if declare -F dfs_rgw_stop >/dev/null; then
		dfs_rgw_stop
	fi
	if [ $rc -ne 0 ] || [ $_dfs_fail -ne 0 ]; then
		for f in "$W"/daemon-*.log "$W"/ingest.log; do
			[ -s "$f" ] || continue
			echo "---- $f"
			tail -n 50 "$f"
		done
		echo "(workdir kept: $W)"
	else
		rm -rf "$W"
	fi
}

dfs_setup() {
	if [ "$(id -u)" != 0 ] || [ ! -e /dev/fuse ]; then
		echo "skip: needs root and /dev/fuse"
		exit 77
	fi
	W=$(mktemp -d "${TMPDIR:-/tmp}/dfs-test.XXXXXX")
	export W
	# the tests' stores sit beside their sources, on one filesystem (t_same_filesystem
	# unsets it to test the refusal)
	export DEFRAGFS_ALLOW_SAME_FILESYSTEM=1
	trap _dfs_cleanup EXIT
	for b in ${DFS_NEEDS:-defrag-ingest defragfs} dfs-treegen dfs-treecmp; do
		[ -x "$DFS_BIN/$b" ] || { echo "missing $DFS_BIN/$b"; exit 1; }
	done
}

dfs_ingest() {
	local rc=0
	"$DFS_BIN/defrag-ingest" --progress=never "$@" 2>>"$W/ingest.log" || rc=$?
	[ $rc -eq 0 ] || tail -n 5 "$W/ingest.log" >&2
	return $rc
}

dfs_mount() {
	local store=$1 mnt=$2 opts=${3:-} log i
	log=$W/daemon-$(basename "$mnt").log
	if [ "${DFS_VALGRIND:-0}" = 1 ]; then
		valgrind -q --error-exitcode=99 --leak-check=no --log-file="$log.vg" \
			"$DFS_BIN/defragfs" "$store" "$mnt" -f ${opts:+-o "$opts"} >>"$log" 2>&1 &
	else
		"$DFS_BIN/defragfs" "$store" "$mnt" -f ${opts:+-o "$opts"} >>"$log" 2>&1 &
	fi
	_dfs_pids+=($!)
	_dfs_mounts+=("$mnt")
	eval "_dfs_pid_$(echo "$mnt" | md5sum | cut -c1-8)=$!"
	for i in $(seq 1 200); do
		if mountpoint -q "$mnt"; then
			return 0
		fi
		if ! kill -0 "$!" 2>/dev/null; then
			echo "defragfs exited before mounting:"; cat "$log"
			return 1
		fi
		sleep 0.1
	done
	echo "defragfs did not mount within 20 s:"; cat "$log"
	return 1
}

# dfs_faultfs_mount BACKING MNT [OPTS]: dfs-faultfs serves BACKING at MNT (no leak
# check: a power cut kills it), its pid in DFS_FF_PID; 0 once mounted, else a failure.
dfs_faultfs_mount() {
	local i
	mkdir -p "$2"
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
		"$DFS_BIN/dfs-faultfs" "$1" "$2" ${3:+-o "$3"} 2>>"$W/daemon-faultfs.log" &
	DFS_FF_PID=$!
	_dfs_pids+=("$DFS_FF_PID")
	_dfs_mounts+=("$2")
	for i in $(seq 1 600); do
		mountpoint -q "$2" && return 0
		if ! kill -0 "$DFS_FF_PID" 2>/dev/null; then
			fail "dfs-faultfs exited before mounting"
			return 1
		fi
		sleep 0.05
	done
	fail "dfs-faultfs did not mount within 30 s"
	return 1
}

dfs_umount() {
	local mnt=$1 var pid i
	var=_dfs_pid_$(echo "$mnt" | md5sum | cut -c1-8)
	pid=${!var:-}
	fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt"
	[ -n "$pid" ] || return 0
	for i in $(seq 1 300); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		fail "daemon $pid still running 30 s after umount"
		_dfs_is_child "$pid" && kill -9 "$pid" 2>/dev/null || true
		return 0
	fi
	wait "$pid" 2>/dev/null && return 0
	local rc=$?
	[ $rc -eq 0 ] || fail "daemon exited with $rc after umount"
}

# dfs_content_set DIR: the sorted set of SHA-256 sums of every regular file under DIR
# (any name, any depth: sha256sum marks escaped names with a leading '\', stripped here;
# a file that cannot be read fails the pipeline, so nothing is skipped silently).
dfs_content_set() {
	# -execdir: each file is opened relative to its directory, so depth is no limit
	(set -o pipefail
	 find "$1" -type f -execdir sha256sum {} + | cut -d' ' -f1 | sed 's/^\\//' | sort -u)
}

# dfs_all_reachable SRC ORG: every content of SRC is some file's content in ORG.
dfs_all_reachable() {
	dfs_content_set "$1" >"$W/reach.src" || return 1
	dfs_content_set "$2" >"$W/reach.org" || return 1
	[ -s "$W/reach.src" ] || return 1
	if [ -n "$(comm -23 "$W/reach.src" "$W/reach.org")" ]; then
		echo "contents of $1 missing from $2:"; comm -23 "$W/reach.src" "$W/reach.org" | head
		return 1
	fi
}

# dfs_cold_packs STORE: drops STORE's packs from the page cache (a cold read, as a user
# meets it, without dropping every cache of the machine).
dfs_cold_packs() {
	local p
	sync
	for p in "$1"/packs/*/*.pack; do
		dd if="$p" iflag=nocache count=0 status=none
	done
}

# dfs_flip_in STORE FILE [OFF]: flips two bytes of the pack record that holds FILE's bytes
# at offset OFF (default 4096; FILE must be incompressible, so its bytes sit in the pack
# verbatim; which record is first in a pack depends on the order the workers finished in).
dfs_flip_in() {
	local pat p hex
	pat=$(dd if="$2" bs=1 skip="${3:-4096}" count=32 2>/dev/null | xxd -p | tr -d '\n')
	for p in "$1"/packs/*/*.pack; do
		# the first match on a byte boundary (hex digits come in pairs)
		hex=$(xxd -p "$p" | tr -d '\n' | grep -bo "$pat" | cut -d: -f1 |
			while read -r h; do [ $((h % 2)) -eq 0 ] && { echo "$h"; break; }; done)
		[ -n "$hex" ] || continue
		printf '\xff\x00' | dd of="$p" bs=1 seek=$((hex / 2 + 8)) conv=notrunc 2>/dev/null
		return 0
	done
	echo "dfs_flip_in: the bytes of $2 are not in any pack of $1"
	return 1
}

# dfs_sshd: an sshd on 127.0.0.1 on a free port ($port), with a host key and a user key
# made in $W, root's logins by that key only; $rsh is the ssh command that uses them. It
# is stopped by the cleanup. Exits 77 (skip) without openssh-server (.ci/deps.sh).
dfs_sshd() {
	local sshd=${SSHD:-/usr/sbin/sshd} i
	if [ ! -x "$sshd" ] || ! command -v ssh >/dev/null || ! command -v ssh-keygen >/dev/null; then
		echo "skip: needs openssh-server and openssh-client (.ci/deps.sh)"
		exit 77
	fi
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	ssh-keygen -q -t ed25519 -N '' -f "$W/hostkey"
	ssh-keygen -q -t ed25519 -N '' -f "$W/userkey"
	cp "$W/userkey.pub" "$W/authorized_keys"
	chmod 600 "$W/authorized_keys"
	mkdir -p /run/sshd
	cat >"$W/sshd_config" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $W/hostkey
AuthorizedKeysFile $W/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile $W/sshd.pid
EOF
	"$sshd" -D -e -f "$W/sshd_config" 2>"$W/sshd.log" &
	_dfs_pids+=($!)
	rsh="ssh -i $W/userkey -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
	for i in $(seq 1 300); do	# 30 s or more: sshd's start on a loaded host
		$rsh -p "$port" root@127.0.0.1 true 2>/dev/null && return 0
		sleep 0.1
	done
	cat "$W/sshd.log"
	return 1
}

dfs_finish() {
	echo "$_dfs_pass passed, $_dfs_fail failed"
	[ $_dfs_fail -eq 0 ]
}

# dfs_walk_sample TOTAL POINTS: the ops a crash walk tries, as globals step and phase (ops
# phase, phase + step, ... up to TOTAL). CI: about POINTS (or DFS_WALK_POINTS) ops evenly
# spread from a random first op, DFS_WALK_PHASE repeating a run (the caller prints it);
# runs over time cover every op. DFS_SOAK=1: every op.
dfs_walk_sample() {
	local points=${DFS_WALK_POINTS:-$2}
	step=1 phase=1
	if [ "${DFS_SOAK:-0}" != 1 ]; then
		step=$(( ($1 + points - 1) / points ))
		[ "$step" -ge 1 ] || step=1
		phase=${DFS_WALK_PHASE:-$((RANDOM % step + 1))}
		[ "$phase" -le "$step" ] || phase=$step
	fi
}
