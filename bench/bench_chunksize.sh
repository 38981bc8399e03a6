#!/usr/bin/env bash
# bench_chunksize.sh - chooses the chunk size: dedup ratio vs index entries vs MB/s at
# averages of 16 KiB .. 1 MiB (min = avg/4, max = avg*4, normalized level 2), on a corpus of
# versioned data built from this machine and removed at exit.
#   bash bench/bench_chunksize.sh [BUILD_DIR] [AVG...]
# Corpus (under /tmp, never committed): v1 = copies of /usr/include, /usr/share/doc,
# /usr/lib/python3.11 and /usr/lib/postgresql; v2 = v1 with 5% of files edited (half get a
# line inserted mid-file, half 16 bytes overwritten in place), 1% deleted, 1% added;
# v3 = the same again from v2; v1.tar = a tar of v1 beside the loose trees.
# Per average: `bench_store chunk` (cut + SHA-256 on one core, data in memory, best of 3,
# beside its memcpy baseline; unique chunks by id), then a real `defrag-ingest` into a
# fresh store (wall time, 2 jobs) and the on-disk RocksDB size of each column family
# (the ingest leaves flushed SST files; each SST names its column family). A second store
# holds v1.tar alone: one large file, so its index bytes per chunk (chunk entry, content
# reference, Bloom filter) and its mean chunk size give the projection for 20 TB (20e12
# bytes) of unique data in large files; Bloom RAM is projected at 10 bits per chunk key.
# Prints tab-separated rows; docs/BENCHMARKS.md holds the table made from them.
set -eu
# the corpora sit beside the stores, on their filesystem (defrag-ingest(8), Guards)
export DEFRAGFS_ALLOW_SAME_FILESYSTEM=1
build=${1:-build-bench}
shift || true
avgs=${*:-16K 64K 128K 256K 1M}
bin=$(cd "$build/bin" && pwd)
w=$(mktemp -d /tmp/defragfs-chunksize.XXXXXX)
trap 'rm -rf "$w"' EXIT
c=$w/corpus
mkdir -p "$c/v1"

for d in /usr/include /usr/share/doc /usr/lib/python3.11 /usr/lib/postgresql; do
	[ -d "$d" ] && cp -a "$d" "$c/v1/"
done
edit() {	# edit SRC DST SEED: DST = SRC with small edits
	cp -a "$1" "$2"
	python3 - "$2" "$3" <<'EOF'
import os, random, sys
root, seed = sys.argv[1], int(sys.argv[2])
rng = random.Random(seed)
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs
               if os.path.isfile(os.path.join(d, f)) and not os.path.islink(os.path.join(d, f)))
for p in files:
    r = rng.random()
    if r < 0.01:
        os.unlink(p)
    elif r < 0.035:
        b = open(p, 'rb').read()
        nl = b.find(b'\n', len(b) // 2)
        at = nl + 1 if nl >= 0 else len(b) // 2
        open(p, 'wb').write(b[:at] + b'/* edited in version %d */\n' % seed + b[at:])
    elif r < 0.06:
        with open(p, 'r+b') as f:
            n = os.path.getsize(p)
            f.seek(rng.randrange(n) if n else 0)
            f.write(rng.randbytes(16))
    elif r < 0.07:
        b = open(p, 'rb').read()
        open(p + '.new%d' % seed, 'wb').write(b'added in version %d\n' % seed + b[::-1])
EOF
}
edit "$c/v1" "$c/v2" 2
edit "$c/v2" "$c/v3" 3
tar -cf "$c/v1.tar" -C "$c" v1
mkdir "$w/big"
ln "$c/v1.tar" "$w/big/v1.tar"
total=$(du -sb "$c" | cut -f1)
echo "# corpus: $(find "$c" -type f | wc -l) files, $((total / 1048576)) MiB, $(date -u +%F)"

sst_sizes() {	# sst_sizes INDEX_DIR -> "cf bytes" lines
	python3 - "$1" <<'EOF'
import glob, os, re, sys, collections
tot = collections.Counter()
for f in glob.glob(os.path.join(sys.argv[1], '*.sst')):
    b = open(f, 'rb').read()
    m = re.search(rb'name(default|chunks|contents|inodes|dirents|sources|srcmap|packs)[^a-z]', b)
    tot[m.group(1).decode() if m else '?'] += os.path.getsize(f)
print(sum(tot.values()), tot['chunks'], tot['contents'],
      ','.join('%s=%d' % kv for kv in sorted(tot.items())))
EOF
}

printf 'avg\tbytes\tchunks\tunique_chunks\tunique_bytes\tdedup\tcuthash_mbs\tmemcpy_mbs'
printf '\tingest_s\tingest_mbs\tstore_chunks\tindex_bytes\tchunks_cf_bytes\tcontents_cf_bytes'
printf '\tbig_chunks\tbig_mean_kib\tbig_index_b_per_chunk\tchunks_cf_b_per_chunk'
printf '\tproj20tb_chunks_M\tproj20tb_index_gb\tproj20tb_bloom_gb\tcfs\n'
tarsz=$(stat -c %s "$c/v1.tar")
for a in $avgs; do
	n=$(numfmt --from=iec "$a")
	mn=$((n / 4)) mx=$((n * 4))
	read -r _ _ bytes chunks uch ub ch cpy < <("$bin/bench_store" chunk --avg "$n" \
		--min "$mn" --max "$mx" --reps 3 "$c" | tail -n 1)
	t0=$(date +%s.%N)
	"$bin/defrag-ingest" --store "$w/s" --name corpus --progress=never \
		--chunk-min "$mn" --chunk-avg "$n" --chunk-max "$mx" "$c" >/dev/null
	t1=$(date +%s.%N)
	read -r sch _ < <("$bin/bench_store" index "$w/s" | tail -n 1)
	read -r itot icf icont cfs < <(sst_sizes "$w/s/index")
	secs=$(echo "$t1 - $t0" | bc -l)
	rm -rf "$w/s"
	"$bin/defrag-ingest" --store "$w/s" --name big --progress=never \
		--chunk-min "$mn" --chunk-avg "$n" --chunk-max "$mx" "$w/big" >/dev/null
	read -r bch _ < <("$bin/bench_store" index "$w/s" | tail -n 1)
	read -r btot bcf _ _ < <(sst_sizes "$w/s/index")
	rm -rf "$w/s"
	nproj=$(echo "20 * 10^12 * $bch / $tarsz" | bc -l)
	printf '%s\t%s\t%s\t%s\t%s\t%.3f\t%s\t%s\t%.2f\t%.1f\t%s\t%s\t%s\t%s' "$a" "$bytes" \
		"$chunks" "$uch" "$ub" "$(echo "$bytes / $ub" | bc -l)" "$ch" "$cpy" "$secs" \
		"$(echo "$total / 1048576 / $secs" | bc -l)" "$sch" "$itot" "$icf" "$icont"
	printf '\t%s\t%.1f\t%.1f\t%.1f\t%.0f\t%.1f\t%.2f\t%s\n' "$bch" \
		"$(echo "$tarsz / 1024 / $bch" | bc -l)" "$(echo "$btot / $bch" | bc -l)" \
		"$(echo "$icf / $sch" | bc -l)" "$(echo "$nproj / 10^6" | bc -l)" \
		"$(echo "$nproj * $btot / $bch / 10^9" | bc -l)" \
		"$(echo "$nproj * 10 / 8 / 10^9" | bc -l)" "$cfs"
done
