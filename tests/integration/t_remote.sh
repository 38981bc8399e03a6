#!/usr/bin/env bash
# A source on another machine (ssh://USER@HOST:PORT/PATH, HOST:PATH): a real sshd on the
# loopback address, on a free port, with a host key and a user key made here. The remote
# side is this build's defrag-ingest --serve (--remote-cmd). Checked: the view is the
# tree (dfs-treecmp through the mount) and the same as a local ingest's (same files, same
# new bytes, same organized tree); the gate passes; bytes_received is reported; an
# unchanged re-ingest reads nothing there; a protocol version mismatch is a clear error;
# the gate for the remote drive (defrag-verify --against ssh://...) gives the local gate's
# verdicts with no file data crossing; ssh killed mid-run, the rerun finishes bit-exact
# without sending what was committed; Ctrl-C gives exit 130 and the rerun finishes;
# --repair fetches a damaged chunk's bytes from the remote drive (checked against its id);
# --dry-run says how many bytes would cross, prints the plan of a local dry run, and past
# its memory cap samples chunk ids as a local dry run does.
set -eu
. "$(dirname "$0")/lib.sh"
DFS_NEEDS="defrag-ingest defragfs defrag-verify" dfs_setup

# ---- sshd on 127.0.0.1 ($port), keys of its own ($rsh), stopped by the cleanup ----
dfs_sshd || { fail "sshd did not start"; exit 1; }
remote() {	# remote [OPTIONS] SOURCE: defrag-ingest of a remote source through the sshd
	dfs_ingest -e "$rsh" --remote-cmd "$DFS_BIN/defrag-ingest" "$@"
}
jget() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d[sys.argv[2]])' "$@"; }

src=$W/src
mkdir -p "$W/m1" "$W/m2"
"$DFS_BIN/dfs-treegen" "$src" --seed 21 --scale 0.3 >/dev/null

# ---- the first ingest, through ssh://; and the same tree ingested locally ----
remote --store "$W/rs" --name drv --json "ssh://root@127.0.0.1:$port$src" >"$W/r1.json" ||
	fail "remote ingest"
dfs_ingest --store "$W/ls" --name drv --json "$src" >"$W/l1.json" || fail "local ingest"
recv=$(jget "$W/r1.json" bytes_received)
[ "$recv" -gt 0 ] && pass "bytes_received reported ($recv)" || fail "bytes_received: $recv"
for k in files new_stored_bytes new_raw_bytes logical_bytes bytes_read; do
	a=$(jget "$W/r1.json" $k) b=$(jget "$W/l1.json" $k)
	[ "$a" = "$b" ] || fail "$k: remote $a, local $b"
done
pass "the same counts as a local ingest"
dfs_mount "$W/rs" "$W/m1"
dfs_mount "$W/ls" "$W/m2"
"$DFS_BIN/dfs-treecmp" --ignore-atime --ignore-ctime "$src" "$W/m1/.sources/drv" >"$W/cmp.log" 2>&1 &&
	pass "the view is the remote tree" || { head -n 20 "$W/cmp.log"; fail "view differs"; }
"$DFS_BIN/dfs-treecmp" --ignore-atime --ignore-ctime "$W/m2" "$W/m1" >"$W/cmp2.log" 2>&1 &&
	pass "the organized tree is a local ingest's" || { head -n 20 "$W/cmp2.log"; fail "organized tree differs"; }
dfs_umount "$W/m1"
dfs_umount "$W/m2"
"$DFS_BIN/defrag-verify" --store "$W/rs" --against "$src" --name drv >"$W/gate" 2>&1 &&
	pass "the gate passes" || { tail -n 5 "$W/gate"; fail "gate"; }

# ---- re-ingest of the unchanged tree (HOST:PATH form): nothing read there ----
dfs_ingest -e "$rsh -p $port" --remote-cmd "$DFS_BIN/defrag-ingest" --store "$W/rs" --name drv \
	--json "root@127.0.0.1:$src" >"$W/r2.json" || fail "re-ingest"
dfs_ingest --store "$W/ls" --name drv --json "$src" >"$W/l2.json" || fail "local re-ingest"
python3 - "$W/r2.json" "$W/l2.json" <<'EOF' && pass "unchanged re-ingest: nothing read, as a local one" || fail "re-ingest read"
import json, sys
d, l = (json.load(open(f)) for f in sys.argv[1:3])
s = d["sources"][0]
assert d["bytes_read"] == 0, d["bytes_read"]
# hard links' later names are not counted as unchanged files, as for a local source
assert s["unchanged_files"] == l["sources"][0]["unchanged_files"] > 0, (s, l)
EOF
echo "unchanged re-ingest: $(jget "$W/r2.json" bytes_received) bytes received for $(jget "$W/r2.json" files) files"

