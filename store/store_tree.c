/*
 * store_tree.c - a walk of a directory tree of the index (store_walk_tree, store.h):
 * every entry below a directory, depth first, each directory's entries in name order.
 *
 * The levels are kept on the heap (one open store_dir_iter and the length of the path per
 * level), never on the C stack, so a tree of any depth is walked; the caller bounds it.
 *
 * Threads: the caller's; one walk per call. Errors: 0, the callback's non-zero return,
 * or -errno (-ENOMEM, the index's).
 *
 * SPDX-License-Identifier: MIT
 */
#include "store.h"

#include <errno.h>
#include <stdlib.h>

struct tframe {
	struct store_dir_iter *di;
	size_t base;		/* the directory's path: the first base bytes of the path */
};

int store_walk_tree(struct store *st, uint64_t dir, struct dfs_buf *path,
		    int (*fn)(void *arg, const struct dfs_buf *path, size_t depth, uint64_t ino,
			      uint8_t dtype),
		    void *arg)
{
	struct tframe *fr = NULL;
	size_t n = 0, cap = 0, base = path->len;
	uint64_t next = dir;
	int rc = 0;

	for (;;) {
		const uint8_t *nm;
		size_t nl;
		uint64_t child;
		uint8_t t;

		if (next) {	/* enter it */
			if (n == cap) {
				size_t c = cap ? cap * 2 : 64;
				struct tframe *x = realloc(fr, c * sizeof(*fr));

				if (!x) {
					rc = -ENOMEM;
					break;
				}
				fr = x;
				cap = c;
			}
			fr[n].base = path->len;
			rc = store_dir_open(st, next, NULL, 0, &fr[n].di);
			if (rc < 0)
				break;
			n++;
			next = 0;
		}
		if (!n)
			break;
		rc = store_dir_next(fr[n - 1].di, &nm, &nl, &child, &t);
		if (rc <= 0) {	/* this level is done (or failed) */
			store_dir_close(fr[n - 1].di);
			path->len = fr[--n].base;
			if (rc < 0 || !n)
				break;
			continue;
		}
		path->len = fr[n - 1].base;
		dfs_buf_put_u8(path, '/');
		dfs_buf_append(path, nm, nl);
		if (path->err) {
			rc = path->err;
			break;
		}
		rc = fn(arg, path, n, child, t);
		if (rc < 0 || rc > 1)
			break;
		if (rc == 1)
			next = child;
		rc = 0;
	}
	while (n) {
		store_dir_close(fr[n - 1].di);
		n--;
	}
	free(fr);
	path->len = base;
	return rc;
}
