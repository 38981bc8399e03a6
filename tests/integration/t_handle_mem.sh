#!/usr/bin/env bash
# The memory that open directory and file handles hold is bounded (-o handle_mem): with
# allow_other any local user could open one large directory, or one large file (each
# open file holds its extent list), again and again and grow the daemon without bound.
# Past the bound, opendir and open answer ENFILE (logged once); closing handles gives the
# room back.
set -eu
. "$(dirname "$0")/lib.sh"
dfs_setup
command -v python3 >/dev/null || { echo "skip: needs python3"; exit 77; }

src=$W/src
store=$W/store
mnt=$W/mnt
mkdir -p "$src/big" "$mnt"
# 4,000 names of about 60 bytes: a listing of roughly 0.4 MiB per handle
for i in $(seq 1 4000); do : >"$src/big/a-fairly-long-file-name-to-fill-the-listing-$i"; done
# about 1,000 chunks: an extent list of roughly 0.1 MiB per open file
head -c $((64 << 20)) /dev/urandom >"$src/large.bin"
dfs_ingest --store "$store" --name hm "$src" >/dev/null || fail "ingest"
dfs_mount "$store" "$mnt" "handle_mem=2M"

cat >"$W/open.py" <<'PY'
import errno, os, sys, time
d, kind, times = sys.argv[1], sys.argv[2], int(sys.argv[3])
flags = os.O_RDONLY | (os.O_DIRECTORY if kind == "dir" else 0)
fds, refused = [], 0
for i in range(times):
    try:
        fd = os.open(d, flags)
        if kind == "file":
            os.pread(fd, 4096, (i * 1048576) % (64 << 20))  # its extent list is read
        fds.append(fd)
    except OSError as e:
        if e.errno != errno.ENFILE:
            raise
        refused += 1
held = len(fds)
for fd in fds:
    os.close(fd)
# the kernel sends the closes (RELEASE) on its own time and the daemon serves them on
# several threads: a reopen at once may still find the memory held, so ENFILE is
# retried for up to 30 s
for _ in range(300):
    try:
        if kind == "dir":
            n = len(os.listdir(d))
        else:
            with open(d, "rb") as f:
                n = len(f.read())
        break
    except OSError as e:
        if e.errno != errno.ENFILE:
            raise
        time.sleep(0.1)
else:
    n = "ENFILE"
print(held, refused, n)
PY
read -r held refused n < <(python3 "$W/open.py" "$mnt/.sources/hm/big" dir 40)
[ "$held" -ge 2 ] && [ "$held" -le 8 ] && [ "$refused" -ge 30 ] &&
	pass "2 MiB of directory handles: $held held, $refused refused with ENFILE" ||
	fail "held $held, refused $refused"
[ "$n" = 4000 ] && pass "after closing, the directory opens and lists again" ||
	fail "listing after closing: $n entries"
read -r held refused n < <(python3 "$W/open.py" "$mnt/.sources/hm/large.bin" file 200)
[ "$held" -ge 5 ] && [ "$held" -le 60 ] && [ "$refused" -ge 140 ] &&
	pass "2 MiB of open files of 64 MiB: $held held, $refused refused with ENFILE" ||
	fail "files: held $held, refused $refused"
[ "$n" = $((64 << 20)) ] && pass "after closing, the file opens and reads again" ||
	fail "read after closing: $n bytes"
grep -q "refusing more (ENFILE)" "$W/daemon-mnt.log" && [ "$(grep -c 'refusing more' "$W/daemon-mnt.log")" = 1 ] &&
	pass "the refusal is logged once" || fail "log: $(grep -c 'refusing more' "$W/daemon-mnt.log")"
dfs_umount "$mnt"
dfs_finish
