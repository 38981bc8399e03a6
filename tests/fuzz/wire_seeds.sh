#!/usr/bin/env bash
# wire_seeds.sh REPLAY BIN DIR: makes the seed corpus of fuzz_wire in DIR/seeds from a real
# remote ingest and a real remote repair (FETCH, MISS) and gate (a stand-in for ssh runs
# `defrag-ingest --serve` here and keeps both directions of each conversation), adds cut
# and flipped copies of them, and replays them all with REPLAY (the fuzz target's
# regression driver).
set -eu
replay=$1 bin=$2 dir=$3
rm -rf "$dir"
mkdir -p "$dir/seeds" "$dir/tree/sub"
head -c 300000 /dev/urandom >"$dir/tree/big"
cp "$dir/tree/big" "$dir/tree/big_copy"
echo small >"$dir/tree/sub/small"
ln -s sub/small "$dir/tree/link"
setfattr -n user.seed -v 1 "$dir/tree/sub/small" 2>/dev/null || true
truncate -s 2M "$dir/tree/sparse"
cat >"$dir/rsh" <<EOS
#!/bin/sh
while [ "\$1" != "--" ]; do shift; done
shift; shift
exec sh -c "tee $dir/seeds/local.\$\$ | \$* | tee $dir/seeds/remote.\$\$"
EOS
chmod +x "$dir/rsh"
"$bin/defrag-ingest" --progress=never --store "$dir/store" -e "$dir/rsh" \
	--remote-cmd "$bin/defrag-ingest" "seedhost:$dir/tree" >/dev/null
# a damaged chunk of "big" (incompressible: its bytes sit in the pack as they are), and a
# file changed there (big, with its copy as it was): --repair asks big (MISS), then
# big_copy (DATA)
python3 - "$dir" <<'PY'
import glob, os, sys
d = sys.argv[1]
pat = open(os.path.join(d, "tree/big"), "rb").read()[4096:4128]
for p in sorted(glob.glob(os.path.join(d, "store/packs/*/*.pack"))):
    b = bytearray(open(p, "rb").read())
    i = b.find(pat)
    if i >= 0:
        b[i + 8] ^= 0xff
        open(p, "wb").write(bytes(b))
        break
else:
    sys.exit("the bytes of big are not in a pack")
PY
printf 'X' | dd of="$dir/tree/big" bs=1 seek=4200 conv=notrunc 2>/dev/null
"$bin/defrag-verify" --store "$dir/store" --against "seedhost:$dir/tree" --name tree --repair \
	-e "$dir/rsh" --remote-cmd "$bin/defrag-ingest" >/dev/null || true
python3 - "$dir/seeds" <<'PY'
import glob, os, random, sys
d = sys.argv[1]
rnd = random.Random(21)
for path in sorted(glob.glob(os.path.join(d, "local.*")) + glob.glob(os.path.join(d, "remote.*"))):
    name = os.path.basename(path).replace(".", "")
    b = open(path, "rb").read()
    # each frame alone, the stream cut at random points, bytes flipped
    pos, i = 0, 0
    while pos + 5 <= len(b):
        n = int.from_bytes(b[pos + 1:pos + 5], "big")
        open(os.path.join(d, "%s-frame%03d" % (name, i)), "wb").write(b[pos:pos + 5 + n])
        pos += 5 + n
        i += 1
    for k in range(20):
        open(os.path.join(d, "%s-cut%02d" % (name, k)), "wb").write(b[:rnd.randrange(len(b))])
        x = bytearray(b)
        for _ in range(1 + k % 4):
            x[rnd.randrange(len(x))] ^= 1 << rnd.randrange(8)
        open(os.path.join(d, "%s-flip%02d" % (name, k)), "wb").write(bytes(x))
PY
echo "seeds: $(ls "$dir/seeds" | wc -l)"
"$replay" "$dir/seeds"
