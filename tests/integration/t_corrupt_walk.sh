#!/usr/bin/env bash
# Corruption walk: a byte flipped anywhere in the committed part of any pack (headers,
# chunk records, metadata records) is found by defrag-verify (exit 1), and through the
# mount every file still reads either exactly its bytes or EIO: never wrong bytes, and
# the daemon keeps running. CI takes a sample of offsets (fewer under ASan);
# DFS_SOAK=1 takes DFS_SOAK_FLIPS of them (default 300). The first flips aim at a pack
# header and at the end of a pack (its last record is a commit's META record), the rest
# anywhere. DFS_SEED=N replays a run (the seed is printed).
set -eu
. "$(dirname "$0")/lib.sh"
DFS_NEEDS="defrag-ingest defrag-verify defragfs" dfs_setup

src=$W/src
mnt=$W/mnt
mkdir -p "$src/a" "$src/b" "$mnt"
for i in $(seq 1 12); do head -c $((i * 37000)) /dev/urandom >"$src/a/r$i"; done
for i in $(seq 1 8); do seq 1 $((i * 20000)) >"$src/b/t$i.txt"; done
cp "$src/a/r5" "$src/b/dup-of-r5"
echo tiny >"$src/b/tiny"
dfs_ingest --store "$W/clean" --name c "$src" >/dev/null || fail "ingest"

flips=12
[ "${DFS_SANITIZED:-0}" = 1 ] && flips=6
[ "${DFS_SOAK:-0}" = 1 ] && flips=${DFS_SOAK_FLIPS:-300}
packs=$(cd "$W/clean" && ls packs/*/*.pack)
total=0
for p in $packs; do total=$((total + $(stat -c %s "$W/clean/$p"))); done
seed=${DFS_SEED:-$(( $(date +%s) % 100000 ))}
RANDOM=$seed
echo "packs: $(echo "$packs" | wc -w), $total bytes; $flips flips; DFS_SEED=$seed"

missed=0 wrong=0 crashed=0 eio=0
for n in $(seq 1 "$flips"); do
	# a random byte of the concatenated packs (bash's RANDOM is 15 bits: combine two)
	r=$(( (RANDOM * 32768 + RANDOM) % total ))
	for p in $packs; do
		sz=$(stat -c %s "$W/clean/$p")
		[ $r -lt "$sz" ] && break
		r=$((r - sz))
	done
	case $n in
	1) r=$((RANDOM % 64)) ;;		# the pack header
	2) r=$((sz - 1 - RANDOM % 32)) ;;	# the last record: a commit's metadata
	esac
	rm -rf "$W/s"
	cp -a "$W/clean" "$W/s"
	old=$(od -An -tu1 -j "$r" -N1 "$W/s/$p" | tr -d ' ')
	printf "\\x$(printf %02x $(( (old + 1 + RANDOM % 255) % 256 )))" |
		dd of="$W/s/$p" bs=1 seek="$r" conv=notrunc 2>/dev/null
	if "$DFS_BIN/defrag-verify" --store "$W/s" --read-data >"$W/v" 2>&1; then
		echo "flip $n: $p @$r not found by verify"; missed=$((missed + 1))
	fi
	dfs_mount "$W/s" "$mnt"
	for f in $(cd "$src" && find . -type f); do
		rc=0
		cmp -s "$src/$f" "$mnt/.sources/c/$f" 2>/dev/null || rc=$?
		if [ $rc -eq 1 ]; then
			# differ: allowed only as a read error, never as other bytes
			if cat "$mnt/.sources/c/$f" >/dev/null 2>&1; then
				echo "flip $n: $p @$r: $f read WRONG bytes"; wrong=$((wrong + 1))
			else
				eio=$((eio + 1))
			fi
		elif [ $rc -eq 2 ]; then
			# an error: it must be EIO on a file that is there, never a lost name
			if cat "$mnt/.sources/c/$f" 2>&1 >/dev/null | grep -q "Input/output error"; then
				eio=$((eio + 1))
			else
				echo "flip $n: $p @$r: $f: not EIO:" \
					"$(cat "$mnt/.sources/c/$f" 2>&1 >/dev/null | head -n 1)"
				wrong=$((wrong + 1))
			fi
		fi
	done
	mountpoint -q "$mnt" || { echo "flip $n: daemon gone"; crashed=$((crashed + 1)); }
	dfs_umount "$mnt"
done
echo "$flips flips: $eio file reads failed with an error (expected), $missed missed by" \
	"verify, $wrong wrong reads, $crashed daemon losses"
[ $missed -eq 0 ] && pass "verify found every flip" || fail "verify missed $missed flips"
[ $wrong -eq 0 ] && pass "no read ever returned wrong bytes" || fail "$wrong wrong reads"
[ $crashed -eq 0 ] && pass "the daemon survived every flip" || fail "$crashed daemon losses"
dfs_finish