# ---- a protocol version mismatch: a clear error, exit 1, nothing stored ----
# (DFS_FAULT_WIRE_VERSION exists in DFS_TEST_FAULTS builds only: the sanitizer pass)
if grep -aq DFS_FAULT_WIRE_VERSION "$DFS_BIN/defrag-ingest"; then
	set +e
	dfs_ingest -e "$rsh" --remote-cmd "env DFS_FAULT_WIRE_VERSION=99 $DFS_BIN/defrag-ingest" \
		--store "$W/vs" --name drv "ssh://root@127.0.0.1:$port$src" >/dev/null 2>"$W/ver.err"
	rc=$?
	set -e
	[ $rc -eq 1 ] && grep -q "version mismatch" "$W/ver.err" && grep -q "protocol 99" "$W/ver.err" &&
		pass "version mismatch refused clearly" ||
		{ cat "$W/ver.err"; fail "version mismatch (exit $rc)"; }
else
	echo "skip: the version mismatch needs a DFS_TEST_FAULTS build"
fi

# ---- a remote path that does not exist ----
set +e
remote --store "$W/vs" --name nope "ssh://root@127.0.0.1:$port$W/does-not-exist" >/dev/null 2>"$W/nx.err"
rc=$?
set -e
[ $rc -eq 1 ] && grep -q "does-not-exist: No such file" "$W/nx.err" &&
	pass "a missing remote path is said" || { cat "$W/nx.err"; fail "missing path (exit $rc)"; }

# ---- the gate for the remote drive: metadata and chunk ids cross, no file data ----
vr() { "$DFS_BIN/defrag-verify" --store "$1" --json -e "$rsh" --remote-cmd "$DFS_BIN/defrag-ingest" \
	--against "ssh://root@127.0.0.1:$port$src" --name drv >"$2" 2>"$2.err"; }
vl() { "$DFS_BIN/defrag-verify" --store "$1" --json --against "$src" --name drv >"$2" 2>"$2.err"; }
rc=0; vr "$W/rs" "$W/g1.json" || rc=$?
lrc=0; vl "$W/ls" "$W/gl1.json" || lrc=$?
python3 - "$W/g1.json" "$W/gl1.json" $rc $lrc "$(du -sb "$src" | cut -f1)" <<'EOF' && pass "remote gate, clean drive: passes as the local gate, no data crossed" || { cat "$W/g1.json.err"; fail "remote gate on a clean drive"; }
import json, sys
g, l = (json.load(open(f)) for f in sys.argv[1:3])
rc, lrc, disk = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
print("remote gate: exit %d, %d entries, %d bytes received (the tree: %d bytes on disk)" %
      (rc, g["against_entries"], g["bytes_received"], disk))
assert rc == lrc == 0, (rc, lrc)
assert g["against_entries"] == l["against_entries"] > 0
assert g["bytes_received"] < disk * 0.05
EOF
# one changed file: the same verdict and exit code as the local gate
f1=$(find "$src" -type f -size +20k | sort | head -n 1)
printf 'changed' | dd of="$f1" bs=1 seek=100 conv=notrunc 2>/dev/null
rc=0; vr "$W/rs" "$W/g2.json" || rc=$?
lrc=0; vl "$W/ls" "$W/gl2.json" || lrc=$?
python3 - "$W/g2.json" "$W/gl2.json" $rc $lrc <<'EOF' && pass "remote gate, one changed file: the local gate's verdict" || { cat "$W/g2.json.err"; fail "remote gate on a changed drive"; }
import json, sys
g, l = (json.load(open(f)) for f in sys.argv[1:3])
rc, lrc = int(sys.argv[3]), int(sys.argv[4])
print("remote gate: exit %d, local %d; problems %s / %s" % (rc, lrc, [p.get("path") for p in g["problems"]], [p.get("path") for p in l["problems"]]))
assert rc == lrc == 1, (rc, lrc)
assert len(g["problems"]) == len(l["problems"]) == 1
assert g["problems"][0].get("path") == l["problems"][0].get("path")
assert g["changed_on_drive"] == l["changed_on_drive"] == 1
EOF

