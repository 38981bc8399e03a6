/*
 * test_ccache.c - the chunk cache stays under its byte cap (plus what readers hold),
 * never frees a held entry, loads a chunk once however many threads ask for it at the
 * same time (the others wait, or are told it is busy), lets waiters load for themselves
 * when a load fails, lets the chunks a stream was served whole leave it, and survives many
 * threads getting and putting at once.
 *
 * SPDX-License-Identifier: MIT
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs/ccache.h"

#include "test_check.h"

static struct fp256 id_of(unsigned i)
{
	struct fp256 id;

	memset(&id, 0, sizeof(id));
	memcpy(id.b, &i, sizeof(i));
	id.b[31] = (uint8_t)i;
	return id;
}

static uint8_t *blob(size_t n, unsigned seed)
{
	uint8_t *p = malloc(n);

	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + i);
	return p;
}

/* Chunk @id from the cache, loaded as blob(@n, @seed) on a miss (counted in *@loads). */
static struct ccache_entry *load(struct ccache *cc, const struct fp256 *id, size_t n,
				 unsigned seed, atomic_uint *loads)
{
	struct ccache_entry *e;
	int r = ccache_acquire(cc, id, true, &e);

	if (r == CCACHE_CLAIMED) {
		if (loads)
			atomic_fetch_add(loads, 1);
		ccache_fill(cc, e, blob(n, seed), n);
	}
	return r < 0 ? NULL : e;
}

static void test_bounds(void)
{
	struct ccache *cc;
	struct ccache_entry *held;
	size_t len;

	ccache_new(10 * 1000, &cc);
	held = load(cc, &(struct fp256){ { 0 } }, 1000, 7, NULL);
	for (unsigned i = 1; i < 100; i++) {
		struct fp256 id = id_of(i);
		struct ccache_entry *e = load(cc, &id, 1000, i, NULL);

		CHECK(e != NULL, "insert %u", i);
		ccache_put(cc, e);
		CHECK(ccache_bytes(cc) <= 11 * 1000, "cap exceeded: %zu", ccache_bytes(cc));
	}
	/* the held entry survived eviction and its bytes are intact */
	CHECK(ccache_data(held, &len)[999] == (uint8_t)(7 + 999) && len == 1000, "held entry");
	ccache_put(cc, held);
	/* least recently used went first: the newest are still there */
	{
		struct fp256 newest = id_of(99), oldest = id_of(1);

		CHECK(ccache_has(cc, &newest), "newest entry evicted");
		CHECK(!ccache_has(cc, &oldest), "oldest entry kept");
	}
	ccache_free(cc);
	/* cap 0: nothing stays */
	ccache_new(0, &cc);
	held = load(cc, &(struct fp256){ { 1 } }, 10, 1, NULL);
	ccache_put(cc, held);
	CHECK(ccache_count(cc) == 0, "cap 0 kept %zu entries", ccache_count(cc));
	ccache_free(cc);
}

/*
 * A chunk whose bytes a sequential reader has all been served leaves the cache when
 * nobody else holds it: served in pieces in any order (the kernel's reads of one stream
 * arrive out of order), and while another holds it, at that holder's put. Served in part,
 * or read by others only, it stays (and held bytes stay valid).
 */
