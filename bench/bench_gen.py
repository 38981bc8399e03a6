#!/usr/bin/env python3
"""bench_gen.py - fast data generators for bench/bench_ingest.sh and bench/bench_mount.sh.

  python3 bench/bench_gen.py text SEED OUTDIR MB NFILES
      NFILES files (OUTDIR/part-K.txt) totalling MB MiB of unique but compressible data:
      the SEED file (e.g. a tar of /usr/include) cut in 4 KiB blocks, each block
      prefixed with a distinct counter line, so no 32 KiB chunk repeats anywhere while
      the compression ratio stays that of the seed text.
  python3 bench/bench_gen.py tree OUTDIR N [PER_DIR]
      N small files (10..40 bytes each), PER_DIR (default 1000) per directory,
      directories nested two levels (OUTDIR/aXX/dYYYY/fN).
"""
import os
import sys


def gen_text(seed_path, outdir, mb, nfiles):
    with open(seed_path, "rb") as f:
        seed = f.read()
    if len(seed) < 1 << 20:
        sys.exit("bench_gen: seed too small")
    blocks = [seed[i:i + 4096] for i in range(0, len(seed), 4096)]
    os.makedirs(outdir, exist_ok=True)
    per_file = mb * 1048576 // nfiles
    counter = 0
    for k in range(nfiles):
        written = 0
        with open(os.path.join(outdir, "part-%d.txt" % k), "wb") as out:
            while written < per_file:
                parts = []
                n = 0
                while n < (8 << 20) and written + n < per_file:
                    b = b"@%x\n" % counter + blocks[counter % len(blocks)]
                    counter += 1
                    parts.append(b)
                    n += len(b)
                buf = b"".join(parts)[: per_file - written]
                out.write(buf)
                written += len(buf)


def gen_tree(outdir, n, per_dir):
    os.makedirs(outdir, exist_ok=True)
    ndirs = (n + per_dir - 1) // per_dir
    for d in range(ndirs):
        dpath = os.path.join(outdir, "a%02d" % (d % 64), "d%04d" % d)
        os.makedirs(dpath, exist_ok=True)
        base = d * per_dir
        for i in range(base, min(base + per_dir, n)):
            fd = os.open(os.path.join(dpath, "f%d" % i), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, b"file %d %d\n" % (i, i * 7919) + b"x" * (i % 24))
            os.close(fd)


def main():
    a = sys.argv[1:]
    if len(a) == 5 and a[0] == "text":
        gen_text(a[1], a[2], int(a[3]), int(a[4]))
    elif len(a) in (3, 4) and a[0] == "tree":
        gen_tree(a[1], int(a[2]), int(a[3]) if len(a) == 4 else 1000)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
