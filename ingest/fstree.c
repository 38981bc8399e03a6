/*
 * fstree.c - a live directory as a struct cls_tree (see fstree.h).
 *
 * A handle is an index into a table of the entries listed: each its parent's handle and
 * its name, so memory grows with the names, not with the depth. Every open is relative to
 * an open directory, one component at a time (so a path longer than PATH_MAX is no
 * limit, and no component is a symlink followed): the directories open last are kept as a
 * chain from the root (one fd per level), and an open starts from the deepest directory of
 * the chain on its way to the root, so a walk from the top down opens each directory once.
 *
 * A tree given entry by entry (fstree_new_given: a remote source's dry run) keeps, per
 * entry, what the walk sent (type, size, mtime, MIME type) and its children as a linked
 * list in the order they were added (the walk's sorted order); nothing is opened.
 *
 * SPDX-License-Identifier: MIT
 */
#include "fstree.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "srcfile.h"

struct fs_node {
	uint64_t parent;	/* its directory's handle; 0 for the root */
	size_t depth;		/* levels below the root */
	char *name;		/* "" for the root */
	/* a given tree only: */
	uint32_t mode;
	uint64_t size;
	int64_t mtime;
	char *mime;		/* NULL: not sent */
	uint64_t first, last;	/* its children's handles (0: none) */
	uint64_t next;		/* its next sibling */
};

struct fstree {
	struct fs_node *v;	/* handle h is v[h - 1] */
	size_t n, cap;
	/* the chain: chain[i] the handle of the directory open at level i, fds[i] its fd
	 * (chain[0] the root, fds[0] the root's fd) */
	uint64_t *chain;
	int *fds;
	size_t nchain, capchain;
	uint64_t *up;		/* chain_open's scratch: the levels to open */
	size_t capup;
	struct cls_tree tree;
	bool given;		/* fstree_new_given: no directory behind it */
	uint64_t *dirs;		/* given: the last directory added at each depth */
	size_t ndirs, capdirs;	/* levels of dirs valid for the next entry's parent */
};

static int add_node(struct fstree *t, uint64_t parent, const char *name, size_t nl,
		    uint64_t *h)
{
	char *copy;

	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 1024;
		struct fs_node *v = realloc(t->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		t->v = v;
		t->cap = cap;
	}
	copy = malloc(nl + 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, name, nl + 1);
	memset(&t->v[t->n], 0, sizeof(t->v[t->n]));
	t->v[t->n].parent = parent;
	t->v[t->n].depth = parent ? t->v[parent - 1].depth + 1 : 0;
	t->v[t->n].name = copy;
	*h = ++t->n;
	return 0;
}

static bool in_chain(const struct fstree *t, uint64_t h)
{
	size_t d = t->v[h - 1].depth;

	return d < t->nchain && t->chain[d] == h;
}

/* The directory @h open (borrowed: valid until the next call), made the chain's end. */
static int chain_open(struct fstree *t, uint64_t h)
{
	size_t k = 0;
	uint64_t x;

	for (x = h; !in_chain(t, x); x = t->v[x - 1].parent) {
		if (k == t->capup) {
			size_t cap = t->capup ? t->capup * 2 : 64;
			uint64_t *up = realloc(t->up, cap * sizeof(*up));

			if (!up)
				return -ENOMEM;
			t->up = up;
			t->capup = cap;
		}
		t->up[k++] = x;
	}
	while (t->nchain > t->v[x - 1].depth + 1)
		close(t->fds[--t->nchain]);
	while (k) {
		uint64_t y = t->up[--k];
		int fd;

		if (t->nchain == t->capchain) {
			size_t cap = t->capchain * 2;
			uint64_t *c = realloc(t->chain, cap * sizeof(*c));
			int *f;

			if (c)
				t->chain = c;
			f = c ? realloc(t->fds, cap * sizeof(*f)) : NULL;
			if (!f)
				return -ENOMEM;
			t->fds = f;
			t->capchain = cap;
		}
		fd = src_open_dir(t->fds[t->nchain - 1], t->v[y - 1].name);
		if (fd < 0)
			return fd;
		t->chain[t->nchain] = y;
		t->fds[t->nchain++] = fd;
	}
	return t->fds[t->nchain - 1];
}

