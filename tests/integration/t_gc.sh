#!/usr/bin/env bash
# defrag-stat --by-source, defrag-gc after defrag-forget: the space of what only the
# forgotten source referenced (--by-source's "only here", gc's dry run) comes back (what the dry run promised, within 1 MiB: record headers, the gc's own
# META record and pack directory), verify (and --read-data) is clean, every kept
# file reads back bit-exact, and defrag-recover after the gc rebuilds an index whose
# views tree-compare equal with the same totals. Chunks swept from packs that were not
# rewritten stay dropped in a rebuilt index (ENC_OP_DROP) and come back when stored
# again. Mounted readers get the right bytes across a gc that rewrites their pack: one
# streaming a file while the gc runs, one that never followed the writer (its first read
# finds the old pack removed and catches up).
set -eu
. "$(dirname "$0")/lib.sh"
DFS_NEEDS="defrag-ingest defrag-forget defrag-gc defrag-verify defrag-recover defrag-stat defragfs" dfs_setup

store=$W/store
mnt=$W/mnt
m2=$W/m2
mkdir -p "$mnt" "$m2" "$W/a/docs" "$W/a/only" "$W/b/docs" "$W/b/mine" "$W/c"
for i in $(seq 1 12); do seq 1 $((i * 4000)) >"$W/a/docs/t$i.txt"; done
cp -a "$W/a/docs/." "$W/b/docs/"
for i in $(seq 1 10); do head -c $((i * 200000)) /dev/urandom >"$W/a/only/r$i.bin"; done
for i in $(seq 1 6); do head -c $((i * 150000)) /dev/urandom >"$W/b/mine/m$i.bin"; done
for i in $(seq 1 5); do head -c $((i * 100000)) /dev/urandom >"$W/c/c$i.bin"; done
dfs_ingest --store "$store" --name a "$W/a" || fail "ingest a"
dfs_ingest --store "$store" --name b "$W/b" || fail "ingest b"
G=$DFS_BIN/defrag-gc
j() { jq -r ".$1" "$2"; }
packbytes() { du -sb "$store/packs" | cut -f1; }

# nothing to reclaim yet
"$G" --store "$store" --json >"$W/g0.json" || fail "gc on a fresh store"
[ "$(j chunks_swept "$W/g0.json")" = 0 ] && [ "$(j packs_rewritten "$W/g0.json")" = 0 ] &&
	pass "a fresh store has no garbage" || { cat "$W/g0.json"; fail "garbage in a fresh store"; }

# defrag-stat --by-source: what forgetting a frees, from the same marking as gc
"$DFS_BIN/defrag-stat" --store "$store" --by-source --json >"$W/bs0.json"
only_a=$(jq -r '.sources[] | select(.name == "a") | .unique_stored_bytes' "$W/bs0.json")
shared_a=$(jq -r '.sources[] | select(.name == "a") | .shared_stored_bytes' "$W/bs0.json")
shared_b=$(jq -r '.sources[] | select(.name == "b") | .shared_stored_bytes' "$W/bs0.json")
[ "$shared_a" -gt 0 ] && [ "$shared_a" = "$shared_b" ] && [ "$(j garbage_stored_bytes "$W/bs0.json")" = 0 ] &&
	pass "--by-source: a and b share the docs, no garbage" || { cat "$W/bs0.json"; fail "--by-source"; }
"$DFS_BIN/defrag-stat" --store "$store" --by-source >"$W/bs0.txt"
grep -q "only here:" "$W/bs0.txt" && grep -q "garbage:" "$W/bs0.txt" &&
	pass "--by-source text report" || { cat "$W/bs0.txt"; fail "--by-source text"; }

"$DFS_BIN/defrag-forget" --store "$store" a >/dev/null || fail "forget a"
"$DFS_BIN/defrag-stat" --store "$store" --by-source --json >"$W/bs1.json"
before=$(packbytes)
"$G" --store "$store" --dry-run --json >"$W/dry.json" || fail "gc --dry-run"
[ "$(packbytes)" = "$before" ] && pass "dry run changes nothing" || fail "dry run wrote"
promised=$(j swept_stored_bytes "$W/dry.json")
[ "$promised" -gt 2000000 ] && [ "$promised" = "$only_a" ] &&
	[ "$(j garbage_stored_bytes "$W/bs1.json")" = "$promised" ] &&
	pass "gc's dry run promises what --by-source said a alone holds ($promised)" ||
	{ cat "$W/dry.json"; fail "dry run promised $promised, --by-source said $only_a"; }
