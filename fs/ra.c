/*
 * ra.c - read-ahead of chunks for sequential readers (see ra.h).
 *
 * A bounded ring of extents to load, and a few threads that load each one into the chunk
 * cache (fs_chunk_ref, then ccache_put): while the kernel copies out one chunk, the next
 * ones are decompressed on the other core. A full ring drops new work (read-ahead is a
 * hint); an extent already queued is not queued twice.
 *
 * Threads: ra_push from any thread; the ring is protected by ra->lock.
 *
 * SPDX-License-Identifier: MIT
 */
#include "ra.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ccache.h"
#include "store/log.h"

#define RA_RING 64

struct ra_job {
	struct store_extent e;
	uint64_t ino;
};

struct ra {
	struct dfs_fs *fs;
	pthread_mutex_t lock;	/* protects everything below; lock order: after fh locks */
	pthread_cond_t cond;
	struct ra_job ring[RA_RING];
	unsigned head, n;
	bool stop;
	pthread_t tid[RA_MAX_THREADS];
	unsigned nthreads;
};

static void *ra_main(void *arg)
{
	struct ra *ra = arg;

	pthread_mutex_lock(&ra->lock);
	for (;;) {
		struct ra_job j;
		struct ccache_entry *ce;

		while (!ra->n && !ra->stop)
			pthread_cond_wait(&ra->cond, &ra->lock);
		if (ra->stop)
			break;
		j = ra->ring[ra->head];
		ra->head = (ra->head + 1) % RA_RING;
		ra->n--;
		pthread_mutex_unlock(&ra->lock);
		/* a damaged chunk is logged when a reader asks for it, not here */
		if (fs_chunk_ref(ra->fs, &j.e, j.ino, false, &ce) == 0)
			ccache_put(ra->fs->cc, ce);
		pthread_mutex_lock(&ra->lock);
	}
	pthread_mutex_unlock(&ra->lock);
	return NULL;
}

int ra_start(struct dfs_fs *fs, unsigned nthreads, struct ra **out)
{
	struct ra *ra = calloc(1, sizeof(*ra));

	*out = NULL;
	if (!ra)
		return -ENOMEM;
	ra->fs = fs;
	pthread_mutex_init(&ra->lock, NULL);
	pthread_cond_init(&ra->cond, NULL);
	if (nthreads > RA_MAX_THREADS)
		nthreads = RA_MAX_THREADS;
	for (unsigned i = 0; i < nthreads; i++) {
		if (pthread_create(&ra->tid[i], NULL, ra_main, ra) != 0)
			break;
		ra->nthreads++;
	}
	if (!ra->nthreads) {
		ra_stop(ra);
		return -EAGAIN;
	}
	*out = ra;
	return 0;
}

void ra_stop(struct ra *ra)
{
	if (!ra)
		return;
	pthread_mutex_lock(&ra->lock);
	ra->stop = true;
	pthread_cond_broadcast(&ra->cond);
	pthread_mutex_unlock(&ra->lock);
	for (unsigned i = 0; i < ra->nthreads; i++)
		pthread_join(ra->tid[i], NULL);
	pthread_mutex_destroy(&ra->lock);
	pthread_cond_destroy(&ra->cond);
	free(ra);
}

/* Where chunk @id is in the queue (0 = head), or ra->n (lock held). */
static unsigned queued_at(const struct ra *ra, const struct fp256 *id)
{
	unsigned i;

	for (i = 0; i < ra->n; i++)
		if (fp_equal(&ra->ring[(ra->head + i) % RA_RING].e.chunk, id))
			break;
	return i;
}

void ra_drop(struct ra *ra, const struct fp256 *id)
{
	unsigned i;

	if (!ra)
		return;
	pthread_mutex_lock(&ra->lock);
	i = queued_at(ra, id);
	if (i < ra->n) {
		/* the later jobs move up one place */
		for (; i + 1 < ra->n; i++)
			ra->ring[(ra->head + i) % RA_RING] = ra->ring[(ra->head + i + 1) % RA_RING];
		ra->n--;
	}
	pthread_mutex_unlock(&ra->lock);
}

void ra_push(struct ra *ra, const struct store_extent *e, uint64_t ino)
{
	if (!ra || e->hole)
		return;
	pthread_mutex_lock(&ra->lock);
	if (queued_at(ra, &e->chunk) < ra->n) {
		pthread_mutex_unlock(&ra->lock);
		return;
	}
	if (ra->n < RA_RING && !ra->stop) {
		struct ra_job *j = &ra->ring[(ra->head + ra->n) % RA_RING];

		j->e = *e;
		j->ino = ino;
		ra->n++;
		pthread_cond_signal(&ra->cond);
	}
	pthread_mutex_unlock(&ra->lock);
}
