#!/usr/bin/env bash
# wire_seeds.sh REPLAY BIN DIR: makes the seed corpus of fuzz_wire in DIR/seeds from a real
# remote ingest (a stand-in for ssh runs `defrag-ingest --serve` here and keeps both
# directions of the stream), adds cut and flipped copies of it, and replays them all
# with REPLAY (the fuzz target's regression driver).
set -eu
replay=$1 bin=$2 dir=$3
rm -rf "$dir"
mkdir -p "$dir/seeds" "$dir/tree/sub"
head -c 300000 /dev/urandom >"$dir/tree/big"
echo small >"$dir/tree/sub/small"
ln -s sub/small "$dir/tree/link"
setfattr -n user.seed -v 1 "$dir/tree/sub/small" 2>/dev/null || true
truncate -s 2M "$dir/tree/sparse"
cat >"$dir/rsh" <<EOS
#!/bin/sh
while [ "\$1" != "--" ]; do shift; done
shift; shift
exec sh -c "tee $dir/seeds/local | \$* | tee $dir/seeds/remote"
EOS
chmod +x "$dir/rsh"
"$bin/defrag-ingest" --progress=never --store "$dir/store" -e "$dir/rsh" \
	--remote-cmd "$bin/defrag-ingest" "seedhost:$dir/tree" >/dev/null
python3 - "$dir/seeds" <<'PY'
import os, random, sys
d = sys.argv[1]
rnd = random.Random(21)
for name in ("local", "remote"):
    b = open(os.path.join(d, name), "rb").read()
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
