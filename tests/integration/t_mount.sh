#!/usr/bin/env bash
# The mount as users meet it: `mount -t fuse.defragfs`, an fstab line (mount -T), every
# write refused, xattrs, parallel readers getting the right bytes, holes visible, a
# flipped byte in a pack giving EIO on that file only (and defrag-verify naming it),
# no process left after umount.
set -eu
. "$(dirname "$0")/lib.sh"
dfs_setup

src=$W/src
store=$W/store
mnt=$W/mnt
mkdir -p "$mnt" "$src/docs" "$src/big"
head -c 3M /dev/urandom >"$src/big/random.bin"
for i in $(seq 1 20); do echo "small file $i" >"$src/docs/note$i.txt"; done
seq 1 200000 >"$src/docs/numbers.txt"
cp "$src/docs/numbers.txt" "$src/docs/numbers-copy.txt"
truncate -s 64M "$src/big/sparse"; printf data | dd of="$src/big/sparse" bs=1 seek=1000000 conv=notrunc 2>/dev/null
dfs_ingest --store "$store" --name m "$src" >/dev/null || fail "ingest"

# 1. mount -t fuse.defragfs: mount(8) runs the helper /sbin/mount.fuse.defragfs (a link to
# defragfs, installed by the package) with a clean PATH; point it at this build.
helper=/usr/sbin/mount.fuse.defragfs
if [ ! -e "$helper" ] || [ -L "$helper" ]; then
	[ -e "$helper" ] && cp -P "$helper" "$W/helper.saved"
	ln -sfn "$DFS_BIN/defragfs" "$helper"
	restore_helper() { rm -f "$helper"; [ -e "$W/helper.saved" ] && cp -P "$W/helper.saved" "$helper"; true; }
else
	restore_helper() { true; }
fi
if mount -t fuse.defragfs "$store" "$mnt" 2>"$W/mount.err"; then
	cmp -s "$src/docs/numbers.txt" "$mnt/.sources/m/docs/numbers.txt" &&
		pass "mount -t fuse.defragfs serves the bytes" || fail "mount -t: wrong bytes"
	grep -q " $mnt fuse.defragfs ro,nosuid,nodev" /proc/mounts && pass "mounted ro,nosuid,nodev" ||
		{ grep "$mnt" /proc/mounts; fail "mount options"; }
	# the daemon mount(8) started (daemonized: not our child) must end cleanly after the
	# umount; a crash shows as the kernel's "segfault" line with its pid
	dpid=$(pgrep -f -- "defrag.* $store $mnt" | head -n 1 || true)
	umount "$mnt" && pass "umount" || fail "umount"
	if [ -n "$dpid" ] && dmesg >/dev/null 2>&1; then
		for i in $(seq 1 300); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.1; done
		if kill -0 "$dpid" 2>/dev/null; then
			fail "the mount -t daemon ($dpid) still runs 30 s after umount"
		elif dmesg | grep -E "\[$dpid\]: segfault" >"$W/segv"; then
			fail "the mount -t daemon crashed at exit: $(cat "$W/segv")"
		else
			pass "the mount -t daemon ended without a crash"
		fi
	else
		echo "note: no daemon pid or no dmesg: exit not checked"
	fi
else
	cat "$W/mount.err"; fail "mount -t fuse.defragfs"
fi

# 2. an fstab line, used through mount -T (never the host's /etc/fstab)
printf '%s %s fuse.defragfs ro,default_permissions,allow_other,x-systemd.automount 0 0\n' \
	"$store" "$mnt" >"$W/fstab"
if mount -T "$W/fstab" "$mnt" 2>"$W/fstab.err"; then
	[ -f "$mnt/.sources/m/docs/note1.txt" ] && pass "fstab mount works" || fail "fstab mount empty"
	umount "$mnt" || fail "umount (fstab)"
else
	cat "$W/fstab.err"; fail "mount -T fstab"
fi
# the daemon mount(8) started ends on its own time after the umount (its threads joined,
# under ASan its leak check): waited for, 30 s at most
for _ in $(seq 1 300); do pgrep -f "defragfs $store" >/dev/null || break; sleep 0.1; done
pgrep -f "defragfs $store" >/dev/null && fail "a daemon is left 30 s after umount" ||
	pass "no daemon left after umount"

# 3. allow_other without default_permissions is refused
if "$DFS_BIN/defragfs" "$store" "$mnt" -o allow_other 2>"$W/ao.err"; then
	umount "$mnt"; fail "allow_other alone was accepted"
else
	grep -q default_permissions "$W/ao.err" && pass "allow_other needs default_permissions" ||
		fail "allow_other: unclear message"