b_after=$(jq -r '.sources[] | select(.name == "b") | .unique_stored_bytes' "$W/bs1.json")
b_before=$(jq -r '.sources[] | select(.name == "b") | .unique_stored_bytes' "$W/bs0.json")
[ "$b_after" = $((b_before + shared_b)) ] &&
	pass "--by-source: once a is forgotten, what b shared with it is b's alone" ||
	fail "b: $b_before + $shared_b shared, now $b_after"
"$G" --store "$store" --json >"$W/g1.json" || { cat "$W/g1.json"; fail "gc"; }
after=$(packbytes)
freed=$((before - after))
[ "$(j swept_stored_bytes "$W/g1.json")" = "$promised" ] &&
	[ "$(j packs_rewritten "$W/g1.json")" -ge 1 ] &&
	[ $((freed - promised)) -lt 1048576 ] && [ $((promised - freed)) -lt 1048576 ] &&
	pass "gc freed $freed bytes on disk for $promised promised" ||
	{ cat "$W/g1.json"; fail "gc freed $freed of $promised"; }
"$DFS_BIN/defrag-stat" --store "$store" --by-source --json >"$W/st1.json"
[ "$(j garbage_stored_bytes "$W/st1.json")" = 0 ] && pass "no garbage left after gc" ||
	fail "garbage left after gc: $(j garbage_stored_bytes "$W/st1.json")"
[ "$(j pack_bytes "$W/st1.json")" = "$(j pack_bytes_after "$W/g1.json")" ] &&
	[ "$(j pack_bytes "$W/st1.json")" -le "$after" ] &&
	pass "defrag-stat's totals follow the gc" || { cat "$W/st1.json"; fail "stat totals"; }
"$DFS_BIN/defrag-verify" --store "$store" --read-data >"$W/v1" 2>&1 &&
	pass "verify --read-data clean after gc" || { tail "$W/v1"; fail "verify after gc"; }
dfs_mount "$store" "$mnt"
"$DFS_BIN/dfs-treecmp" --ignore-atime --ignore-ctime "$W/b" "$mnt/.sources/b" >"$W/cmp" 2>&1 &&
	pass "b reads back bit-exact after gc" || { head "$W/cmp"; fail "b differs after gc"; }
dfs_all_reachable "$W/b" "$mnt" && pass "b's files are all in the organized tree" ||
	fail "organized tree lost files"

# defrag-recover after the gc rebuilds the same views and totals
cp -a "$store" "$W/rec"
"$DFS_BIN/defrag-recover" --store "$W/rec" >"$W/rec.out" 2>&1 && grep -q "^nothing was lost" "$W/rec.out" &&
	pass "recover after gc: nothing lost" || { cat "$W/rec.out"; fail "recover after gc"; }
dfs_mount "$W/rec" "$m2"
"$DFS_BIN/dfs-treecmp" "$mnt" "$m2" >"$W/cmp2" 2>&1 &&
	"$DFS_BIN/dfs-treecmp" "$mnt/.sources/b" "$m2/.sources/b" >>"$W/cmp2" 2>&1 &&
	[ ! -e "$m2/.sources/a" ] &&
	pass "recovered index: views tree-compare equal" || { head "$W/cmp2"; fail "recovered views"; }
dfs_umount "$m2"
"$DFS_BIN/defrag-stat" --store "$W/rec" --json >"$W/st2.json"
for k in chunks stored_bytes unique_bytes pack_bytes; do
	[ "$(j $k "$W/st1.json")" = "$(j $k "$W/st2.json")" ] || fail "recovered $k differs"
done
pass "recovered totals equal the gc's"
dfs_umount "$mnt"
rm -rf "$W/rec"

# swept but not rewritten: a rebuilt index drops the chunks too; stored again, they return
dfs_ingest --store "$store" --name c "$W/c" || fail "ingest c"
"$DFS_BIN/defrag-forget" --store "$store" c >/dev/null || fail "forget c"
"$G" --store "$store" --live-threshold 1 --json >"$W/g2.json" || fail "gc without rewrite"
[ "$(j chunks_swept "$W/g2.json")" -gt 0 ] && [ "$(j packs_rewritten "$W/g2.json")" = 0 ] &&
	pass "threshold 1%: swept, nothing rewritten" || { cat "$W/g2.json"; fail "gc --live-threshold 1"; }
