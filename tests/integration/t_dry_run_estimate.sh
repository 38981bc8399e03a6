#!/usr/bin/env bash
# issue 23, item 4: the dry run answers "how much more disk will this drive take?": against
# the existing store (its chunks count as known), deduplicated across every drive named,
# compression estimated on a sample, and "would add N to the store (now M, K free on its
# filesystem)". On generated data its "would add" is within 10% of the real ingest's
# growth of the packs, for a first drive and for a later backup with changes; an exact
# backup adds nearly nothing; past its memory cap (DFS_DRY_CAP in DFS_TEST_FAULTS builds)
# it samples chunk ids and stays within 10% of the exact count.
set -eu
. "$(dirname "$0")/lib.sh"
dfs_setup

store=$W/store
d1=$W/nvme1
d2=$W/nvme2
mkdir -p "$d1/photos" "$d1/src" "$d2"
for i in $(seq 1 40); do head -c $((150000 + i * 7000)) /dev/urandom >"$d1/photos/p$i.jpg"; done
for i in $(seq 1 60); do
	# compressible, and different in each file
	seq "$i" 3 $((i * 4000 + 60000)) | sed "s/^/line $i: value /" >"$d1/src/t$i.txt"
done
# nvme2: a later backup of nvme1 with edits and new files, plus an exact copy of it
cp -a "$d1" "$d2/backup-2024"
for i in $(seq 1 8); do echo "edit $i" >>"$d2/backup-2024/src/t$i.txt"; done
for i in $(seq 1 10); do head -c 200000 /dev/urandom >"$d2/new$i.bin"; done
seq 1 200000 >"$d2/numbers.txt"
cp -a "$d1" "$W/copy1"

jget() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }
packs() { "$DFS_BIN/defrag-stat" --store "$store" --json | python3 -c \
	"import json,sys; print(json.load(sys.stdin)['pack_bytes'])"; }
within() {	# within WHAT ESTIMATE REAL PERCENT
	python3 - "$@" <<'EOF' && pass "$1: $2 against $3 (within $4%)" || fail "$1: $2 against $3"
import sys
est, real, pct = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
sys.exit(0 if abs(est - real) <= real * pct / 100 else 1)
EOF
}

# a first drive into an empty store
"$DFS_BIN/defrag-ingest" --progress=never --dry-run --json --store "$store" "$d1" >"$W/dry1.json"
[ ! -e "$store" ] && pass "the dry run created no store" || fail "the dry run created the store"
"$DFS_BIN/defrag-ingest" --progress=never --dry-run --store "$store" "$d1" >"$W/dry1.txt"
cat "$W/dry1.txt"
grep -Eq "^would add .* to the store \(now 0 B, .* free on its filesystem\)$" "$W/dry1.txt" &&
	pass "the text says what it would add" || fail "no 'would add' line"
dfs_ingest --store "$store" "$d1" >/dev/null || fail "ingest nvme1"
g1=$(packs)
within "nvme1 would add" "$(jget "$W/dry1.json" would_add_bytes)" "$g1" 10

# the same drive twice in one dry run: deduplicated across the drives named
"$DFS_BIN/defrag-ingest" --progress=never --dry-run --json --store "$W/none" "$d1" "$W/copy1" \
	>"$W/dry2.json"
within "nvme1 and its copy together add what nvme1 adds" \
	"$(jget "$W/dry2.json" estimated_unique_bytes)" "$(jget "$W/dry1.json" estimated_unique_bytes)" 1

# an exact backup of a drive already stored adds nearly nothing
"$DFS_BIN/defrag-ingest" --progress=never --dry-run --json --store "$store" "$W/copy1" \
	>"$W/dry3.json"
c3=$(jget "$W/dry3.json" estimated_unique_bytes)
[ "$c3" -lt 65536 ] && pass "an exact backup: $c3 new content bytes" ||
	fail "an exact backup would add $c3 content bytes"

# a later backup with changes, after the first drive
"$DFS_BIN/defrag-ingest" --progress=never --dry-run --json --store "$store" "$d2" >"$W/dry4.json"
[ "$(jget "$W/dry4.json" store_bytes)" = "$g1" ] && pass "the dry run states the store's size" ||
	fail "store_bytes $(jget "$W/dry4.json" store_bytes), packs $g1"
