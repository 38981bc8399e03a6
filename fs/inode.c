/*
 * inode.c - lookup counts of the inodes the kernel holds (see inode.h).
 *
 * Two tables, open addressing with tombstones, keyed by inode number, growing by
 * doubling: one slot per held inode (lookup count, xattr note), and the page-cache
 * bookkeeping of the held inodes that were opened. A walk of a large tree holds every
 * inode it met, so the first table is kept small: its growth (fresh pages) was most of
 * the cost of a READDIRPLUS entry after the index read.
 *
 * SPDX-License-Identifier: MIT
 */
#include "inode.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define TOMB UINT64_MAX

struct slot {
	uint64_t ino;	/* 0 empty, TOMB deleted */
	uint64_t n;
	uint64_t plain;	/* 1 + the generation under which it had no xattrs; 0: unknown;
			 * and the listing bits (see ino_set_listing) */
};

#define LISTED_ATTRS (1ull << 63)
#define LISTED_NAMES (1ull << 62)
#define LISTED (LISTED_ATTRS | LISTED_NAMES)

/* Page-cache bookkeeping (ino_open/ino_release) of a held inode, once it is opened. */
struct oslot {
	uint64_t ino;	/* 0 empty, TOMB deleted */
	uint64_t tag;	/* content of the newest open */
	uint32_t nopen;	/* open handles */
	uint32_t nold;	/* open handles on an older content: they may refill the cache */
	bool dirty;	/* such a handle was released since the cache was last dropped */
};

/* One open-addressing table of slots of @esz bytes, each starting with its uint64_t ino. */
struct htab {
	unsigned char *v;
	size_t esz, cap, used, live;	/* used: live + tombstones */
};

struct ino_table {
	pthread_mutex_t lock;	/* protects everything below */
	struct htab held;	/* struct slot: the inodes the kernel holds */
	struct htab opened;	/* struct oslot: those of them that were opened */
};

static int htab_init(struct htab *h, size_t esz, size_t cap)
{
	h->v = calloc(cap, esz);
	h->esz = esz;
	h->cap = cap;
	h->used = h->live = 0;
	return h->v ? 0 : -ENOMEM;
}

static uint64_t *key_at(const struct htab *h, size_t s)
{
	return (uint64_t *)(void *)(h->v + s * h->esz);
}

static size_t hash(uint64_t ino, size_t cap)
{
	return (size_t)((ino * 0x9e3779b97f4a7c15ull) >> 20) & (cap - 1);
}

static void rehash(struct htab *h, size_t cap)
{
	unsigned char *v = calloc(cap, h->esz);

	if (!v)
		return;
	for (size_t i = 0; i < h->cap; i++) {
		uint64_t ino = *key_at(h, i);
		size_t s;

		if (!ino || ino == TOMB)
			continue;
		for (s = hash(ino, cap); *(uint64_t *)(void *)(v + s * h->esz);
		     s = (s + 1) & (cap - 1))
			;
		memcpy(v + s * h->esz, key_at(h, i), h->esz);
	}
	free(h->v);
	h->v = v;
	h->cap = cap;
	h->used = h->live;
}

static void *htab_find(const struct htab *h, uint64_t ino)
{
	for (size_t s = hash(ino, h->cap); *key_at(h, s); s = (s + 1) & (h->cap - 1))
		if (*key_at(h, s) == ino)
			return key_at(h, s);
	return NULL;
}

/* The slot of @ino, inserted zeroed if absent (NULL if @ino cannot be a key). */
static void *htab_get(struct htab *h, uint64_t ino)
{
	size_t s, tomb = SIZE_MAX;

	if (!ino || ino == TOMB)
		return NULL;
	if ((h->used + 1) * 2 > h->cap)
		rehash(h, h->live * 4 > h->cap ? h->cap * 2 : h->cap);
	for (s = hash(ino, h->cap); *key_at(h, s); s = (s + 1) & (h->cap - 1)) {
		if (*key_at(h, s) == ino)
			return key_at(h, s);
		if (*key_at(h, s) == TOMB && tomb == SIZE_MAX)
			tomb = s;
	}
	if (tomb != SIZE_MAX)
		s = tomb;
	else
		h->used++;
	memset(key_at(h, s), 0, h->esz);
	*key_at(h, s) = ino;
	h->live++;
	return key_at(h, s);
}

static void htab_del(struct htab *h, void *slot)
{
	memset(slot, 0, h->esz);
	*(uint64_t *)slot = TOMB;
	h->live--;
}

int ino_table_new(struct ino_table **out)
{
	struct ino_table *t = calloc(1, sizeof(*t));

	*out = NULL;
	if (!t)
		return -ENOMEM;
	if (htab_init(&t->held, sizeof(struct slot), 1024) < 0 ||
	    htab_init(&t->opened, sizeof(struct oslot), 64) < 0) {
		free(t->held.v);
		free(t);
		return -ENOMEM;
	}
	pthread_mutex_init(&t->lock, NULL);
	*out = t;
	return 0;
}

