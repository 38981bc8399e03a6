/*
 * fstree.c - a live directory as a struct cls_tree (see fstree.h).
 *
 * SPDX-License-Identifier: MIT
 */
#include "fstree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "srcfile.h"

struct fs_node {
	char *rel;	/* "" for the root */
};

struct fstree {
	int rootfd;
	struct fs_node *v;
	size_t n, cap;
	struct cls_tree tree;
};

/* Opens the entry at @rel (source-relative; "" is the root) as srcfile.c opens them. */
static int open_rel(struct fstree *t, const char *rel, bool dir)
{
	if (!rel[0])
		return src_open_dir(t->rootfd, NULL);
	return dir ? src_open_dir(t->rootfd, rel) : src_open_file(t->rootfd, rel);
}

static int add_node(struct fstree *t, const char *parent, const char *name, uint64_t *h)
{
	size_t pl = strlen(parent), nl = strlen(name);
	char *rel;

	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 1024;
		struct fs_node *v = realloc(t->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		t->v = v;
		t->cap = cap;
	}
	rel = malloc(pl + nl + 2);
	if (!rel)
		return -ENOMEM;
	if (pl) {
		memcpy(rel, parent, pl);
		rel[pl] = '/';
		memcpy(rel + pl + 1, name, nl + 1);
	} else {
		memcpy(rel, name, nl + 1);
	}
	t->v[t->n].rel = rel;
	*h = ++t->n;
	return 0;
}

struct nm {
	char *p;
};

static int nm_cmp(const void *a, const void *b)
{
	return strcmp(((const struct nm *)a)->p, ((const struct nm *)b)->p);
}

static int fs_list(void *ctx, uint64_t dir, int (*fn)(void *arg, const struct cls_entry *e),
		   void *arg)
{
	struct fstree *t = ctx;
	struct nm *names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	char *rel;
	DIR *d;
	int fd, rc = 0;

	if (dir == 0 || dir > t->n)
		return -EINVAL;
	rel = t->v[dir - 1].rel;
	fd = open_rel(t, rel, true);
	if (fd < 0)
		return fd;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == cap) {
			struct nm *x;

			cap = cap ? cap * 2 : 64;
			x = realloc(names, cap * sizeof(*x));
			if (!x) {
				rc = -ENOMEM;
				break;
			}
			names = x;
		}
		names[n].p = strdup(de->d_name);
		if (!names[n].p) {
			rc = -ENOMEM;
			break;
		}
		n++;
	}
	if (n > 1)
		qsort(names, n, sizeof(*names), nm_cmp);
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct cls_entry e = { 0 };
		struct stat sb;

		if (fstatat(dirfd(d), names[i].p, &sb, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		e.name = (const uint8_t *)names[i].p;
		e.name_len = strlen(names[i].p);
		e.mode = sb.st_mode;
		e.size = (uint64_t)sb.st_size;
		e.mtime = sb.st_mtim.tv_sec;
		rc = add_node(t, t->v[dir - 1].rel, names[i].p, &e.handle);
		if (rc == 0)
			rc = fn(arg, &e);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i].p);
	free(names);
	closedir(d);
	return rc;
}

static ssize_t fs_head(void *ctx, uint64_t file, void *buf, size_t len)
{
	struct fstree *t = ctx;
	ssize_t n;
	int fd;

	if (file == 0 || file > t->n)
		return -EINVAL;
	fd = open_rel(t, t->v[file - 1].rel, false);
	if (fd < 0)
		return fd;
	n = pread(fd, buf, len, 0);
	if (n < 0)
		n = -errno;
	close(fd);
	return n;
}

int fstree_open(const char *root, struct fstree **out)
{
	struct fstree *t = calloc(1, sizeof(*t));
	uint64_t h;
	int rc;

	*out = NULL;
	if (!t)
		return -ENOMEM;
	t->rootfd = src_open_root(root);
	if (t->rootfd < 0) {
		rc = t->rootfd;
		free(t);
		return rc;
	}
	rc = add_node(t, "", "", &h);
	if (rc < 0) {
		fstree_close(t);
		return rc;
	}
	t->v[0].rel[0] = '\0';
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
	for (size_t i = 0; i < t->n; i++)
		free(t->v[i].rel);
	free(t->v);
	if (t->rootfd >= 0)
		close(t->rootfd);
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
