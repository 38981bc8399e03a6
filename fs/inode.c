/*
 * inode.c - lookup counts of the inodes the kernel holds (see inode.h).
 *
 * Open addressing with tombstones, keyed by inode number; grows by doubling.
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
	/* page-cache bookkeeping (ino_open/ino_release) */
	uint64_t tag;	/* content of the newest open (0: never opened) */
	uint32_t nopen;	/* open handles */
	uint32_t nold;	/* open handles on an older content: they may refill the cache */
	bool dirty;	/* such a handle was released since the cache was last dropped */
	uint64_t plain;	/* 1 + the generation under which it had no xattrs; 0: unknown */
};

struct ino_table {
	pthread_mutex_t lock;	/* protects everything below */
	struct slot *v;
	size_t cap, used, live;
};

int ino_table_new(struct ino_table **out)
{
	struct ino_table *t = calloc(1, sizeof(*t));

	*out = NULL;
	if (!t)
		return -ENOMEM;
	t->cap = 1024;
	t->v = calloc(t->cap, sizeof(*t->v));
	if (!t->v) {
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
	free(t->v);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

static size_t hash(uint64_t ino, size_t cap)
{
	return (size_t)((ino * 0x9e3779b97f4a7c15ull) >> 20) & (cap - 1);
}

static void rehash(struct ino_table *t, size_t cap)
{
	struct slot *v = calloc(cap, sizeof(*v));

	if (!v)
		return;
	for (size_t i = 0; i < t->cap; i++) {
		size_t s;

		if (!t->v[i].ino || t->v[i].ino == TOMB)
			continue;
		for (s = hash(t->v[i].ino, cap); v[s].ino; s = (s + 1) & (cap - 1))
			;
		v[s] = t->v[i];
	}
	free(t->v);
	t->v = v;
	t->cap = cap;
	t->used = t->live;
}

void ino_ref(struct ino_table *t, uint64_t ino, uint64_t n)
{
	size_t s, tomb = SIZE_MAX;

	if (!ino || ino == TOMB || !n)
		return;
	pthread_mutex_lock(&t->lock);
	if ((t->used + 1) * 2 > t->cap)
		rehash(t, t->live * 4 > t->cap ? t->cap * 2 : t->cap);
	for (s = hash(ino, t->cap); t->v[s].ino; s = (s + 1) & (t->cap - 1)) {
		if (t->v[s].ino == ino) {
			t->v[s].n += n;
			pthread_mutex_unlock(&t->lock);
			return;
		}
		if (t->v[s].ino == TOMB && tomb == SIZE_MAX)
			tomb = s;
	}
	if (tomb != SIZE_MAX)
		s = tomb;
	else
		t->used++;
	memset(&t->v[s], 0, sizeof(t->v[s]));
	t->v[s].ino = ino;
	t->v[s].n = n;
	t->live++;
	pthread_mutex_unlock(&t->lock);
}

void ino_forget(struct ino_table *t, uint64_t ino, uint64_t n)
{
	pthread_mutex_lock(&t->lock);
	for (size_t s = hash(ino, t->cap); t->v[s].ino; s = (s + 1) & (t->cap - 1)) {
		if (t->v[s].ino == ino) {
			if (t->v[s].n <= n) {
				t->v[s].ino = TOMB;
				t->v[s].n = 0;
				t->live--;
			} else {
				t->v[s].n -= n;
			}
			break;
		}
	}
	pthread_mutex_unlock(&t->lock);
}

static struct slot *find_locked(struct ino_table *t, uint64_t ino)
{
	for (size_t s = hash(ino, t->cap); t->v[s].ino; s = (s + 1) & (t->cap - 1))
		if (t->v[s].ino == ino)
			return &t->v[s];
	return NULL;
}

bool ino_open(struct ino_table *t, uint64_t ino, uint64_t tag)
{
	struct slot *sl;
	bool keep = false;

	pthread_mutex_lock(&t->lock);
	sl = find_locked(t, ino);
	if (sl) {
		if (sl->tag && sl->tag != tag) {
			/* new content: every handle open so far reads the old one */
			sl->nold += sl->nopen;
			sl->tag = tag;
		} else {
			keep = sl->tag && !sl->nold && !sl->dirty;
			sl->tag = tag;
		}
		/* an open without keep_cache drops the cached pages */
		if (!keep)
			sl->dirty = false;
		sl->nopen++;
	}
	pthread_mutex_unlock(&t->lock);
	return keep || !sl;
}

void ino_release(struct ino_table *t, uint64_t ino, uint64_t tag)
{
	struct slot *sl;

	pthread_mutex_lock(&t->lock);
	sl = find_locked(t, ino);
	if (sl && sl->nopen) {
		sl->nopen--;
		if (tag != sl->tag && sl->nold) {
			sl->nold--;
			sl->dirty = true;
		}
	}
	pthread_mutex_unlock(&t->lock);
}

void ino_set_plain(struct ino_table *t, uint64_t ino, uint64_t gen)
{
	struct slot *sl;

	pthread_mutex_lock(&t->lock);
	sl = find_locked(t, ino);
	if (sl)
		sl->plain = gen + 1;
	pthread_mutex_unlock(&t->lock);
}

bool ino_is_plain(struct ino_table *t, uint64_t ino, uint64_t gen)
{
	struct slot *sl;
	bool plain;

	pthread_mutex_lock(&t->lock);
	sl = find_locked(t, ino);
	plain = sl && sl->plain == gen + 1;
	pthread_mutex_unlock(&t->lock);
	return plain;
}

size_t ino_snapshot(struct ino_table *t, uint64_t *out, size_t max)
{
	size_t k = 0;

	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i < t->cap && k < max; i++)
		if (t->v[i].ino && t->v[i].ino != TOMB)
			out[k++] = t->v[i].ino;
	pthread_mutex_unlock(&t->lock);
	return k;
}

size_t ino_count(struct ino_table *t)
{
	size_t n;

	pthread_mutex_lock(&t->lock);
	n = t->live;
	pthread_mutex_unlock(&t->lock);
	return n;
}