void ino_table_free(struct ino_table *t)
{
	if (!t)
		return;
	free(t->opened.v);
	free(t->held.v);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

void ino_ref(struct ino_table *t, uint64_t ino, uint64_t n)
{
	struct slot *sl;

	if (!n)
		return;
	pthread_mutex_lock(&t->lock);
	sl = htab_get(&t->held, ino);
	if (sl)
		sl->n += n;
	pthread_mutex_unlock(&t->lock);
}

void ino_ref_many(struct ino_table *t, const uint64_t *inos, const bool *plain, size_t n,
		  uint64_t gen)
{
	if (!n)
		return;
	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i < n; i++) {
		struct slot *sl = htab_get(&t->held, inos[i]);

		if (!sl)
			continue;
		sl->n++;
		if (plain && plain[i])
			sl->plain = (sl->plain & LISTED) | (gen + 1);
	}
	pthread_mutex_unlock(&t->lock);
}

void ino_forget(struct ino_table *t, uint64_t ino, uint64_t n)
{
	struct slot *sl;

	pthread_mutex_lock(&t->lock);
	sl = htab_find(&t->held, ino);
	if (sl && sl->n <= n) {
		struct oslot *o = htab_find(&t->opened, ino);

		htab_del(&t->held, sl);
		if (o)
			htab_del(&t->opened, o);
	} else if (sl) {
		sl->n -= n;
	}
	pthread_mutex_unlock(&t->lock);
}

bool ino_open(struct ino_table *t, uint64_t ino, uint64_t tag)
{
	struct oslot *o = NULL;
	bool keep = false;

	pthread_mutex_lock(&t->lock);
	if (htab_find(&t->held, ino))
		o = htab_get(&t->opened, ino);	/* tag 0 when first opened */
	if (o) {
		if (o->tag && o->tag != tag) {
			/* new content: every handle open so far reads the old one */
			o->nold += o->nopen;
			o->tag = tag;
		} else {
			keep = o->tag && !o->nold && !o->dirty;
			o->tag = tag;
		}
		/* an open without keep_cache drops the cached pages */
		if (!keep)
			o->dirty = false;
		o->nopen++;
	}
	pthread_mutex_unlock(&t->lock);
	return keep || !o;
}

void ino_release(struct ino_table *t, uint64_t ino, uint64_t tag)
{
	struct oslot *o;

	pthread_mutex_lock(&t->lock);
	o = htab_find(&t->opened, ino);
	if (o && o->nopen) {
		o->nopen--;
		if (tag != o->tag && o->nold) {
			o->nold--;
			o->dirty = true;
		}
	}
	pthread_mutex_unlock(&t->lock);
}

void ino_set_plain(struct ino_table *t, uint64_t ino, uint64_t gen)
{
	struct slot *sl;

	pthread_mutex_lock(&t->lock);
	sl = htab_find(&t->held, ino);
	if (sl)
		sl->plain = (sl->plain & LISTED) | (gen + 1);
	pthread_mutex_unlock(&t->lock);
}

bool ino_is_plain(struct ino_table *t, uint64_t ino, uint64_t gen)
{
	struct slot *sl;
	bool plain;

	pthread_mutex_lock(&t->lock);
	sl = htab_find(&t->held, ino);
	plain = sl && (sl->plain & ~LISTED) == gen + 1;
	pthread_mutex_unlock(&t->lock);
	return plain;
}

void ino_set_listing(struct ino_table *t, uint64_t ino, enum ino_listing l)
{
	struct slot *sl;

	pthread_mutex_lock(&t->lock);
	sl = htab_find(&t->held, ino);
	if (sl)
		sl->plain = (sl->plain & ~LISTED) |
			    (l == INO_LISTED_ATTRS ? LISTED_ATTRS
			     : l == INO_LISTED_NAMES ? LISTED_NAMES : 0);
	pthread_mutex_unlock(&t->lock);
}

enum ino_listing ino_listing(struct ino_table *t, uint64_t ino)
{
	struct slot *sl;
	enum ino_listing l = INO_UNLISTED;

	pthread_mutex_lock(&t->lock);
	sl = htab_find(&t->held, ino);
	if (sl && (sl->plain & LISTED_ATTRS))
		l = INO_LISTED_ATTRS;
	else if (sl && (sl->plain & LISTED_NAMES))
		l = INO_LISTED_NAMES;
	pthread_mutex_unlock(&t->lock);
	return l;
}

size_t ino_snapshot(struct ino_table *t, uint64_t *out, size_t max)
{
	size_t k = 0;

	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i < t->held.cap && k < max; i++) {
		uint64_t ino = *key_at(&t->held, i);

		if (ino && ino != TOMB)
			out[k++] = ino;
	}
	pthread_mutex_unlock(&t->lock);
	return k;
}

size_t ino_count(struct ino_table *t)
{
	size_t n;

	pthread_mutex_lock(&t->lock);
	n = t->held.live;
	pthread_mutex_unlock(&t->lock);
	return n;
}
