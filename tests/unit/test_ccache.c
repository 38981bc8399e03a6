/*
 * test_ccache.c - the chunk cache stays under its byte cap (plus what readers hold),
 * never frees a held entry, returns the same entry for concurrent inserts of one id,
 * and survives many threads getting and putting at once.
 *
 * SPDX-License-Identifier: MIT
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static void test_bounds(void)
{
	struct ccache *cc;
	struct ccache_entry *held;
	size_t len;

	ccache_new(10 * 1000, &cc);
	held = ccache_insert(cc, &(struct fp256){ { 0 } }, blob(1000, 7), 1000);
	for (unsigned i = 1; i < 100; i++) {
		struct fp256 id = id_of(i);
		struct ccache_entry *e = ccache_insert(cc, &id, blob(1000, i), 1000);

		CHECK(e != NULL, "insert %u", i);
		ccache_put(cc, e);
		CHECK(ccache_bytes(cc) <= 11 * 1000, "cap exceeded: %zu", ccache_bytes(cc));
	}
	/* the held entry survived eviction and its bytes are intact */
	CHECK(ccache_data(held, &len)[999] == (uint8_t)(7 + 999) && len == 1000, "held entry");
	ccache_put(cc, held);
	/* least recently used went first: the newest are still there */
	{
		struct fp256 id = id_of(99);
		struct ccache_entry *e = ccache_get(cc, &id);

		CHECK(e != NULL, "newest entry evicted");
		ccache_put(cc, e);
		id = id_of(1);
		e = ccache_get(cc, &id);
		CHECK(e == NULL, "oldest entry kept");
		ccache_put(cc, e);
	}
	ccache_free(cc);
	/* cap 0: nothing stays */
	ccache_new(0, &cc);
	held = ccache_insert(cc, &(struct fp256){ { 1 } }, blob(10, 1), 10);
	ccache_put(cc, held);
	CHECK(ccache_count(cc) == 0, "cap 0 kept %zu entries", ccache_count(cc));
	ccache_free(cc);
}

static struct ccache *shared;

static void *hammer(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;

	for (unsigned i = 0; i < 20000; i++) {
		unsigned k = (seed * 7919u + i * 31u) % 300;
		struct fp256 id = id_of(k);
		struct ccache_entry *e = ccache_get(shared, &id);
		size_t len;

		if (!e)
			e = ccache_insert(shared, &id, blob(512 + k, k), 512 + k);
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

int main(void)
{
	test_bounds();
	test_threads();
	return test_result("test_ccache");
}