fi
# a mount point inside the store is refused
mkdir -p "$store/inside"
"$DFS_BIN/defragfs" "$store" "$store/inside" 2>/dev/null && { umount "$store/inside"; fail "mount inside the store accepted"; } ||
	pass "mount point inside the store refused"
rmdir "$store/inside"

# started with the usual soft limit of 1024 open files, the daemon raises it (its index
# files all stay open: a large index outgrows 1024)
nofile=$(ulimit -Sn)
hard=$(ulimit -Hn)
low=false
if [ "$hard" = unlimited ] || [ "$hard" -gt 1024 ]; then
	ulimit -Sn 1024
	low=true
fi
dfs_mount "$store" "$mnt"
ulimit -Sn "$nofile"
var=_dfs_pid_$(echo "$mnt" | md5sum | cut -c1-8)
soft=$(awk '/^Max open files/ { print $4 }' "/proc/${!var}/limits")
if $low; then
	[ "$soft" = unlimited ] || [ "$soft" -gt 1024 ] &&
		pass "open files limit raised (1024 -> $soft, hard $hard)" ||
		fail "open files limit still $soft (hard $hard)"
fi
# 4. read-only in every way
f=$mnt/.sources/m/docs/note1.txt
for op in "touch $mnt/new" "mkdir $mnt/d" "rm $f" "mv $f $f.2" "chmod 600 $f" \
	  "ln $f $mnt/l" "ln -s x $mnt/s" "setfattr -n user.x -v 1 $f" "truncate -s 0 $f"; do
	if $op 2>/dev/null; then fail "allowed: $op"; else pass "refused: ${op%% *}"; fi
done
sh -c "echo x >> $f" 2>/dev/null && fail "append allowed" || pass "refused: append"

# 5. the organized view and its xattrs
org=$(find "$mnt" -path "$mnt/.sources" -prune -o -type f -name numbers.txt -print | head -n 1)
[ -n "$org" ] && pass "organized copy found: ${org#$mnt/}" || fail "no organized numbers.txt"
if [ -n "$org" ]; then
	getfattr --only-values -n user.defrag.origins "$org" 2>/dev/null | grep -q '^m:/docs/numbers.txt$' &&
		pass "user.defrag.origins" || fail "user.defrag.origins"
	[ "$(getfattr --only-values -n user.defrag.hash "$org" 2>/dev/null | wc -c)" = 64 ] &&
		pass "user.defrag.hash" || fail "user.defrag.hash"
	getfattr --only-values -n user.defrag.category "$org" >/dev/null 2>&1 && pass "user.defrag.category" ||
		fail "user.defrag.category"
fi
# a subdirectory lists "." and ".." (a ".." with inode number 0 was dropped by readdir(3))
[ "$(ls -a "$mnt/.sources/m/docs" | head -n 2 | tr '\n' ' ')" = ". .. " ] &&
	pass "readdir lists . and .. in a subdirectory" ||
	{ ls -a "$mnt/.sources/m/docs" | head -n 3; fail "no .. in a subdirectory"; }
# 6. holes are visible through lseek, and read as zeros
cmp -s "$src/big/sparse" "$mnt/.sources/m/big/sparse" && pass "sparse file bytes" || fail "sparse bytes"
du_src=$(du -k "$src/big/sparse" | cut -f1); du_mnt=$(du -k "$mnt/.sources/m/big/sparse" | cut -f1)
[ "$du_mnt" -le $((du_src + 256)) ] && pass "sparse file occupies ${du_mnt}K (source ${du_src}K)" ||
	fail "sparse file blocks: $du_mnt vs $du_src"
# 7. parallel readers
readers=()
for i in 1 2 3 4; do
	( for r in 1 2 3; do cmp -s "$src/big/random.bin" "$mnt/.sources/m/big/random.bin" || exit 1; done ) &
	readers+=($!)
done
ok=1; for j in "${readers[@]}"; do wait "$j" || ok=0; done
[ $ok = 1 ] && pass "4 parallel readers x3 got the right bytes" || fail "parallel readers"
dfs_umount "$mnt"

# 8. corruption: flipped bytes inside the random file's first chunk
dfs_flip_in "$store" "$src/big/random.bin" || fail "could not damage the chunk"
dfs_mount "$store" "$mnt"
if cat "$mnt/.sources/m/big/random.bin" >/dev/null 2>"$W/eio.err"; then
	fail "a corrupt chunk was read without error"
else
	grep -q "Input/output error" "$W/eio.err" && pass "corrupt chunk: EIO" || { cat "$W/eio.err"; fail "corrupt: wrong error"; }
fi
cmp -s "$src/docs/numbers.txt" "$mnt/.sources/m/docs/numbers.txt" && pass "other files still read" ||
	fail "other files affected"
