/*
 * hist.c - /.history (hist.h): the snapshot table of the mount and the virtual
 * directories /.history and /.history/NAME, read from the source records.
 *
 * SPDX-License-Identifier: MIT
 */
#include "hist.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/buf.h"

#define SLOT_MAX ((1u << (63 - HIST_SLOT_SHIFT)) - 1)
#define IDX_MASK ((1ull << HIST_SLOT_SHIFT) - 1)

struct hist {
	struct store *st;
	pthread_mutex_t lock;
	struct hist_slot {
		uint32_t source;
		uint64_t gen;
		int64_t time;	/* its name */
		bool gone;	/* dropped since (hist_refresh) */
	} *v;			/* slot i + 1 is v[i] */
	size_t n, cap;
	/* the sources /.history/NAME has shown, for hist_refresh */
	struct hist_src {
		uint32_t id;
		char *name;
	} *srcs;
	size_t nsrcs, srcs_cap;
	/* /.sources's entries as last seen (name, be64 root each): a re-ingest copies the
	 * root (copy-on-write), and the kernel's cached name must then go (hist_refresh) */
	struct dfs_buf roots;
};

/* /.sources's entries now, into @b. */
static int list_roots(struct store *st, struct dfs_buf *b)
{
	struct store_dir_iter *it;
	const uint8_t *nm;
	size_t nl;
	uint64_t c;
	uint8_t t;
	int rc = store_dir_open(st, STORE_SOURCES_INO, NULL, 0, &it);

	b->len = 0;
	if (rc < 0)
		return rc;
	while ((rc = store_dir_next(it, &nm, &nl, &c, &t)) == 1) {
		dfs_buf_put_bytes(b, nm, nl);
		dfs_buf_put_u64(b, c);
	}
	store_dir_close(it);
	return rc < 0 ? rc : b->err;
}

int hist_new(struct store *st, struct hist **out)
{
	struct hist *h = calloc(1, sizeof(*h));

	*out = NULL;
	if (!h)
		return -ENOMEM;
	h->st = st;
	pthread_mutex_init(&h->lock, NULL);
	dfs_buf_init(&h->roots, 1ull << 32);
	list_roots(st, &h->roots);	/* best effort: an empty list only invalidates more */
	*out = h;
	return 0;
}

void hist_free(struct hist *h)
{
	if (!h)
		return;
	pthread_mutex_destroy(&h->lock);
	for (size_t i = 0; i < h->nsrcs; i++)
		free(h->srcs[i].name);
	free(h->srcs);
	dfs_buf_release(&h->roots);
	free(h->v);
	free(h);
}

static unsigned slot_of(uint64_t ino)
{
	return (unsigned)((ino & ~HIST_BIT) >> HIST_SLOT_SHIFT);
}

uint64_t hist_index_ino(uint64_t ino)
{
	if (!hist_is(ino))
		return ino;
	return slot_of(ino) ? ino & IDX_MASK : 0;
}

int hist_child(uint64_t parent, uint64_t child, uint64_t *out)
{
	if (child > IDX_MASK)
		return -EOVERFLOW;
	*out = HIST_BIT | (uint64_t)slot_of(parent) << HIST_SLOT_SHIFT | child;
	return 0;
}


/* Notes source @s as shown under /.history (hist_refresh watches it); best effort. */
static void src_seen(struct hist *h, const struct store_source *s)
{
	char *name;

	pthread_mutex_lock(&h->lock);
	for (size_t i = 0; i < h->nsrcs; i++)
		if (h->srcs[i].id == s->id)
			goto out;
	if (h->nsrcs == h->srcs_cap) {
		size_t cap = h->srcs_cap ? h->srcs_cap * 2 : 8;
		struct hist_src *v = realloc(h->srcs, cap * sizeof(*v));

		if (!v)
			goto out;
		h->srcs = v;
		h->srcs_cap = cap;
	}
	name = strndup((const char *)s->name.p, s->name.len);
	if (name)
		h->srcs[h->nsrcs++] = (struct hist_src){ s->id, name };
out:
	pthread_mutex_unlock(&h->lock);
}

/* The slot of snapshot (@source, @gen) named by @time, made if new. 0 when the table is
 * full. A slot gone (its snapshot dropped) is never handed out again. */
static unsigned slot_get(struct hist *h, uint32_t source, uint64_t gen, int64_t time)
{
	unsigned s = 0;

	pthread_mutex_lock(&h->lock);
	for (size_t i = 0; i < h->n && !s; i++)
		if (h->v[i].source == source && h->v[i].gen == gen && !h->v[i].gone)
			s = (unsigned)i + 1;
	if (!s && h->n < SLOT_MAX) {
		if (h->n == h->cap) {
			size_t cap = h->cap ? h->cap * 2 : 16;
			struct hist_slot *v = realloc(h->v, cap * sizeof(*v));

			if (v) {
				h->v = v;
				h->cap = cap;
			}
		}
		if (h->n < h->cap) {
			h->v[h->n] = (struct hist_slot){ source, gen, time, false };
			s = (unsigned)++h->n;
		}
	}
	pthread_mutex_unlock(&h->lock);
	return s;
}

