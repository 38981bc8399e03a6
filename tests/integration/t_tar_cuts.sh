#!/usr/bin/env bash
# Issue 20 (store size): a tar archive beside its extracted tree is stored about once. The
# cuts around tar members (ingest/tarcut.c) make each member's chunks those of the loose
# file: a GNU tar and a pax tar of a tree, ingested after the tree, add little to the
# store's unique chunk bytes (< 1.2x the tree alone; with --tar-floor 0, the plain
# chunking, they add more than half again, so the check can fail); defrag-verify --against
# passes for the tree and the tars; the tars and the tree read back bit-exact through the
# mount; a truncated tar and a tar with a corrupt header are stored bit-exact too. One
# member (9 MiB) is larger than the ingest's read window. With an sshd (openssh-server):
# the same tars through a remote source (--serve cuts them the same way: the same unique
# bytes as the local ingest), and the remote gate (chunk ids only) passes for them.
set -eu
. "$(dirname "$0")/lib.sh"
DFS_NEEDS="defrag-ingest defragfs defrag-verify defrag-stat" dfs_setup

tree=$W/tree
tars=$W/tars
mkdir -p "$tree" "$tars" "$W/mnt"
python3 - "$tree" <<'PY'
import os, random, sys
root = sys.argv[1]
r = random.Random(2020)
words = ["".join(r.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(r.randint(2, 9)))
         for _ in range(3000)]
def text(n):
    out, size = [], 0
    while size < n:
        w = r.choice(words)
        out.append(w)
        size += len(w) + 1
    return (" ".join(out))[:n]
for i in range(160):
    d = os.path.join(root, "d%02d" % (i % 12), "sub%d" % (i % 3))
    os.makedirs(d, exist_ok=True)
    # mostly 3 KB .. 250 KB (files of one or two chunks: the plain chunking of a tar shares
    # none of their chunks with the loose files), a few small (inline when loose)
    n = r.choice([300, 1500]) if i % 10 == 0 else int(3000 * (80 ** r.random()))
    with open(os.path.join(d, "f%03d.txt" % i), "w") as f:
        f.write(text(n))
long = os.path.join(root, "long-" + "x" * 60, "name-" + "y" * 60)
os.makedirs(long)
with open(os.path.join(long, "deep-file-with-a-long-name-" + "z" * 40 + ".txt"), "w") as f:
    f.write(text(40000))
# a member larger than the ingest's 8 MiB read window
with open(os.path.join(root, "big.txt"), "w") as f:
    f.write(text(9 << 20))
open(os.path.join(root, "empty"), "w").close()
os.symlink("d00/sub0/f000.txt", os.path.join(root, "link"))
os.link(os.path.join(root, "d01", "sub1", "f001.txt"), os.path.join(root, "hard"))
PY
tar -C "$W" --format=gnu -cf "$tars/gnu.tar" tree
tar -C "$W" --format=posix -cf "$tars/pax.tar" tree
tar -tvf "$tars/gnu.tar" | grep -q "long-xxx" || fail "the gnu tar lacks the long name"

jget() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$@"; }
unique() {	# unique STORE: its unique chunk bytes
	"$DFS_BIN/defrag-stat" --store "$1" --json >"$W/stat.json" && jget "$W/stat.json" unique_bytes
}

# ---- the tree, then the tars: with the cuts (default), and without (--tar-floor 0) ----
for v in cuts plain; do
	opt=()
	[ $v = plain ] && opt=(--tar-floor 0)
	dfs_ingest --store "$W/$v" "${opt[@]}" --name loose "$tree" >/dev/null ||
		fail "$v: ingest tree"
	eval "u1_$v=$(unique "$W/$v")"
	dfs_ingest --store "$W/$v" --name tars "$tars" >/dev/null || fail "$v: ingest tars"
	eval "u2_$v=$(unique "$W/$v")"
done
echo "unique chunk bytes: tree $u1_cuts, +tars $u2_cuts (plain: $u1_plain, +tars $u2_plain)"
[ "$u1_cuts" = "$u1_plain" ] && pass "no tar in the tree: the same chunks either way" ||
	fail "the tree alone: $u1_cuts bytes with cuts, $u1_plain without"
[ $((u2_cuts * 10)) -lt $((u1_cuts * 12)) ] &&
	pass "two tars beside their tree add < 20% ($u1_cuts -> $u2_cuts)" ||
	fail "the tars added too much: $u1_cuts -> $u2_cuts"
[ $((u2_plain * 10)) -gt $((u1_plain * 15)) ] &&
	pass "without the cuts they add > 50% ($u1_plain -> $u2_plain): the check can fail" ||
	fail "plain chunking already dedups the tars: $u1_plain -> $u2_plain"
