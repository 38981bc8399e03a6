/*
 * ra.c - read-ahead of chunks for sequential readers (see ra.h).
 *
 * A bounded ring of extents to load, and a few threads that load each one into the chunk
 * cache: while the kernel copies out one chunk, the next ones are read and checked (and
 * decompressed) on the other core. A thread takes up to RA_SPAN jobs at once and reads
 * their chunks together (ra_load). A full ring refuses new work (the caller queues it
 * later); an extent already queued is not queued twice.
 *
 * Threads: ra_push from any thread; the ring is protected by ra->lock.
 *
 * SPDX-License-Identifier: MIT
 */
#include "ra.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "ccache.h"
#include "store/log.h"
#include "store/store.h"

#define RA_RING 128
#define RA_SPAN 8	/* jobs a thread takes at once (read together) */

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
	atomic_bool no_direct;	/* the packs' filesystem refused O_DIRECT */
	pthread_t tid[RA_MAX_THREADS];
	unsigned nthreads;
};

/*
 * Loads the chunks of jobs @j[0..@n) (consecutive extents of a stream, mostly) into the
 * cache: those nobody has or is loading are claimed, read together past the page cache
 * (store_chunks_read_direct: one O_DIRECT read per run of records in a pack, checked in
 * place) and handed to the cache in the buffers they were read into; what cannot be read
 * that way (compressed chunks, remote packs, a filesystem without O_DIRECT) is loaded the
 * buffered way (fs_chunk_load). A damaged chunk is abandoned, not logged: the reader that
 * asks for it reads it again and reports it.
 */
static void ra_load(struct ra *ra, const struct ra_job *j, unsigned n)
{
	struct store_direct d[RA_SPAN];
	struct ccache_entry *ce[RA_SPAN];
	unsigned at[RA_SPAN], k = 0;
	struct ccache *cc = ra->fs->cc;

	for (unsigned i = 0; i < n; i++) {
		int r = ccache_acquire(cc, &j[i].e.chunk, false, &ce[k]);

		if (r == CCACHE_HIT)
			ccache_put(cc, ce[k]);
		if (r != CCACHE_CLAIMED)
			continue;
		d[k].id = j[i].e.chunk;
		d[k].raw_len = j[i].e.len;
		d[k].rc = -EOPNOTSUPP;
		at[k++] = i;
	}
	if (k && !atomic_load(&ra->no_direct) &&
	    store_chunks_read_direct(ra->fs->st, d, k) == -EINVAL)
		atomic_store(&ra->no_direct, true);
	for (unsigned i = 0; i < k; i++) {
		const struct ra_job *job = &j[at[i]];

		if (d[i].rc == 0) {
			ccache_fill_in(cc, ce[i], d[i].mem, d[i].data, d[i].raw_len);
			ccache_put(cc, ce[i]);
		} else if (d[i].rc != -EOPNOTSUPP) {
			ccache_abandon(cc, ce[i]);
		} else if (fs_chunk_load(ra->fs, &job->e, job->ino, false, ce[i]) == 0) {
			ccache_put(cc, ce[i]);
		}
	}
}

static void *ra_main(void *arg)
{
	struct ra *ra = arg;

	pthread_mutex_lock(&ra->lock);
	for (;;) {
		struct ra_job j[RA_SPAN];
		unsigned n;

		while (!ra->n && !ra->stop)
			pthread_cond_wait(&ra->cond, &ra->lock);
		if (ra->stop)
			break;
		for (n = 0; n < RA_SPAN && ra->n; n++) {
			j[n] = ra->ring[ra->head];
			ra->head = (ra->head + 1) % RA_RING;
			ra->n--;
		}
		pthread_mutex_unlock(&ra->lock);
		ra_load(ra, j, n);
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

bool ra_push(struct ra *ra, const struct store_extent *e, uint64_t ino)
{
	bool ok = true;

	if (!ra || e->hole)
		return true;
	pthread_mutex_lock(&ra->lock);
	if (queued_at(ra, &e->chunk) < ra->n) {
		pthread_mutex_unlock(&ra->lock);
		return true;
	}
	if (ra->n < RA_RING && !ra->stop) {
		struct ra_job *j = &ra->ring[(ra->head + ra->n) % RA_RING];

		j->e = *e;
		j->ino = ino;
		ra->n++;
	} else {
		ok = false;
	}
	pthread_mutex_unlock(&ra->lock);
	return ok;
}

void ra_kick(struct ra *ra)
{
	if (!ra)
		return;
	pthread_mutex_lock(&ra->lock);
	if (ra->n > RA_SPAN)
		pthread_cond_broadcast(&ra->cond);
	else if (ra->n)
		pthread_cond_signal(&ra->cond);
	pthread_mutex_unlock(&ra->lock);
}
