/*
 * links.c - relative symlinks in the organized tree (docs/CLASSIFY.md, "Symlinks").
 *
 * A relative symlink is placed with its target unchanged. Where the rules put its target
 * elsewhere (a link in development/... to ../lib/libfoo.so placed under unsorted/), it
 * no longer leads to it in the organized tree, although it did on the drive. Rewriting
 * the target needs where every entry was placed, kept per entry for the whole build
 * (memory in proportion to the store); this build does not do that. It counts instead:
 * each relative symlink placed by this build is resolved, once every entry is placed,
 * in the organized tree (from its directory) and in its source's view (from its source
 * directory, lexically), and those that resolve on the drive but not in the tree are
 * counted (organize_stats.links_elsewhere), as are those already dangling on the drive.
 *
 * A component that is itself a symlink is not followed: such a link counts as resolved.
 * The placer owns all of it.
 *
 * SPDX-License-Identifier: MIT
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "organize_int.h"

struct org_link {
	uint64_t dir;		/* the organized directory holding the link */
	uint64_t src_root;	/* its source's root (SRC view) */
	uint8_t *src_dir;	/* its source-relative directory ("" at the root) */
	size_t src_dir_len;
	uint8_t *target;
	size_t target_len;
};

struct org_links {
	struct org_link *v;
	size_t n, cap;
};

int org_links_note(struct org *o, uint64_t dir, const uint8_t *src_path, size_t src_len,
		   const struct store_inode *src)
{
	struct org_links *l;
	struct org_link *k;
	const uint8_t *slash;

	if (o->dry_run || !src->target.len || src->target.p[0] == '/')
		return 0;
	if (!o->links && !(o->links = calloc(1, sizeof(*o->links))))
		return -ENOMEM;
	l = o->links;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct org_link *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	k = &l->v[l->n];
	slash = memrchr(src_path, '/', src_len);
	k->dir = dir;
	k->src_root = o->src->root_ino;
	k->src_dir_len = slash ? (size_t)(slash - src_path) : 0;
	k->src_dir = malloc(k->src_dir_len + 1);
	k->target = malloc(src->target.len);
	if (!k->src_dir || !k->target) {
		free(k->src_dir);
		free(k->target);
		return -ENOMEM;
	}
	memcpy(k->src_dir, src_path, k->src_dir_len);
	memcpy(k->target, src->target.p, src->target.len);
	k->target_len = src->target.len;
	l->n++;
	return 0;
}

/* The next component of @p[*pos..len) into @c/@cl; false at the end. */
static bool next_comp(const uint8_t *p, size_t len, size_t *pos, const uint8_t **c, size_t *cl)
{
	while (*pos < len && p[*pos] == '/')
		(*pos)++;
	if (*pos >= len)
		return false;
	*c = p + *pos;
	while (*pos < len && p[*pos] != '/')
		(*pos)++;
	*cl = (size_t)(p + *pos - *c);
	return true;
}

/*
 * Walks @path from @dir: 1 resolved (or not known: a symlink on the way, a parent this
 * build did not place), 0 not there, -errno. @up: a directory's parent, or false.
 */
static int walk(struct org *o, uint64_t dir, uint64_t root, const uint8_t *path, size_t len,
		bool (*up)(struct org *, uint64_t, uint64_t *))
{
	const uint8_t *c;
	size_t pos = 0, cl;

	while (next_comp(path, len, &pos, &c, &cl)) {
		uint64_t child;
		uint8_t t;
		int rc;

		if (cl == 1 && c[0] == '.')
			continue;
		if (cl == 2 && c[0] == '.' && c[1] == '.') {
			if (dir != root && !up(o, dir, &dir))
				return 1;	/* not known */
			continue;
		}
		rc = store_txn_lookup(o->tx, dir, c, cl, &child, &t);
		if (rc == -ENOENT || rc == -ENAMETOOLONG)
			return 0;
		if (rc < 0)
			return rc;
		if (t == DT_LNK)
			return 1;	/* not followed */
		if (t != DT_DIR) {
			size_t rest = pos;

			/* a file in the middle of the path: the path leads nowhere */
			return next_comp(path, len, &rest, &c, &cl) ? 0 : 1;
		}
		dir = child;
	}
	return 1;
}

static bool org_up(struct org *o, uint64_t dir, uint64_t *parent)
{
	return org_wit_parent(o, dir, parent);
}

static bool no_up(struct org *o, uint64_t dir, uint64_t *parent)
{
	(void)o;
	(void)dir;
	(void)parent;
	return false;
}

/*
 * @path from the source root @root, ".." taken lexically (the source's directories hold
 * no parent links): as walk.
 */
static int walk_lexical(struct org *o, uint64_t root, const uint8_t *path, size_t len)
{
	size_t *ends = malloc((len / 2 + 2) * sizeof(*ends)), n = 0, pos = 0, cl;
	uint8_t *norm = malloc(len + 1);
	size_t nl = 0;
	const uint8_t *c;
	int rc;

	if (!ends || !norm) {
		free(ends);
		free(norm);
		return -ENOMEM;
	}
	while (next_comp(path, len, &pos, &c, &cl)) {
		if (cl == 1 && c[0] == '.')
			continue;
		if (cl == 2 && c[0] == '.' && c[1] == '.') {
			if (n)	/* above the root is the root */
				nl = --n ? ends[n - 1] : 0;
			continue;
		}
		if (nl)
			norm[nl++] = '/';
		memcpy(norm + nl, c, cl);
		nl += cl;
		ends[n++] = nl;
	}
	rc = walk(o, root, root, norm, nl, no_up);
	free(ends);
	free(norm);
	return rc;
}

int org_links_check(struct org *o)
{
	struct org_links *l = o->links;
	struct dfs_buf p;
	int rc = 0;

	if (!l)
		return 0;
	dfs_buf_init(&p, ORG_PATH_MAX);
	for (size_t i = 0; i < l->n && rc >= 0; i++) {
		struct org_link *k = &l->v[i];
		int in_tree, on_drive;

		o->stats->links_relative++;
		/* on the drive: the link's directory, then its target, from the source root */
		dfs_buf_clear(&p);
		dfs_buf_append(&p, k->src_dir, k->src_dir_len);
		dfs_buf_put_u8(&p, '/');
		dfs_buf_append(&p, k->target, k->target_len);
		if (p.err) {
			rc = p.err;
			break;
		}
		on_drive = walk_lexical(o, k->src_root, p.data, p.len);
		in_tree = walk(o, k->dir, STORE_ROOT_INO, k->target, k->target_len, org_up);
		if (on_drive < 0 || in_tree < 0) {
			rc = on_drive < 0 ? on_drive : in_tree;
			break;
		}
		if (!on_drive)
			o->stats->links_dangling++;
		else if (!in_tree)
			o->stats->links_elsewhere++;
	}
	dfs_buf_release(&p);
	return rc < 0 ? rc : 0;
}

void org_links_release(struct org *o)
{
	struct org_links *l = o->links;

	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].src_dir);
		free(l->v[i].target);
	}
	free(l->v);
	free(l);
	o->links = NULL;
}