# ---- a remote dry run: the placement plan of a local dry run (MIME types computed there) ----
pl=$W/plan
mkdir -p "$pl/photos" "$pl/docs" "$pl/misc" "$pl/code"
printf '\377\330\377\340\000\020JFIF\000' >"$pl/photos/a.jpg"
head -c 5000 /dev/urandom >>"$pl/photos/a.jpg"
printf '%%PDF-1.4\n1 0 obj\n<<>>\nendobj\n' >"$pl/docs/scan"	# a PDF by its bytes only
echo hello >"$pl/docs/notes.txt"
head -c 3000 /dev/urandom >"$pl/misc/blob"
echo 'int main(void) { return 0; }' >"$pl/code/main.c"
remote --store "$W/none" --dry-run --json "ssh://root@127.0.0.1:$port$pl" >"$W/plan-r.json" ||
	fail "remote dry run for the plan"
remote --store "$W/none" --dry-run "ssh://root@127.0.0.1:$port$pl" >"$W/plan-r.txt" ||
	fail "remote dry run for the plan (text)"
dfs_ingest --store "$W/none" --dry-run --json "$pl" >"$W/plan-l.json" || fail "local dry run"
dfs_ingest --store "$W/none" --dry-run "$pl" >"$W/plan-l.txt" || fail "local dry run (text)"
python3 - "$W/plan-r.json" "$W/plan-l.json" <<'EOF2' && pass "remote dry run: the local dry run's placement plan" || fail "remote dry run plan"
import json, sys
r, l = (json.load(open(f)) for f in sys.argv[1:3])
print("remote plan: %s" % [(c["category"], c["files"]) for c in r["categories"]])
assert r["categories"] == l["categories"], (r["categories"], l["categories"])
cats = {c["category"] for c in r["categories"]}
assert len(cats) >= 3 and "documents" in cats, cats
EOF2
[ "$(grep '^  category' "$W/plan-r.txt")" = "$(grep '^  category' "$W/plan-l.txt")" ] &&
	grep -q '^  category documents' "$W/plan-r.txt" && pass "the same plan lines as a local dry run" ||
	{ cat "$W/plan-r.txt" "$W/plan-l.txt"; fail "remote dry run plan lines"; }
[ ! -e "$W/none" ] || fail "a dry run made a store"

# past its memory cap (DFS_DRY_CAP, DFS_TEST_FAULTS builds) a remote dry run samples the
# chunk ids as a local one does, and its estimates stay within 10% of the exact ones
if grep -aq DFS_DRY_CAP "$DFS_BIN/defrag-ingest"; then
	smp=$W/sample
	python3 - "$smp" <<'EOF2'
import os, random, sys
d = sys.argv[1]
os.makedirs(d)
rnd = random.Random(21)	# the same bytes each run: the same chunk ids, the same sample
for i in range(16):
    open(os.path.join(d, "f%02d" % i), "wb").write(rnd.randbytes(4 << 20))
EOF2
	small=(--chunk-min 4K --chunk-avg 8K --chunk-max 32K)
	surl="ssh://root@127.0.0.1:$port$smp"
	remote --store "$W/none" --dry-run --json "${small[@]}" "$surl" >"$W/s-exact.json" ||
		fail "exact remote dry run"
	DFS_DRY_CAP=1024 remote --store "$W/none" --dry-run --json "${small[@]}" "$surl" \
		>"$W/s-sampled.json" || fail "sampled remote dry run"
	python3 - "$W/s-exact.json" "$W/s-sampled.json" <<'EOF2' && pass "a remote dry run past its cap samples, within 10%" || fail "remote dry run sampling"
import json, sys
e, s = (json.load(open(f)) for f in sys.argv[1:3])
print("remote dry run: exact %d unique, would receive %d; sampled (1 in %d) %d, %d" %
      (e["estimated_unique_bytes"], e["would_receive_bytes"], s["estimate_sample_every"],
       s["estimated_unique_bytes"], s["would_receive_bytes"]))
assert e["estimate_sample_every"] == 1 and s["estimate_sample_every"] > 1
for k in ("estimated_unique_bytes", "would_receive_bytes"):
    assert abs(s[k] - e[k]) <= e[k] * 0.10, k
# what crossed: metadata and chunk ids, and SIZE frames only for the sample
assert s["bytes_received"] < e["bytes_received"], (s["bytes_received"], e["bytes_received"])
EOF2
else
	echo "skip: DFS_DRY_CAP needs a DFS_TEST_FAULTS build"
fi

