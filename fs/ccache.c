/*
 * ccache.c - bounded LRU of decompressed chunks (see ccache.h).
 *
 * A chained hash table (buckets grow with the entry count) and a doubly linked LRU list,
 * both under cc->lock. Entries with refs > 0 are never freed; an entry evicted while
 * held is unlinked from the table and freed by the last ccache_put().
 *
 * An entry being loaded (ccache_acquire gave CCACHE_CLAIMED) is in the table with no
 * bytes and loading set; the loader holds a reference, so it is never evicted. Threads
 * that want it wait on cc->loaded, which ccache_fill and ccache_abandon broadcast: one
 * decompression per chunk, however many readers (and read-ahead threads) ask at once.
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
	bool loading;		/* claimed, bytes not there yet (cc->lock) */
	bool abandoned;		/* the load failed: waiters look again (cc->lock) */
	size_t streamed;	/* bytes served to sequential readers (cc->lock) */
	struct ccache_entry *hnext;
	struct ccache_entry *prev, *next;	/* LRU: head = most recent */
};

struct ccache {
	pthread_mutex_t lock;	/* protects everything below */
	pthread_cond_t loaded;	/* an entry stopped loading (filled or abandoned) */
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
	pthread_cond_init(&cc->loaded, NULL);
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
	pthread_cond_destroy(&cc->loaded);
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

/* Drops a reference (lock held); true when the caller must free @e (after unlocking). */
static bool unref(struct ccache *cc, struct ccache_entry *e)
{
	assert(e->refs > 0);
	e->refs--;
	if (e->refs)
		return false;
	if (!e->linked)
		return true;
	if (cc->bytes > cc->cap)
		evict(cc);	/* may free @e: not touched after */
	return false;
}

static void entry_free(struct ccache_entry *e)
{
	free(e->data);
	free(e);
}

/* A new loading entry for @id, referenced once (lock held); NULL when out of memory. */
static struct ccache_entry *claim(struct ccache *cc, const struct fp256 *id)
{
	struct ccache_entry *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->id = *id;
	e->refs = 1;
	e->loading = true;
	if (cc->count >= cc->nbuckets)
		grow(cc);
	e->hnext = cc->buckets[bucket_of(cc, id)];
	cc->buckets[bucket_of(cc, id)] = e;
	e->linked = true;
	lru_push(cc, e);
	cc->count++;
	return e;
}

int ccache_acquire(struct ccache *cc, const struct fp256 *id, bool wait,
		   struct ccache_entry **out)
{
	struct ccache_entry *e;

	*out = NULL;
	pthread_mutex_lock(&cc->lock);
	for (;;) {
		e = find(cc, id);
		if (!e) {
			e = claim(cc, id);
			pthread_mutex_unlock(&cc->lock);
			if (!e)
				return -ENOMEM;
			*out = e;
			return CCACHE_CLAIMED;
		}
		if (e->loading && !wait) {
			pthread_mutex_unlock(&cc->lock);
			return CCACHE_BUSY;
		}
		e->refs++;
		while (e->loading)
			pthread_cond_wait(&cc->loaded, &cc->lock);
		if (!e->abandoned)
			break;
		/* the loader failed: try (and fail, and report) for ourselves */
		if (unref(cc, e)) {
			pthread_mutex_unlock(&cc->lock);
			entry_free(e);
			pthread_mutex_lock(&cc->lock);
		}
	}
	lru_unlink(cc, e);
	lru_push(cc, e);
	pthread_mutex_unlock(&cc->lock);
	*out = e;
	return CCACHE_HIT;
}

void ccache_fill(struct ccache *cc, struct ccache_entry *e, uint8_t *data, size_t len)
{
	pthread_mutex_lock(&cc->lock);
	assert(e->loading && e->refs > 0);
	e->data = data;
	e->len = len;
	e->loading = false;
	if (e->linked) {
		cc->bytes += len;
		evict(cc);
	}
	pthread_cond_broadcast(&cc->loaded);
	pthread_mutex_unlock(&cc->lock);
}

void ccache_abandon(struct ccache *cc, struct ccache_entry *e)
{
	bool drop;

	pthread_mutex_lock(&cc->lock);
	assert(e->loading && e->refs > 0);
	if (e->linked)
		table_remove(cc, e);
	e->loading = false;
	e->abandoned = true;
	pthread_cond_broadcast(&cc->loaded);
	drop = unref(cc, e);
	pthread_mutex_unlock(&cc->lock);
	if (drop)
		entry_free(e);
}

bool ccache_has(struct ccache *cc, const struct fp256 *id)
{
	bool r;

	pthread_mutex_lock(&cc->lock);
	r = find(cc, id) != NULL;
	pthread_mutex_unlock(&cc->lock);
	return r;
}

/* Streams have been served all of @e's bytes: the last holder takes it out (lock held). */
static void put_streamed(struct ccache *cc, struct ccache_entry *e)
{
	if (e->streamed && e->streamed >= e->len && e->refs == 1 && e->linked && !e->loading)
		table_remove(cc, e);
}

void ccache_put(struct ccache *cc, struct ccache_entry *e)
{
	ccache_put_streamed(cc, e, 0);
}

void ccache_put_streamed(struct ccache *cc, struct ccache_entry *e, size_t n)
{
	bool drop;

	if (!e)
		return;
	pthread_mutex_lock(&cc->lock);
	e->streamed += n;
	put_streamed(cc, e);
	drop = unref(cc, e);
	pthread_mutex_unlock(&cc->lock);
	if (drop)
		entry_free(e);
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