grep -q "unreadable" "$W"/daemon-mnt.log && pass "daemon logged the damaged chunk" || fail "no log line"
dfs_umount "$mnt"
restore_helper
if "$DFS_BIN/defrag-verify" --store "$store" >"$W/verify.out" 2>&1; then
	fail "verify missed the damage"
else
	grep -q "random.bin" "$W/verify.out" && pass "verify names the damaged file" ||
		{ cat "$W/verify.out"; fail "verify did not name the file"; }
fi

# 9. options: -o max_read=N reaches the kernel; permission checks (and ACL enforcement)
# only with default_permissions
dfs_mount "$store" "$mnt" "max_read=131072"
grep " $mnt " /proc/mounts | grep -q "max_read=131072" &&
	cmp -s "$src/docs/numbers.txt" "$mnt/.sources/m/docs/numbers.txt" &&
	pass "-o max_read=131072" || fail "-o max_read"
grep " $mnt " /proc/mounts | grep -q default_permissions &&
	fail "default_permissions on without the option" || pass "no permission checks unless asked"
# the mount's read-ahead (the kernel's bdi of the mount): 4 MiB unless -o read_ahead says
# otherwise; 0 leaves the kernel's 128 KiB
ra_kb() { cat "/sys/class/bdi/$(mountpoint -d "$mnt")/read_ahead_kb"; }
[ "$(ra_kb)" = 4096 ] && pass "read-ahead of the mount 4 MiB by default" ||
	fail "read-ahead of the mount: $(ra_kb) KiB, not 4096"
dfs_umount "$mnt"
dfs_mount "$store" "$mnt" "read_ahead=1M"
[ "$(ra_kb)" = 1024 ] && cmp -s "$src/docs/numbers.txt" "$mnt/.sources/m/docs/numbers.txt" &&
	pass "-o read_ahead=1M" || fail "-o read_ahead=1M: $(ra_kb) KiB"
dfs_umount "$mnt"
dfs_mount "$store" "$mnt" "read_ahead=0"
[ "$(ra_kb)" = 128 ] && pass "-o read_ahead=0 leaves the kernel's 128 KiB" ||
	fail "-o read_ahead=0: $(ra_kb) KiB"
dfs_umount "$mnt"
# a mount point whose name /proc/self/mountinfo escapes (space, tab, backslash)
odd="$W/ra sp$(printf '\t')x\\y"
mkdir -p "$odd"
dfs_mount "$store" "$odd"
[ "$(cat "/sys/class/bdi/$(mountpoint -d "$odd")/read_ahead_kb")" = 4096 ] &&
	pass "read-ahead set at a mount point with a space, a tab and a backslash" ||
	fail "read-ahead at an escaped mount point"
dfs_umount "$odd"
rc=0
"$DFS_BIN/defragfs" "$store" "$mnt" -f -o read_ahead=2G >"$W/ra.out" 2>&1 || rc=$?
[ "$rc" = 2 ] && grep -q "invalid read_ahead" "$W/ra.out" && ! mountpoint -q "$mnt" &&
	pass "-o read_ahead=2G refused (exit 2)" || { cat "$W/ra.out"; fail "read_ahead=2G: exit $rc"; }