# ---- --repair from the remote drive: a damaged chunk's bytes fetched there (FETCH) ----
rp=$W/rp
mkdir -p "$rp/a" "$rp/b" "$rp/c"
head -c 3M /dev/urandom >"$rp/a/random.bin"
cp "$rp/a/random.bin" "$rp/b/copy.bin"	# the same chunks, two files
seq 1 100000 >"$rp/c/numbers.txt"
echo small >"$rp/c/small"
rurl="ssh://root@127.0.0.1:$port$rp"
remote --store "$W/rps" --name rp "$rurl" >/dev/null || fail "ingest for the repair"
dfs_flip_in "$W/rps" "$rp/a/random.bin" || fail "could not damage the chunk"
vrp() { "$DFS_BIN/defrag-verify" --store "$W/rps" --json -e "$rsh" --remote-cmd "$DFS_BIN/defrag-ingest" \
	--against "$rurl" --name rp "$@"; }
rc=0; vrp >"$W/rp1.json" 2>"$W/rp1.err" || rc=$?
python3 - "$W/rp1.json" $rc <<'EOF2' && pass "remote gate: the damaged chunk is damage in the store" || { cat "$W/rp1.err"; fail "remote gate on a damaged store"; }
import json, sys
g = json.load(open(sys.argv[1]))
assert int(sys.argv[2]) == 1, sys.argv[2]
paths = sorted(p.get("path") for p in g["problems"])
print("remote gate on the damaged store: %s, damaged_in_store %d" % (paths, g["damaged_in_store"]))
assert g["damaged_in_store"] == 2 and paths == ["a/random.bin", "b/copy.bin"], paths
EOF2
# a drive whose bytes changed there repairs nothing (the remote answers MISS)
cp -p "$rp/a/random.bin" "$W/random.keep"
cp -p "$rp/b/copy.bin" "$W/copy.keep"
printf 'X' | dd of="$rp/a/random.bin" bs=1 seek=4200 conv=notrunc 2>/dev/null
printf 'X' | dd of="$rp/b/copy.bin" bs=1 seek=4200 conv=notrunc 2>/dev/null
rc=0; vrp --repair >"$W/rp2.json" 2>"$W/rp2.err" || rc=$?
[ $rc -eq 1 ] && python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["repaired_chunks"] == [], d["repaired_chunks"]' "$W/rp2.json" &&
	pass "a changed remote drive repairs nothing" || { cat "$W/rp2.err"; fail "repair from a changed remote drive (exit $rc)"; }
# the first file (a/random.bin) still changed there, the second as it was: the chunk comes
# from the second; the gate that follows names the first as changed on the drive
cat "$W/copy.keep" >"$rp/b/copy.bin" && touch -r "$W/copy.keep" "$rp/b/copy.bin"
rc=0; vrp --repair >"$W/rp3.json" 2>"$W/rp3.err" || rc=$?
python3 - "$W/rp3.json" $rc <<'EOF2' && pass "--repair fetched the damaged chunk from the remote drive" || { cat "$W/rp3.err"; fail "remote --repair (exit $rc)"; }
import json, sys
d = json.load(open(sys.argv[1]))
r = d["repaired_chunks"]
print("remote --repair: exit %s, repaired %s, %d bytes received" % (sys.argv[2], r, d["bytes_received"]))
assert int(sys.argv[2]) == 1, sys.argv[2]
assert len(r) == 1 and r[0]["from"] == "b/copy.bin", r
# the chunk (incompressible, at most the store's largest chunk) and the gate's metadata
assert 0 < d["bytes_received"] < 3 * 1048576, d["bytes_received"]
assert d["damaged_in_store"] == 0 and d["changed_on_drive"] == 1, d
assert [p.get("path") for p in d["problems"]] == ["a/random.bin"], d["problems"]
EOF2
cat "$W/random.keep" >"$rp/a/random.bin" && touch -r "$W/random.keep" "$rp/a/random.bin"
rc=0; vrp >"$W/rp4.json" 2>"$W/rp4.err" || rc=$?
[ $rc -eq 0 ] && pass "the remote gate passes after the repair" || { cat "$W/rp4.err"; fail "remote gate after the repair (exit $rc)"; }
"$DFS_BIN/defrag-verify" --store "$W/rps" --read-data >"$W/rp5" 2>&1 &&
	pass "verify --read-data is clean after the remote repair" || { cat "$W/rp5"; fail "still damaged"; }

# ---- ssh killed mid-run: the rerun finishes bit-exact, and sends only what was not committed
big=$W/big
mkdir -p "$big"
for i in $(seq 1 300); do head -c 1048576 /dev/urandom >"$big/f$i"; done
burl="ssh://root@127.0.0.1:$port$big"
remote --store "$W/full" --name big --json "$burl" >"$W/full.json" || fail "big ingest"
full=$(jget "$W/full.json" bytes_received)
# a dry run into no store says about what the real run received
remote --store "$W/nostore" --name big --dry-run --json "$burl" >"$W/dry.json" || fail "dry run"
would=$(jget "$W/dry.json" would_receive_bytes)
[ ! -e "$W/nostore" ] && [ $((would * 100)) -ge $((full * 97)) ] &&
	[ $((would * 100)) -le $((full * 103)) ] &&
	pass "dry run: would receive $would bytes (the real run: $full)" ||
	fail "dry run: would receive $would, the real run received $full"