static void test_streamed(void)
{
	struct ccache *cc;
	struct ccache_entry *a, *b;
	struct fp256 x = id_of(1), y = id_of(2), z = id_of(3);
	size_t len;

	ccache_new(1 << 20, &cc);
	a = load(cc, &x, 1000, 3, NULL);
	ccache_put_streamed(cc, a, 1000);
	CHECK(!ccache_has(cc, &x) && ccache_bytes(cc) == 0 && ccache_count(cc) == 0,
	      "a streamed chunk stayed: %zu bytes", ccache_bytes(cc));
	/* its end first, then its start */
	a = load(cc, &z, 1000, 4, NULL);
	ccache_put_streamed(cc, a, 400);
	CHECK(ccache_has(cc, &z) && ccache_bytes(cc) == 1000, "a chunk served in part left");
	a = load(cc, &z, 1000, 4, NULL);
	ccache_put_streamed(cc, a, 600);
	CHECK(!ccache_has(cc, &z) && ccache_bytes(cc) == 0,
	      "a chunk served whole in two pieces stayed");
	a = load(cc, &y, 1000, 5, NULL);
	b = load(cc, &y, 1000, 5, NULL);
	CHECK(a == b, "two references to one entry");
	ccache_put_streamed(cc, a, 1000);
	CHECK(ccache_has(cc, &y) && ccache_bytes(cc) == 1000, "a held chunk left the cache");
	CHECK(ccache_data(b, &len)[999] == (uint8_t)(5 + 999) && len == 1000, "held bytes");
	ccache_put(cc, b);
	CHECK(!ccache_has(cc, &y) && ccache_bytes(cc) == 0,
	      "a streamed chunk stayed after its last holder's put");
	a = load(cc, &y, 1000, 5, NULL);
	ccache_put(cc, a);
	CHECK(ccache_has(cc, &y), "a chunk put normally left the cache");
	ccache_free(cc);
}

static struct ccache *shared;

static void *hammer(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;

	for (unsigned i = 0; i < 20000; i++) {
		unsigned k = (seed * 7919u + i * 31u) % 300;
		struct fp256 id = id_of(k);
		struct ccache_entry *e = load(shared, &id, 512 + k, k, NULL);
		size_t len;

		if (e) {
			const uint8_t *d = ccache_data(e, &len);

			if (len != 512 + k || d[len - 1] != (uint8_t)(k + len - 1))
				__atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED);
			ccache_put(shared, e);
		}
	}
	return NULL;
}

static void test_threads(void)
{
	pthread_t t[8];

	ccache_new(64 * 1024, &shared);
	for (uintptr_t i = 0; i < 8; i++)
		pthread_create(&t[i], NULL, hammer, (void *)i);
	for (int i = 0; i < 8; i++)
		pthread_join(t[i], NULL);
	CHECK(ccache_bytes(shared) <= 64 * 1024, "cap exceeded after threads");
	ccache_free(shared);
}

/* ---- single-flight loads ---- */

struct waiter {
	struct ccache *cc;
	struct fp256 id;
	int got;		/* what ccache_acquire answered */
	struct ccache_entry *e;
	int done;
};