"$DFS_BIN/defrag-stat" --store "$store" --json >"$W/st3.json"
cp -a "$store" "$W/rec"
"$DFS_BIN/defrag-recover" --store "$W/rec" >"$W/rec.out" 2>&1 || { cat "$W/rec.out"; fail "recover 2"; }
"$DFS_BIN/defrag-stat" --store "$W/rec" --json >"$W/st4.json"
[ "$(j chunks "$W/st3.json")" = "$(j chunks "$W/st4.json")" ] &&
	[ "$(j stored_bytes "$W/st3.json")" = "$(j stored_bytes "$W/st4.json")" ] &&
	pass "recover keeps swept chunks out although their records remain" ||
	fail "recover: $(j chunks "$W/st4.json") chunks, gc left $(j chunks "$W/st3.json")"
rm -rf "$W/rec"
dfs_ingest --store "$store" --name c "$W/c" || fail "ingest c again"
cp -a "$store" "$W/rec"
"$DFS_BIN/defrag-recover" --store "$W/rec" >"$W/rec.out" 2>&1 || { cat "$W/rec.out"; fail "recover 3"; }
"$DFS_BIN/defrag-verify" --store "$W/rec" --read-data >"$W/v3" 2>&1 &&
	pass "stored again after a drop: the rebuilt index has it" || { tail "$W/v3"; fail "verify rec 3"; }
dfs_mount "$W/rec" "$m2"
"$DFS_BIN/dfs-treecmp" --ignore-atime --ignore-ctime "$W/c" "$m2/.sources/c" >"$W/cmp3" 2>&1 &&
	pass "c reads back from the rebuilt index" || { head "$W/cmp3"; fail "c after recover"; }
dfs_umount "$m2"
rm -rf "$W/rec"

# readers across a gc that rewrites their pack
mkdir -p "$W/d" "$W/e"
head -c 6000000 /dev/urandom >"$W/d/big.bin"
head -c 3000000 /dev/urandom >"$W/d/other.bin"
head -c 20000000 /dev/urandom >"$W/e/huge.bin"
dfs_ingest --store "$store" --name d "$W/d" || fail "ingest d"
dfs_ingest --store "$store" --name e "$W/e" || fail "ingest e"
"$DFS_BIN/defrag-forget" --store "$store" e >/dev/null || fail "forget e"
"$G" --store "$store" --dry-run --max-rewrite 1 --json >"$W/budget.json" || fail "gc --max-rewrite"
[ "$(j packs_rewritten "$W/budget.json")" = 0 ] && [ "$(j packs_over_budget "$W/budget.json")" -ge 1 ] &&
	pass "--max-rewrite leaves packs over the budget for later" ||
	{ cat "$W/budget.json"; fail "--max-rewrite 1"; }
dfs_mount "$store" "$mnt" "follow_interval=1"
dfs_mount "$store" "$m2" "follow_interval=3600"	# never follows: stays before the gc
python3 - "$mnt/.sources/d/big.bin" "$W/streamed" "$W/streaming" <<'PY' &
import sys, time
with open(sys.argv[1], 'rb') as f, open(sys.argv[2], 'wb') as o:
    while True:
        b = f.read(131072)
        if not b:
            break
        o.write(b)
        open(sys.argv[3], 'a').close()	# it has the file open and has read: the gc may run
        time.sleep(0.05)
PY
reader=$!
for _ in $(seq 1 600); do [ -e "$W/streaming" ] && break; sleep 0.05; done
[ -e "$W/streaming" ] || fail "the streaming reader did not start within 30 s"
"$G" --store "$store" --json >"$W/g3.json" || fail "gc with readers"
[ "$(j packs_rewritten "$W/g3.json")" -ge 1 ] && pass "the readers' pack was rewritten" ||
	{ cat "$W/g3.json"; fail "no pack rewritten under the readers"; }
wait $reader || fail "streaming reader failed"
cmp -s "$W/streamed" "$W/d/big.bin" && pass "a reader streaming through the gc got the right bytes" ||
	fail "streamed bytes differ"
cmp -s "$m2/.sources/d/other.bin" "$W/d/other.bin" &&
	pass "a reader behind the gc reads a removed pack's file right (catch-up)" ||
	fail "reader behind the gc: wrong bytes"
if grep -q "missing, also after" "$W"/daemon-m2.log; then fail "reader logged a missing pack"; fi
dfs_umount "$m2"
dfs_umount "$mnt"
"$DFS_BIN/defrag-verify" --store "$store" --read-data >"$W/v4" 2>&1 &&
	pass "verify --read-data clean at the end" || { tail "$W/v4"; fail "verify at the end"; }
dfs_finish