dfs_ingest --store "$store" "$d2" >/dev/null || fail "ingest nvme2"
g2=$(( $(packs) - g1 ))
within "nvme2 after nvme1 would add" "$(jget "$W/dry4.json" would_add_bytes)" "$g2" 10

# past the memory cap: a sample of the chunk ids (small chunks, a cap of 1024 ids)
big=$W/big
mkdir -p "$big"
for i in $(seq 1 32); do head -c 1048576 /dev/urandom >"$big/r$i"; cp "$big/r$i" "$big/dup$i"; done
small=(--chunk-min 4K --chunk-avg 8K --chunk-max 32K)
"$DFS_BIN/defrag-ingest" --progress=never --dry-run --json "${small[@]}" --store "$W/none" "$big" \
	>"$W/exact.json"
DFS_DRY_CAP=1024 "$DFS_BIN/defrag-ingest" --progress=never --dry-run --json "${small[@]}" \
	--store "$W/none" "$big" >"$W/sampled.json"
every=$(jget "$W/sampled.json" estimate_sample_every)
if [ "$every" -gt 1 ]; then
	[ "$(jget "$W/exact.json" estimate_sample_every)" = 1 ] && pass "exact below the cap" ||
		fail "sampled below the cap"
	within "sampled (1 chunk id in $every) against exact" \
		"$(jget "$W/sampled.json" estimated_unique_bytes)" \
		"$(jget "$W/exact.json" estimated_unique_bytes)" 10
else
	echo "skip: DFS_DRY_CAP needs a DFS_TEST_FAULTS build"
fi
# metadata first: a drive of small text files (most stored inline in their records), then
# a backup of it with 2% of the files edited. The backup's "would add" is nearly all
# metadata: its files' records and tree entries at what the first ingest paid per file,
# and the op log of its new contents and of the ids of contents already stored,
# compressed as a commit would (+13.4% here; the store's average per file said +103%)
m1=$W/small1
m2=$W/small2
python3 - "$m1" <<'PY'
import os, random, sys
random.seed(7)
words = ["alpha", "beta", "gamma", "delta", "kernel", "config", "value", "return", "static"]
for d in range(60):
    p = os.path.join(sys.argv[1], "pkg%02d" % d, "doc")
    os.makedirs(p)
    for i in range(60):
        n = random.randint(5, 250)
        with open(os.path.join(p, "note-%d.txt" % i), "w") as f:
            f.write(" ".join(random.choice(words) for _ in range(n)) + "\n")
PY
mkdir -p "$m2"
cp -a "$m1" "$m2/backup-2024"
find "$m2/backup-2024" -name '*.txt' | sort | awk 'NR % 50 == 0' |
	while read -r f; do echo "edited" >>"$f"; done
ms=$W/mstore
dfs_ingest --store "$ms" "$m1" >/dev/null || fail "ingest small1"
mg1=$("$DFS_BIN/defrag-stat" --store "$ms" --json | python3 -c \
	"import json,sys; print(json.load(sys.stdin)['pack_bytes'])")
"$DFS_BIN/defrag-ingest" --progress=never --dry-run --json --store "$ms" "$m2" >"$W/dry5.json"
"$DFS_BIN/defrag-ingest" --progress=never --dry-run --store "$ms" "$m2" >"$W/dry5.txt"
grep -E "metadata about .* new contents, .* B a file as earlier ingests" "$W/dry5.txt" &&
	pass "the metadata is said in two parts" || { cat "$W/dry5.txt"; fail "metadata line"; }
dfs_ingest --store "$ms" "$m2" >/dev/null || fail "ingest small2"
mg2=$(( $("$DFS_BIN/defrag-stat" --store "$ms" --json | python3 -c \
	"import json,sys; print(json.load(sys.stdin)['pack_bytes'])") - mg1 ))
echo "backup of small files: would add $(jget "$W/dry5.json" would_add_bytes)" \
	"(metadata $(jget "$W/dry5.json" would_add_metadata_bytes), of new contents" \
	"$(jget "$W/dry5.json" new_content_metadata_bytes)), real growth $mg2"
within "a backup of small files would add" "$(jget "$W/dry5.json" would_add_bytes)" "$mg2" 15
dfs_finish