static int fs_list(void *ctx, uint64_t dir, int (*fn)(void *arg, const struct cls_entry *e),
		   void *arg)
{
	struct fstree *t = ctx;
	struct src_listing l;
	int fd, rc;

	if (dir == 0 || dir > t->n)
		return -EINVAL;
	fd = chain_open(t, dir);
	if (fd < 0)
		return fd;
	/* a listing that ended early gives what it read: this is a plan, not a copy */
	rc = src_list_dir(fd, &l);
	for (size_t i = 0; i < l.n && rc == 0; i++) {
		struct cls_entry e = { 0 };
		struct stat sb;

		if (fstatat(fd, l.v[i].p, &sb, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		e.name = (const uint8_t *)l.v[i].p;
		e.name_len = l.v[i].len;
		e.mode = sb.st_mode;
		e.size = (uint64_t)sb.st_size;
		e.mtime = sb.st_mtim.tv_sec;
		rc = add_node(t, dir, l.v[i].p, l.v[i].len, &e.handle);
		if (rc == 0)
			rc = fn(arg, &e);
	}
	src_listing_release(&l);
	return rc;
}

static ssize_t fs_head(void *ctx, uint64_t file, void *buf, size_t len)
{
	struct fstree *t = ctx;
	ssize_t n;
	int fd;

	if (file <= 1 || file > t->n)
		return -EINVAL;
	fd = chain_open(t, t->v[file - 1].parent);
	if (fd >= 0)
		fd = src_open_file(fd, t->v[file - 1].name);
	if (fd < 0)
		return fd;
	n = pread(fd, buf, len, 0);
	if (n < 0)
		n = -errno;
	close(fd);
	return n;
}

/* A given tree's directory listing: its children, in the order they were added. */
static int given_list(void *ctx, uint64_t dir, int (*fn)(void *arg, const struct cls_entry *e),
		      void *arg)
{
	struct fstree *t = ctx;
	int rc = 0;

	if (dir == 0 || dir > t->n)
		return -EINVAL;
	for (uint64_t h = t->v[dir - 1].first; h && rc == 0; h = t->v[h - 1].next) {
		const struct fs_node *x = &t->v[h - 1];
		struct cls_entry e = {
			.name = (const uint8_t *)x->name, .name_len = strlen(x->name),
			.mode = x->mode, .size = x->size, .mtime = x->mtime, .handle = h,
			.mime = x->mime,
		};

		rc = fn(arg, &e);
	}
	return rc;
}

/* No bytes behind a given tree: its MIME types came with it. */
static ssize_t given_head(void *ctx, uint64_t file, void *buf, size_t len)
{
	(void)ctx;
	(void)file;
	(void)buf;
	(void)len;
	return -ENOTSUP;
}

int fstree_new_given(struct fstree **out)
{
	struct fstree *t = calloc(1, sizeof(*t));
	uint64_t h;
	int rc;

	*out = NULL;
	if (!t)
		return -ENOMEM;
	t->given = true;
	t->capdirs = 64;
	t->dirs = malloc(t->capdirs * sizeof(*t->dirs));
	rc = t->dirs ? add_node(t, 0, "", 0, &h) : -ENOMEM;
	if (rc < 0) {
		fstree_close(t);
		return rc;
	}
	t->v[0].mode = S_IFDIR | 0755;
	t->dirs[0] = h;
	t->ndirs = 1;
	t->tree.ctx = t;
	t->tree.list = given_list;
	t->tree.head = given_head;
	*out = t;
	return 0;
}

int fstree_add(struct fstree *t, size_t depth, const uint8_t *name, size_t nl,
	       const struct stat *sb, const char *mime)
{
	struct fs_node *x, *p;
	uint64_t h, parent;
	char buf[256];
	int rc;

	if (!depth || depth > t->ndirs || nl >= sizeof(buf) || memchr(name, '/', nl)) {
		/* below an entry not added (it failed): not in the plan either */
		fstree_skip(t, depth);
		return 0;
	}
	parent = t->dirs[depth - 1];
	memcpy(buf, name, nl);
	buf[nl] = '\0';
	rc = add_node(t, parent, buf, nl, &h);
	if (rc < 0)
		return rc;
	x = &t->v[h - 1];
	x->mode = (uint32_t)sb->st_mode;
	x->size = (uint64_t)sb->st_size;
	x->mtime = sb->st_mtim.tv_sec;
	x->first = x->last = x->next = 0;
	x->mime = mime ? strdup(mime) : NULL;
	if (mime && !x->mime)
		return -ENOMEM;
	p = &t->v[parent - 1];
	if (p->last)
		t->v[p->last - 1].next = h;
	else
		p->first = h;
	p->last = h;
	t->ndirs = depth;
	if (S_ISDIR(sb->st_mode)) {
		if (depth == t->capdirs) {
			uint64_t *d = realloc(t->dirs, t->capdirs * 2 * sizeof(*d));

			if (!d)
				return -ENOMEM;
			t->dirs = d;
			t->capdirs *= 2;
		}
		t->dirs[depth] = h;
		t->ndirs = depth + 1;
	}
	return 0;
}

void fstree_skip(struct fstree *t, size_t depth)
{
	if (depth && depth < t->ndirs)
		t->ndirs = depth;
}

int fstree_open(const char *root, struct fstree **out)
{
	struct fstree *t = calloc(1, sizeof(*t));
	uint64_t h;
	int fd, rc;

	*out = NULL;
	if (!t)
		return -ENOMEM;
	t->capchain = 64;
	t->chain = malloc(t->capchain * sizeof(*t->chain));
	t->fds = malloc(t->capchain * sizeof(*t->fds));
	rc = t->chain && t->fds ? add_node(t, 0, "", 0, &h) : -ENOMEM;
	if (rc < 0) {
		fstree_close(t);
		return rc;
	}
	fd = src_open_root(root);
	if (fd < 0) {
		fstree_close(t);
		return fd;
	}
	t->chain[0] = h;
	t->fds[0] = fd;
	t->nchain = 1;
	t->tree.ctx = t;
	t->tree.list = fs_list;
	t->tree.head = fs_head;
	*out = t;
	return 0;
}

void fstree_close(struct fstree *t)
{
	if (!t)
		return;
	while (t->nchain)
		close(t->fds[--t->nchain]);
	for (size_t i = 0; i < t->n; i++) {
		free(t->v[i].name);
		if (t->given)
			free(t->v[i].mime);
	}
	free(t->dirs);
	free(t->v);
	free(t->chain);
	free(t->fds);
	free(t->up);
	free(t);
}

const struct cls_tree *fstree_tree(struct fstree *t)
{
	return &t->tree;
}

uint64_t fstree_root(const struct fstree *t)
{
	(void)t;
	return 1;
}