static void *wait_for(void *arg)
{
	struct waiter *w = arg;

	w->got = ccache_acquire(w->cc, &w->id, true, &w->e);
	__atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void test_single_flight(void)
{
	struct ccache *cc;
	struct ccache_entry *e, *other;
	struct fp256 id = id_of(5);
	struct waiter w[3];
	pthread_t t[3];
	size_t len;
	int r;

	ccache_new(100 * 1000, &cc);
	r = ccache_acquire(cc, &id, true, &e);
	CHECK(r == CCACHE_CLAIMED && e, "first acquire claims (%d)", r);
	/* being loaded: present for read-ahead, not gettable, busy for those who do not wait */
	CHECK(ccache_has(cc, &id), "a loading chunk is not 'had'");
	r = ccache_acquire(cc, &id, false, &other);
	CHECK(r == CCACHE_BUSY && !other, "no-wait acquire of a loading chunk: %d", r);
	CHECK(ccache_bytes(cc) == 0, "a loading entry counts bytes");
	for (int i = 0; i < 3; i++) {
		w[i] = (struct waiter){ .cc = cc, .id = id };
		pthread_create(&t[i], NULL, wait_for, &w[i]);
	}
	usleep(50 * 1000);
	for (int i = 0; i < 3; i++)
		CHECK(!__atomic_load_n(&w[i].done, __ATOMIC_ACQUIRE), "waiter %d did not wait", i);
	ccache_fill(cc, e, blob(2000, 9), 2000);
	for (int i = 0; i < 3; i++) {
		pthread_join(t[i], NULL);
		CHECK(w[i].got == CCACHE_HIT && w[i].e == e, "waiter %d: %d", i, w[i].got);
		CHECK(ccache_data(w[i].e, &len)[1999] == (uint8_t)(9 + 1999) && len == 2000,
		      "waiter %d bytes", i);
		ccache_put(cc, w[i].e);
	}
	ccache_put(cc, e);
	CHECK(ccache_bytes(cc) == 2000 && ccache_count(cc) == 1, "filled entry accounted");

	/* a failed load: waiters try for themselves (one claims, the other waits for it) */
	id = id_of(6);
	r = ccache_acquire(cc, &id, true, &e);
	CHECK(r == CCACHE_CLAIMED, "claim 6");
	for (int i = 0; i < 2; i++) {
		w[i] = (struct waiter){ .cc = cc, .id = id };
		pthread_create(&t[i], NULL, wait_for, &w[i]);
	}
	usleep(50 * 1000);
	ccache_abandon(cc, e);
	for (int k = 0; k < 200; k++) {	/* one of them now holds the claim */
		if (__atomic_load_n(&w[0].done, __ATOMIC_ACQUIRE) ||
		    __atomic_load_n(&w[1].done, __ATOMIC_ACQUIRE))
			break;
		usleep(10 * 1000);
	}
	{
		int c = __atomic_load_n(&w[0].done, __ATOMIC_ACQUIRE) ? 0 : 1;

		CHECK(__atomic_load_n(&w[c].done, __ATOMIC_ACQUIRE), "nobody claimed after abandon");
		CHECK(w[c].got == CCACHE_CLAIMED, "after abandon: %d", w[c].got);
		ccache_fill(cc, w[c].e, blob(10, 3), 10);
		pthread_join(t[0], NULL);
		pthread_join(t[1], NULL);
		CHECK(w[1 - c].got == CCACHE_HIT && w[1 - c].e == w[c].e, "second waiter: %d",
		      w[1 - c].got);
		ccache_put(cc, w[0].e);
		ccache_put(cc, w[1].e);
	}
	CHECK(ccache_count(cc) == 2 && ccache_bytes(cc) == 2010, "after abandon: %zu entries",
	      ccache_count(cc));

	/* abandoned with nobody waiting: gone, and claimable again */
	id = id_of(7);
	ccache_acquire(cc, &id, true, &e);
	ccache_abandon(cc, e);
	CHECK(!ccache_has(cc, &id) && ccache_count(cc) == 2, "abandoned entry stayed");
	r = ccache_acquire(cc, &id, false, &e);
	CHECK(r == CCACHE_CLAIMED, "re-claim after abandon: %d", r);
	ccache_fill(cc, e, blob(10, 4), 10);
	ccache_put(cc, e);
	ccache_free(cc);

	/* cap 0: a filled entry is dropped when its last reference goes */
	ccache_new(0, &cc);
	id = id_of(8);
	ccache_acquire(cc, &id, true, &e);
	ccache_fill(cc, e, blob(10, 4), 10);
	CHECK(ccache_data(e, &len)[9] == (uint8_t)(4 + 9), "cap 0 fill");
	ccache_put(cc, e);
	CHECK(ccache_count(cc) == 0 && ccache_bytes(cc) == 0, "cap 0 kept the entry");
	ccache_free(cc);
}

/* many threads, each chunk loaded exactly once while it stays cached */
static atomic_uint loads;

static void *loader(void *arg)
{
	struct ccache *cc = arg;

	for (unsigned i = 0; i < 2000; i++) {
		struct fp256 id = id_of(i % 50);
		struct ccache_entry *e = load(cc, &id, 100, i % 50, &loads);
		size_t len;

		if (!e || ccache_data(e, &len)[99] != (uint8_t)(i % 50 + 99))
			__atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED);
		ccache_put(cc, e);
	}
	return NULL;
}

static void test_single_flight_threads(void)
{
	struct ccache *cc;
	pthread_t t[8];

	ccache_new(1 << 20, &cc);	/* all 50 chunks fit: each loads once */
	for (int i = 0; i < 8; i++)
		pthread_create(&t[i], NULL, loader, cc);
	for (int i = 0; i < 8; i++)
		pthread_join(t[i], NULL);
	CHECK(atomic_load(&loads) == 50, "%u loads of 50 chunks", atomic_load(&loads));
	ccache_free(cc);
}

int main(void)
{
	test_bounds();
	test_streamed();
	test_single_flight();
	test_single_flight_threads();
	test_threads();
	return test_result("test_ccache");
}