/* The source with id @id (-ENOENT): the names under /.sources are the sources'. */
static int source_by_id(struct hist *h, uint32_t id, struct store_source *out)
{
	struct store_dir_iter *it;
	const uint8_t *nm;
	size_t nl;
	uint64_t c;
	uint8_t t;
	int rc;

	rc = store_dir_open(h->st, STORE_SOURCES_INO, NULL, 0, &it);
	if (rc < 0)
		return rc;
	while ((rc = store_dir_next(it, &nm, &nl, &c, &t)) == 1) {
		if (store_get_source(h->st, nm, nl, out) < 0)
			continue;
		if (out->id == id) {
			store_dir_close(it);
			return 0;
		}
		store_source_release(out);
	}
	store_dir_close(it);
	return rc < 0 ? rc : -ENOENT;
}

int hist_get_inode(struct hist *h, uint64_t ino, struct store_inode *out)
{
	uint64_t idx = hist_index_ino(ino);
	int rc;

	if (!hist_is(ino))
		return store_get_inode(h->st, ino, out);
	if (idx) {
		unsigned s = slot_of(ino);
		bool known;

		pthread_mutex_lock(&h->lock);
		known = s <= h->n && !h->v[s - 1].gone;
		pthread_mutex_unlock(&h->lock);
		if (!known)
			return -ENOENT;
		rc = store_get_inode(h->st, idx, out);
		if (rc == 0)
			out->ino = ino;
		return rc;
	}
	if (ino != HIST_INO) {
		struct store_source src;

		rc = source_by_id(h, (uint32_t)(ino & ~HIST_BIT), &src);
		if (rc < 0)
			return rc;
		rc = src.nsnaps ? 0 : -ENOENT;
		store_source_release(&src);
		if (rc < 0)
			return rc;
	}
	/* a virtual directory: /.sources's record, read-only */
	rc = store_get_inode(h->st, STORE_SOURCES_INO, out);
	if (rc == 0) {
		out->ino = ino;
		out->mode = S_IFDIR | 0555;
		out->nlink = 2;
	}
	return rc;
}

int hist_lookup(struct hist *h, uint64_t parent, const char *name, uint64_t *child)
{
	struct store_source src;
	char tn[STORE_SNAP_NAME_LEN + 1];
	int rc;

	if (parent == HIST_INO) {
		rc = store_get_source(h->st, name, strlen(name), &src);
		if (rc < 0)
			return rc;
		rc = src.nsnaps ? 0 : -ENOENT;
		*child = HIST_BIT | src.id;
		if (rc == 0)
			src_seen(h, &src);
		store_source_release(&src);
		return rc;
	}
	rc = source_by_id(h, (uint32_t)(parent & ~HIST_BIT), &src);
	if (rc < 0)
		return rc;
	rc = -ENOENT;
	for (size_t i = 0; i < src.nsnaps; i++) {
		unsigned s;

		store_snap_name(src.snaps[i].time, tn);
		if (strcmp(tn, name))
			continue;
		s = slot_get(h, src.id, src.snaps[i].gen, src.snaps[i].time);
		rc = s ? 0 : -ENOSPC;
		if (rc == 0 && src.snaps[i].root > IDX_MASK)
			rc = -EOVERFLOW;
		if (rc == 0)
			*child = HIST_BIT | (uint64_t)s << HIST_SLOT_SHIFT | src.snaps[i].root;
		break;
	}
	store_source_release(&src);
	return rc;
}

struct list_arg {
	struct hist *h;
	int (*fn)(void *arg, const void *name, size_t len, uint64_t ino, uint8_t type);
	void *arg;
};

static int list_source(void *arg, const struct store_source *s)
{
	struct list_arg *a = arg;

	if (!s->nsnaps)
		return 0;
	src_seen(a->h, s);
	return a->fn(a->arg, s->name.p, s->name.len, HIST_BIT | s->id, DT_DIR);
}

