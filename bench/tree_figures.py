#!/usr/bin/env python3
"""The organized tree's figures, read from a mount (any version of defragfs):

    python3 bench/tree_figures.py MNT [--json]

For every regular file of the organized tree (not /.sources), its category
(user.defrag.category) and origins (user.defrag.origins, one NAME:/path a line, '\\n'
and '\\\\' escaped). Each origin is one source file in the source directory NAME:/dir.
Reports: source directories holding files, those whose files are in more than one
top-level category (the first component: "media" of "media/images"), source files, those
in unsorted/, and source files per category. Independent of the build's own counts
(organize_figures), so the same script measures a tree built before they existed.
"""
import json
import os
import sys
from collections import defaultdict


def unescape(b):
    out, i = bytearray(), 0
    while i < len(b):
        if b[i:i + 1] == b'\\' and i + 1 < len(b):
            out += b'\n' if b[i + 1:i + 2] == b'n' else b[i + 1:i + 2]
            i += 2
        else:
            out.append(b[i])
            i += 1
    return bytes(out)


def main():
    mnt = sys.argv[1].encode()
    dirs = defaultdict(set)
    cats = defaultdict(int)
    files = unsorted = 0
    for root, dnames, fnames in os.walk(mnt):
        if root == mnt and b'.sources' in dnames:
            dnames.remove(b'.sources')
        for f in fnames:
            p = os.path.join(root, f)
            if not os.path.isfile(p) or os.path.islink(p):
                continue
            try:
                cat = os.getxattr(p, 'user.defrag.category').decode()
                origins = os.getxattr(p, 'user.defrag.origins')
            except OSError:
                continue
            top = cat.split('/')[0]
            for o in origins.split(b'\n'):
                if not o:
                    continue
                o = unescape(o)
                dirs[o.rsplit(b'/', 1)[0]].add(top)
                files += 1
                cats[cat] += 1
                unsorted += top == 'unsorted'
    split = sum(1 for s in dirs.values() if len(s) > 1)
    r = {'dirs': len(dirs), 'dirs_split': split,
         'dirs_split_share': 100.0 * split / len(dirs) if dirs else 0.0,
         'files': files, 'files_unsorted': unsorted,
         'files_unsorted_share': 100.0 * unsorted / files if files else 0.0,
         'categories': dict(sorted(cats.items()))}
    if '--json' in sys.argv:
        print(json.dumps(r, indent=1))
    else:
        print('%d of %d source directories split across categories (%.1f%%); '
              '%d of %d files in unsorted/ (%.1f%%)' % (split, len(dirs),
              r['dirs_split_share'], unsorted, files, r['files_unsorted_share']))
        for c, n in r['categories'].items():
            print('  %-40s %8d' % (c or '(none)', n))


main()
