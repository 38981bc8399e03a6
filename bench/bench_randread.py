#!/usr/bin/env python3
"""bench_randread.py - random 4 KiB pread latency (for bench/bench_mount.sh).

  python3 bench/bench_randread.py FILE N [SEED]
Reads N random 4 KiB-aligned blocks of FILE with pread (default readahead, no fadvise),
in one thread. Prints "p50_us p99_us mean_us max_us digest": latencies in microseconds
(time.perf_counter_ns around each pread; Python adds ~1 us) and a SHA-256 of all the
blocks read in order, so two runs with the same SEED over the same content must print
the same digest.
"""
import hashlib
import os
import random
import sys
import time


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    path, n = sys.argv[1], int(sys.argv[2])
    seed = int(sys.argv[3]) if len(sys.argv) == 4 else 1
    fd = os.open(path, os.O_RDONLY)
    nblocks = os.fstat(fd).st_size // 4096
    rng = random.Random(seed)
    offs = [rng.randrange(nblocks) * 4096 for _ in range(n)]
    lat = [0] * n
    blocks = [b""] * n
    clock = time.perf_counter_ns
    pread = os.pread
    for i, off in enumerate(offs):
        t0 = clock()
        b = pread(fd, 4096, off)
        lat[i] = clock() - t0
        blocks[i] = b
    os.close(fd)
    h = hashlib.sha256()
    for b in blocks:
        if len(b) != 4096:
            sys.exit("short read")
        h.update(b)
    lat.sort()
    print("%.1f %.1f %.1f %.1f %s" % (lat[n // 2] / 1e3, lat[min(n - 1, n * 99 // 100)] / 1e3,
                                      sum(lat) / n / 1e3, lat[-1] / 1e3, h.hexdigest()[:16]))


if __name__ == "__main__":
    main()
