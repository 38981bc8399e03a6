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
#include <time.h>

#define SLOT_MAX ((1u << (63 - HIST_SLOT_SHIFT)) - 1)
#define IDX_MASK ((1ull << HIST_SLOT_SHIFT) - 1)

struct hist {
	struct store *st;
	pthread_mutex_t lock;
	struct hist_slot {
		uint32_t source;
		uint64_t gen;
	} *v;			/* slot i + 1 is v[i] */
	size_t n, cap;
};

int hist_new(struct store *st, struct hist **out)
{
	struct hist *h = calloc(1, sizeof(*h));

	*out = NULL;
	if (!h)
		return -ENOMEM;
	h->st = st;
	pthread_mutex_init(&h->lock, NULL);
	*out = h;
	return 0;
}

void hist_free(struct hist *h)
{
	if (!h)
		return;
	pthread_mutex_destroy(&h->lock);
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

void hist_time_name(int64_t t, char *out)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, HIST_TIME_LEN + 1, "%Y%m%dT%H%M%SZ", &tm);
}

/* The slot of snapshot (@source, @gen), made if new. 0 when the table is full. */
static unsigned slot_get(struct hist *h, uint32_t source, uint64_t gen)
{
	unsigned s = 0;

	pthread_mutex_lock(&h->lock);
	for (size_t i = 0; i < h->n && !s; i++)
		if (h->v[i].source == source && h->v[i].gen == gen)
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
			h->v[h->n].source = source;
			h->v[h->n].gen = gen;
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
		known = s <= h->n;
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
	char tn[HIST_TIME_LEN + 1];
	int rc;

	if (parent == HIST_INO) {
		rc = store_get_source(h->st, name, strlen(name), &src);
		if (rc < 0)
			return rc;
		rc = src.nsnaps ? 0 : -ENOENT;
		*child = HIST_BIT | src.id;
		store_source_release(&src);
		return rc;
	}
	rc = source_by_id(h, (uint32_t)(parent & ~HIST_BIT), &src);
	if (rc < 0)
		return rc;
	rc = -ENOENT;
	for (size_t i = 0; i < src.nsnaps; i++) {
		unsigned s;

		hist_time_name(src.snaps[i].time, tn);
		if (strcmp(tn, name))
			continue;
		s = slot_get(h, src.id, src.snaps[i].gen);
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
	int (*fn)(void *arg, const void *name, size_t len, uint64_t ino, uint8_t type);
	void *arg;
};

static int list_source(void *arg, const struct store_source *s)
{
	struct list_arg *a = arg;

	if (!s->nsnaps)
		return 0;
	return a->fn(a->arg, s->name.p, s->name.len, HIST_BIT | s->id, DT_DIR);
}

int hist_list(struct hist *h, uint64_t dir,
	      int (*fn)(void *arg, const void *name, size_t len, uint64_t ino, uint8_t type),
	      void *arg)
{
	struct list_arg a = { fn, arg };
	struct store_source src;
	char tn[HIST_TIME_LEN + 1];
	int rc;

	if (dir == HIST_INO)
		return store_each_source(h->st, list_source, &a);
	rc = source_by_id(h, (uint32_t)(dir & ~HIST_BIT), &src);
	if (rc < 0)
		return rc;
	for (size_t i = 0; rc == 0 && i < src.nsnaps; i++) {
		unsigned s = slot_get(h, src.id, src.snaps[i].gen);

		if (!s || src.snaps[i].root > IDX_MASK)
			continue;
		hist_time_name(src.snaps[i].time, tn);
		rc = fn(arg, tn, strlen(tn),
			HIST_BIT | (uint64_t)s << HIST_SLOT_SHIFT | src.snaps[i].root, DT_DIR);
	}
	store_source_release(&src);
	return rc;
}