grep -q "^cdc_tar_floor 0$" "$W/plain/config" && grep -q "^cdc_tar_floor 2049$" "$W/cuts/config" &&
	pass "the floor is in the store's config" || fail "config: $(grep tar "$W"/*/config)"
# a creation option for an existing store: ignored, and said so where it differs
mkdir -p "$W/again"
echo again >"$W/again/f"
"$DFS_BIN/defrag-ingest" --progress=never --store "$W/plain" --tar-floor 2049 --zstd-level 3 \
	--name again "$W/again" >/dev/null 2>"$W/again.err" || fail "ingest with --tar-floor into a store that has one"
grep -q "warning: --tar-floor 2049 ignored: .*plain keeps 0 (set when it was created)" \
	"$W/again.err" && grep -q "^cdc_tar_floor 0$" "$W/plain/config" &&
	pass "--tar-floor on an existing store: ignored with a warning" ||
	{ cat "$W/again.err"; fail "--tar-floor on an existing store"; }
! grep -q "zstd-level" "$W/again.err" && pass "an option that agrees with the store: no warning" ||
	fail "warned of --zstd-level 3 on a level 3 store"

# ---- broken tars: stored bit-exact (the finder stops, plain FastCDC after) ----
mkdir -p "$W/broken"
head -c 300000 "$tars/gnu.tar" >"$W/broken/truncated.tar"
cp "$tars/pax.tar" "$W/broken/corrupt.tar"
# the third header block's checksum field: no longer a valid header
off=$(python3 - "$W/broken/corrupt.tar" <<'PY'
import sys
d = open(sys.argv[1], "rb").read()
n, off = 0, 0
while off + 512 <= len(d):
    h = d[off:off + 512]
    if h[257:262] == b"ustar":
        n += 1
        if n == 3:
            print(off + 148)
            break
    size = int(h[124:136].split(b"\0")[0] or b"0", 8)
    off += 512 + (size + 511) // 512 * 512
PY
)
printf '7' | dd of="$W/broken/corrupt.tar" bs=1 seek="$off" conv=notrunc status=none
dfs_ingest --store "$W/cuts" --name broken "$W/broken" >/dev/null || fail "ingest broken tars"

# ---- the gate, and the bytes through the mount ----
for s in loose:$tree tars:$tars broken:$W/broken; do
	"$DFS_BIN/defrag-verify" --store "$W/cuts" --against "${s#*:}" --name "${s%%:*}" \
		>"$W/gate-${s%%:*}" 2>&1 && pass "defrag-verify --against ${s%%:*}" ||
		{ tail -n 5 "$W/gate-${s%%:*}"; fail "gate ${s%%:*}"; }
done
dfs_mount "$W/cuts" "$W/mnt" || fail "mount"
ok=1
for f in gnu.tar pax.tar; do
	cmp "$tars/$f" "$W/mnt/.sources/tars/$f" || ok=0
done
for f in truncated.tar corrupt.tar; do
	cmp "$W/broken/$f" "$W/mnt/.sources/broken/$f" || ok=0
done
(cd "$tree" && find . -type f) | while read -r f; do
	cmp "$tree/$f" "$W/mnt/.sources/loose/$f" || echo "differs: $f"
done >"$W/cmp.log"
[ $ok = 1 ] && [ ! -s "$W/cmp.log" ] && pass "tars and tree bit-exact through the mount" ||
	{ head "$W/cmp.log"; fail "bytes differ through the mount"; }
dfs_umount "$W/mnt"

# ---- a remote source cuts the same way (the remote gate compares content ids) ----
if [ -x "${SSHD:-/usr/sbin/sshd}" ] && command -v ssh >/dev/null; then
	dfs_sshd || { fail "sshd did not start"; dfs_finish; }
	dfs_ingest --store "$W/remote" --name loose "$tree" >/dev/null || fail "remote: ingest tree"
	dfs_ingest -e "$rsh" --remote-cmd "$DFS_BIN/defrag-ingest" --store "$W/remote" \
		--name tars "ssh://root@127.0.0.1:$port$tars" >/dev/null || fail "remote ingest"
	u=$(unique "$W/remote")
	[ "$u" = "$u2_cuts" ] && pass "a remote source: the same chunks as a local one" ||
		fail "remote: $u unique bytes, local $u2_cuts"
	"$DFS_BIN/defrag-verify" -e "$rsh" --remote-cmd "$DFS_BIN/defrag-ingest" --store "$W/cuts" \
		--against "ssh://root@127.0.0.1:$port$tars" --name tars >"$W/rgate" 2>&1 &&
		pass "the remote gate (content ids) passes for tars ingested locally" ||
		{ tail -n 5 "$W/rgate"; fail "remote gate"; }
else
	echo "(no sshd: the remote part is not run)"
fi
dfs_finish