"$DFS_BIN/defrag-ingest" --progress=never -e "$rsh" --remote-cmd "$DFS_BIN/defrag-ingest" \
	--store "$W/ks" --name big "$burl" >/dev/null 2>"$W/kill.err" &
ipid=$!
end=$(($(date +%s) + 600))	# a deadline in time: the sanitizer build on a loaded host
while [ "$(date +%s)" -lt $end ]; do	# past the first commit group (256 MiB)
	b=$(du -sb "$W/ks/packs" 2>/dev/null | cut -f1)
	[ "${b:-0}" -gt 283115520 ] && break
	kill -0 $ipid 2>/dev/null || break
	sleep 0.05
done
sshpid=$(ps -o pid= --ppid $ipid | head -n 1)
[ -n "$sshpid" ] && kill -9 $sshpid
rc=0
wait $ipid || rc=$?
if [ $rc -eq 0 ]; then
	# the run ended before ssh could be killed, or ssh died after the remote side had
	# sent its last byte (a fast build; the sanitizer pass, slower, kills it mid-run):
	# exit 0 is right only if the store already holds the whole source
	dfs_mount "$W/ks" "$W/m1"
	"$DFS_BIN/dfs-treecmp" --ignore-atime --ignore-ctime "$big" "$W/m1/.sources/big" \
		>"$W/cmpk.log" 2>&1 &&
		pass "the run ended before the kill took effect (exit 0): the view is already whole" ||
		{ head -n 20 "$W/cmpk.log"; fail "kill: exit 0, but the view is not the source"; }
	dfs_umount "$W/m1"
else
	[ $rc -eq 1 ] && grep -q "run the same command again" "$W/kill.err" &&
		pass "ssh killed: exit 1, run the same command again" ||
		{ cat "$W/kill.err"; fail "kill: exit $rc"; }
fi
remote --store "$W/ks" --name big --json "$burl" >"$W/rerun.json" || fail "the rerun failed"
python3 - "$W/rerun.json" "$full" <<'EOF' && pass "the rerun sends only the files not committed" || fail "the rerun re-sent committed files"
import json, sys
d = json.load(open(sys.argv[1]))
full = int(sys.argv[2])
s = d["sources"][0]
print("rerun: %d of %d files unchanged, %d bytes received (a full run: %d)" %
      (s["unchanged_files"], s["files"], d["bytes_received"], full))
assert s["files"] == 300 and s["unchanged_files"] > 0
# each committed file (1 MiB of random bytes) is not sent again
assert d["bytes_received"] < full - s["unchanged_files"] * 1048576 * 0.95 + 1048576
EOF
dfs_mount "$W/ks" "$W/m1"
"$DFS_BIN/dfs-treecmp" --ignore-atime --ignore-ctime "$big" "$W/m1/.sources/big" >"$W/cmp3.log" 2>&1 &&
	pass "after the rerun the view is bit-exact" || { head -n 20 "$W/cmp3.log"; fail "view differs"; }
dfs_umount "$W/m1"

# ---- Ctrl-C during a remote ingest: exit 130, what was applied committed, the rerun finishes
"$DFS_BIN/defrag-ingest" --progress=never -e "$rsh" --remote-cmd "$DFS_BIN/defrag-ingest" \
	--store "$W/is" --name big "$burl" >/dev/null 2>"$W/int.err" &
ipid=$!
for _ in $(seq 1 600); do
	b=$(du -sb "$W/is/packs" 2>/dev/null | cut -f1)
	[ "${b:-0}" -gt 16777216 ] && break
	kill -0 $ipid 2>/dev/null || break
	sleep 0.05
done
kill -INT $ipid
rc=0
wait $ipid || rc=$?
[ $rc -eq 130 ] && grep -q "files committed, run the same command to finish" "$W/int.err" &&
	pass "SIGINT: exit 130, the run says what it committed" || { cat "$W/int.err"; fail "SIGINT: exit $rc"; }
remote --store "$W/is" --name big --json "$burl" >"$W/int2.json" && [ "$(jget "$W/int2.json" files)" = 300 ] &&
	pass "the rerun after SIGINT finishes" || fail "the rerun after SIGINT"

dfs_finish