int hist_list(struct hist *h, uint64_t dir,
	      int (*fn)(void *arg, const void *name, size_t len, uint64_t ino, uint8_t type),
	      void *arg)
{
	struct list_arg a = { h, fn, arg };
	struct store_source src;
	char tn[STORE_SNAP_NAME_LEN + 1];
	int rc;

	if (dir == HIST_INO)
		return store_each_source(h->st, list_source, &a);
	rc = source_by_id(h, (uint32_t)(dir & ~HIST_BIT), &src);
	if (rc < 0)
		return rc;
	for (size_t i = 0; rc == 0 && i < src.nsnaps; i++) {
		unsigned s = slot_get(h, src.id, src.snaps[i].gen, src.snaps[i].time);

		if (!s || src.snaps[i].root > IDX_MASK)
			continue;
		store_snap_name(src.snaps[i].time, tn);
		rc = fn(arg, tn, strlen(tn),
			HIST_BIT | (uint64_t)s << HIST_SLOT_SHIFT | src.snaps[i].root, DT_DIR);
	}
	store_source_release(&src);
	return rc;
}

/* Does listing @b (list_roots) have @name with root @ino? */
static bool roots_has(const struct dfs_buf *b, const uint8_t *name, size_t len, uint64_t ino)
{
	struct dfs_rd r;

	dfs_rd_init(&r, b->data, b->len);
	while (r.left) {
		size_t nl;
		const uint8_t *nm = dfs_rd_bytes(&r, &nl);
		uint64_t c = dfs_rd_u64(&r);

		if (!nm || r.err)
			return false;
		if (nl == len && !memcmp(nm, name, len))
			return c == ino;
	}
	return false;
}

/* Is snapshot generation @gen still one of source @s's? */
static bool has_gen(const struct store_source *s, uint64_t gen)
{
	for (size_t i = 0; i < s->nsnaps; i++)
		if (s->snaps[i].gen == gen)
			return true;
	return false;
}

int hist_refresh(struct hist *h, void (*gone)(void *arg, uint64_t parent, const char *name),
		 void *arg)
{
	struct store_source src;
	char tn[STORE_SNAP_NAME_LEN + 1];
	size_t n;
	int rc;

	/* /.sources/NAME whose root changed (a re-ingest's copy) or that went */
	{
		struct dfs_buf now;
		struct dfs_rd r;

		dfs_buf_init(&now, 1ull << 32);
		rc = list_roots(h->st, &now);
		dfs_rd_init(&r, h->roots.data, h->roots.len);
		while (rc == 0 && r.left) {
			size_t nl;
			const uint8_t *nm = dfs_rd_bytes(&r, &nl);
			uint64_t was = dfs_rd_u64(&r);

			if (!nm || r.err)
				break;
			if (!roots_has(&now, nm, nl, was)) {
				char *name = strndup((const char *)nm, nl);

				if (name)
					gone(arg, STORE_SOURCES_INO, name);
				free(name);
			}
		}
		if (rc == 0) {
			dfs_buf_release(&h->roots);
			h->roots = now;
		} else {
			dfs_buf_release(&now);
		}
		if (rc < 0)
			return rc;
	}
	/* snapshots (the table only grows; each slot is read under the lock) */
	pthread_mutex_lock(&h->lock);
	n = h->n;
	pthread_mutex_unlock(&h->lock);
	for (size_t i = 0; i < n; i++) {
		struct hist_slot sl;
		bool drop;

		pthread_mutex_lock(&h->lock);
		sl = h->v[i];
		pthread_mutex_unlock(&h->lock);
		if (sl.gone)
			continue;
		rc = source_by_id(h, sl.source, &src);
		if (rc < 0 && rc != -ENOENT)
			return rc;
		drop = rc == -ENOENT || !has_gen(&src, sl.gen);
		if (rc == 0)
			store_source_release(&src);
		if (!drop)
			continue;
		pthread_mutex_lock(&h->lock);
		h->v[i].gone = true;
		pthread_mutex_unlock(&h->lock);
		store_snap_name(sl.time, tn);
		gone(arg, HIST_BIT | sl.source, tn);
	}
	/* sources: forgotten, or renamed to another id */
	for (size_t i = 0;; i++) {
		struct hist_src hs;
		bool drop;

		pthread_mutex_lock(&h->lock);
		if (i >= h->nsrcs) {
			pthread_mutex_unlock(&h->lock);
			break;
		}
		hs = h->srcs[i];
		pthread_mutex_unlock(&h->lock);
		rc = store_get_source(h->st, hs.name, strlen(hs.name), &src);
		if (rc < 0 && rc != -ENOENT)
			return rc;
		drop = rc == -ENOENT || src.id != hs.id || !src.nsnaps;
		if (rc == 0)
			store_source_release(&src);
		if (!drop)
			continue;
		gone(arg, HIST_INO, hs.name);
		pthread_mutex_lock(&h->lock);
		free(h->srcs[i].name);
		h->srcs[i--] = h->srcs[--h->nsrcs];
		pthread_mutex_unlock(&h->lock);
	}
	return 0;
}