# the index's table files brought into the page cache once requests come (-o index_warm,
# on by default), and left to the reads with index_warm=0: a store with an index of many
# pages, its table files dropped from the page cache, then a lookup through the mount
mkdir -p "$W/many/d"
for i in $(seq 1 3000); do echo "file $i of many" >"$W/many/d/f$i"; done
dfs_ingest --store "$W/manystore" --name many "$W/many" >/dev/null || fail "ingest of many"
idx_res() {	# resident and total bytes of the index's table files
	fincore --bytes --noheadings --output RES,SIZE "$W"/manystore/index/*.sst |
		awk '{r += $1; t += $2} END {print r + 0, t + 0}'
}
idx_cold() {
	local f
	for f in "$W"/manystore/index/*.sst; do dd if="$f" iflag=nocache count=0 status=none; done
}
warmed() {	# warmed: every page of the table files resident within 10 s of a lookup
	local i r t
	for i in $(seq 1 100); do
		stat "$mnt/.sources/many/d/f$i" >/dev/null
		read -r r t < <(idx_res)
		[ "$r" -ge "$t" ] && return 0
		sleep 0.1
	done
	echo "index resident: $r of $t bytes"
	return 1
}
dfs_mount "$W/manystore" "$mnt"
idx_cold
read -r r0 t0 < <(idx_res)
[ "$t0" -gt 200000 ] && [ "$r0" -lt $((t0 / 2)) ] || fail "index not dropped: $r0 of $t0 bytes"
warmed && pass "index warm-up: the index's files in the page cache after a lookup" ||
	fail "index warm-up"
dfs_umount "$mnt"
dfs_mount "$W/manystore" "$mnt" "index_warm=0"
idx_cold
for i in $(seq 1 20); do stat "$mnt/.sources/many/d/f$i" >/dev/null; sleep 0.05; done
read -r r1 t1 < <(idx_res)
[ "$r1" -lt $((t1 / 2)) ] && pass "-o index_warm=0: only what the reads need ($r1 of $t1 bytes)" ||
	fail "-o index_warm=0: $r1 of $t1 bytes resident"
dfs_umount "$mnt"
rc=0
"$DFS_BIN/defragfs" "$store" "$mnt" -f -o index_warm=lots >"$W/iw.out" 2>&1 || rc=$?
[ "$rc" = 2 ] && grep -q "invalid index_warm" "$W/iw.out" && ! mountpoint -q "$mnt" &&
	pass "-o index_warm=lots refused (exit 2)" || { cat "$W/iw.out"; fail "index_warm=lots: exit $rc"; }
# -o rotational=1 (a disk with a head): a small read takes a chunk's header and its data
# in one request (test_store counts the requests); the same bytes as rotational=0 and the
# source, over 64 random 4 KiB reads of an incompressible file (FADV_RANDOM: each read a
# request of its own). A store of its own: the one above has a damaged chunk.
mkdir -p "$W/rot/src"
head -c 4M /dev/urandom >"$W/rot/src/random.bin"
dfs_ingest --store "$W/rotstore" --name r "$W/rot/src" >/dev/null || fail "ingest of rot"
small_reads() {	# small_reads FILE: the SHA-256 of 64 random 4 KiB blocks of FILE
	python3 - "$1" <<'PY'
import hashlib, os, random, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
rng, h = random.Random(5), hashlib.sha256()
for _ in range(64):
    h.update(os.pread(fd, 4096, rng.randrange(os.fstat(fd).st_size // 4096) * 4096))
print(h.hexdigest())
PY
}
want=$(small_reads "$W/rot/src/random.bin")
for r in 1 0; do
	dfs_mount "$W/rotstore" "$mnt" "rotational=$r"
	[ "$(small_reads "$mnt/.sources/r/random.bin")" = "$want" ] &&
		pass "-o rotational=$r: small reads serve the source's bytes" ||
		fail "-o rotational=$r: small reads differ"
	dfs_umount "$mnt"
done
rc=0
"$DFS_BIN/defragfs" "$store" "$mnt" -f -o rotational=yes >"$W/rot.out" 2>&1 || rc=$?
[ "$rc" = 2 ] && grep -q "invalid rotational" "$W/rot.out" && ! mountpoint -q "$mnt" &&
	pass "-o rotational=yes refused (exit 2)" || { cat "$W/rot.out"; fail "rotational=yes: exit $rc"; }
dfs_mount "$store" "$mnt" "default_permissions"
grep " $mnt " /proc/mounts | grep -q default_permissions && pass "-o default_permissions" ||
	fail "-o default_permissions missing"
dfs_umount "$mnt"

# 10. a read reply made of many pieces (the daemon sends cached chunks without copying
# them, up to 128 pieces, then falls back to one buffer): 1-4 KiB chunks, holes between
# data, 1 MiB read requests (read-ahead raised for this mount)
mkdir -p "$W/small"
head -c 3000000 /dev/urandom >"$W/small/pieces.bin"
dd if=/dev/urandom of="$W/small/pieces.bin" bs=1k seek=6000 count=700 conv=notrunc 2>/dev/null
truncate -s 9000000 "$W/small/pieces.bin"
dfs_ingest --store "$W/s-small" --name p --chunk-min 1024 --chunk-avg 2048 \
	--chunk-max 4096 "$W/small" >/dev/null || fail "ingest with small chunks"
dfs_mount "$W/s-small" "$mnt"
# without 1 MiB requests the reply never has more than 128 pieces: the fallback untested
echo 1024 >"/sys/class/bdi/$(mountpoint -d "$mnt")/read_ahead_kb" ||
	fail "cannot raise the mount's read-ahead (needs root)"
dd if="$mnt/.sources/p/pieces.bin" bs=1M 2>/dev/null | cmp -s - "$W/small/pieces.bin" &&
	pass "1 MiB reads of 1-4 KiB chunks and holes" || fail "many-piece reads differ"
dfs_umount "$mnt"
dfs_mount "$W/s-small" "$mnt"
dd if="$mnt/.sources/p/pieces.bin" bs=4k skip=1400 count=300 2>/dev/null |
	cmp -s - <(dd if="$W/small/pieces.bin" bs=4k skip=1400 count=300 2>/dev/null) &&
	pass "small reads across data and hole" || fail "small reads differ"
dfs_umount "$mnt"
dfs_finish
