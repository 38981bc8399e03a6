#!/usr/bin/env python3
"""redundancy.py MOUNT [LABEL]: the organized tree's apparent size against its distinct
content (each distinct user.defrag.hash counted once), through a defragfs mount.
/.sources is not listed by the root, so os.walk sees the organized tree only."""
import os
import sys

seen, apparent, distinct, files = set(), 0, 0, 0
for dp, _, names in os.walk(sys.argv[1]):
    for f in names:
        p = os.path.join(dp, f)
        if os.path.islink(p) or not os.path.isfile(p):
            continue
        size = os.lstat(p).st_size
        files += 1
        apparent += size
        h = os.getxattr(p, "user.defrag.hash", follow_symlinks=False)
        if h not in seen:
            seen.add(h)
            distinct += size
label = sys.argv[2] + " " if len(sys.argv) > 2 else ""
print("%sorganized: %d files, %.1f MiB apparent, %.1f MiB of distinct content: %.2fx" %
      (label, files, apparent / 2**20, distinct / 2**20,
       apparent / distinct if distinct else 1.0))
