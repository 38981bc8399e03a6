/*
 * ccache.c - bounded LRU of decompressed chunks (see ccache.h).
 *
 * A chained hash table (buckets grow with the entry count) and a doubly linked LRU list,
 * both under cc->lock. Entries with refs > 0 are never freed; an entry evicted while
 * held is unlinked from the table and freed by the last ccache_put().
 *
 * SPDX-License-Identifier: MIT
 */
#include "ccache.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct ccache_entry {
	struct fp256 id;
	uint8_t *data;
	size_t len;
	unsigned refs;		/* cc->lock */
	bool linked;		/* in the table and the LRU list */
	struct ccache_entry *hnext;
	struct ccache_entry *prev, *next;	/* LRU: head = most recent */
};

struct ccache {
	pthread_mutex_t lock;	/* protects everything below */
	size_t cap, bytes, count;
	struct ccache_entry **buckets;
	size_t nbuckets;
	struct ccache_entry *head, *tail;
};

int ccache_new(size_t cap, struct ccache **out)
{
	struct ccache *cc = calloc(1, sizeof(*cc));

	*out = NULL;
	if (!cc)
		return -ENOMEM;
	cc->cap = cap;
	cc->nbuckets = 1024;
	cc->buckets = calloc(cc->nbuckets, sizeof(*cc->buckets));
	if (!cc->buckets) {
		free(cc);
		return -ENOMEM;
	}
	pthread_mutex_init(&cc->lock, NULL);
	*out = cc;
	return 0;
}

void ccache_free(struct ccache *cc)
{
	struct ccache_entry *e, *n;

	if (!cc)
		return;
	for (e = cc->head; e; e = n) {
		n = e->next;
		assert(e->refs == 0);
		free(e->data);
		free(e);
	}
	free(cc->buckets);
	pthread_mutex_destroy(&cc->lock);
	free(cc);
}

static size_t bucket_of(const struct ccache *cc, const struct fp256 *id)
{
	uint64_t h;

	memcpy(&h, id->b, sizeof(h));
	return (size_t)(h & (cc->nbuckets - 1));
}

static void lru_unlink(struct ccache *cc, struct ccache_entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		cc->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		cc->tail = e->prev;
	e->prev = e->next = NULL;
}

static void lru_push(struct ccache *cc, struct ccache_entry *e)
{
	e->prev = NULL;
	e->next = cc->head;
	if (cc->head)
		cc->head->prev = e;
	cc->head = e;
	if (!cc->tail)
		cc->tail = e;
}

static void table_remove(struct ccache *cc, struct ccache_entry *e)
{
	struct ccache_entry **pp = &cc->buckets[bucket_of(cc, &e->id)];

	while (*pp && *pp != e)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = e->hnext;
	lru_unlink(cc, e);
	e->linked = false;
	cc->bytes -= e->len;
	cc->count--;
}

static void grow(struct ccache *cc)
{
	size_t n = cc->nbuckets * 2;
	struct ccache_entry **b = calloc(n, sizeof(*b));

	if (!b)
		return;
	for (size_t i = 0; i < cc->nbuckets; i++) {
		struct ccache_entry *e = cc->buckets[i], *next;

		for (; e; e = next) {
			uint64_t h;

			next = e->hnext;
			memcpy(&h, e->id.b, sizeof(h));
			e->hnext = b[h & (n - 1)];
			b[h & (n - 1)] = e;
		}
	}
	free(cc->buckets);
	cc->buckets = b;
	cc->nbuckets = n;
}

/* Drops least recently used unheld entries until the cache fits (lock held). */
static void evict(struct ccache *cc)
{
	struct ccache_entry *e = cc->tail, *prev;

	while (e && cc->bytes > cc->cap) {
		prev = e->prev;
		if (e->refs == 0) {
			table_remove(cc, e);
			free(e->data);
			free(e);
		}
		e = prev;
	}
}

static struct ccache_entry *find(struct ccache *cc, const struct fp256 *id)
{
	struct ccache_entry *e = cc->buckets[bucket_of(cc, id)];

	while (e && !fp_equal(&e->id, id))
		e = e->hnext;
	return e;
}

struct ccache_entry *ccache_get(struct ccache *cc, const struct fp256 *id)
{
	struct ccache_entry *e;

	pthread_mutex_lock(&cc->lock);
	e = find(cc, id);
	if (e) {
		e->refs++;
		lru_unlink(cc, e);
		lru_push(cc, e);
	}
	pthread_mutex_unlock(&cc->lock);
	return e;
}

struct ccache_entry *ccache_insert(struct ccache *cc, const struct fp256 *id, uint8_t *data,
				   size_t len)
{
	struct ccache_entry *e, *old;

	e = calloc(1, sizeof(*e));
	if (!e) {
		free(data);
		return NULL;
	}
	e->id = *id;
	e->data = data;
	e->len = len;
	e->refs = 1;
	pthread_mutex_lock(&cc->lock);
	old = find(cc, id);
	if (old) {
		old->refs++;
		pthread_mutex_unlock(&cc->lock);
		free(data);
		free(e);
		return old;
	}
	if (cc->count >= cc->nbuckets)
		grow(cc);
	e->hnext = cc->buckets[bucket_of(cc, id)];
	cc->buckets[bucket_of(cc, id)] = e;
	e->linked = true;
	lru_push(cc, e);
	cc->bytes += len;
	cc->count++;
	evict(cc);
	pthread_mutex_unlock(&cc->lock);
	return e;
}

void ccache_put(struct ccache *cc, struct ccache_entry *e)
{
	bool drop = false;

	if (!e)
		return;
	pthread_mutex_lock(&cc->lock);
	assert(e->refs > 0);
	e->refs--;
	if (e->refs == 0 && e->linked && cc->bytes > cc->cap)
		evict(cc);
	else if (e->refs == 0 && !e->linked)
		drop = true;
	pthread_mutex_unlock(&cc->lock);
	if (drop) {
		free(e->data);
		free(e);
	}
}

const uint8_t *ccache_data(const struct ccache_entry *e, size_t *len)
{
	*len = e->len;
	return e->data;
}

size_t ccache_bytes(struct ccache *cc)
{
	size_t n;

	pthread_mutex_lock(&cc->lock);
	n = cc->bytes;
	pthread_mutex_unlock(&cc->lock);
	return n;
}

size_t ccache_count(struct ccache *cc)
{
	size_t n;

	pthread_mutex_lock(&cc->lock);
	n = cc->count;
	pthread_mutex_unlock(&cc->lock);
	return n;
}
