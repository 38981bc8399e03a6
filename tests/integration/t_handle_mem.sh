#!/usr/bin/env bash
# The memory that open directory handles hold is bounded (-o handle_mem): with
# allow_other any local user could open one large directory again and again and grow
# the daemon without bound. Past the bound, opendir answers ENFILE (logged once); closing
# handles gives the room back.
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
dfs_ingest --store "$store" --name hm "$src" >/dev/null || fail "ingest"
dfs_mount "$store" "$mnt" "handle_mem=2M"

cat >"$W/open.py" <<'PY'
import errno, os, sys
d = sys.argv[1]
fds, refused = [], 0
for i in range(40):
    try:
        fds.append(os.open(d, os.O_RDONLY | os.O_DIRECTORY))
    except OSError as e:
        if e.errno != errno.ENFILE:
            raise
        refused += 1
held = len(fds)
for fd in fds:
    os.close(fd)
again = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
n = len(os.listdir(d))
os.close(again)
print(held, refused, n)
PY
read -r held refused n < <(python3 "$W/open.py" "$mnt/.sources/hm/big")
[ "$held" -ge 2 ] && [ "$held" -le 8 ] && [ "$refused" -ge 30 ] &&
	pass "2 MiB of handles: $held held, $refused refused with ENFILE" ||
	fail "held $held, refused $refused"
[ "$n" = 4000 ] && pass "after closing, the directory opens and lists again" ||
	fail "listing after closing: $n entries"
grep -q "refusing more (ENFILE)" "$W/daemon-mnt.log" && [ "$(grep -c 'refusing more' "$W/daemon-mnt.log")" = 1 ] &&
	pass "the refusal is logged once" || fail "log: $(grep -c 'refusing more' "$W/daemon-mnt.log")"
dfs_umount "$mnt"
dfs_finish
