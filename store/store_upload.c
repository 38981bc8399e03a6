/*
 * store_upload.c - a remote store's uploader: sealed packs are put (and confirmed) in the
 * background while the next ones fill.
 *
 * A writer of a remote store seals a pack when it reaches pack_target (store.c's append)
 * and when a commit names it (store_txn.c). Either way the pack is queued here, and one
 * uploader thread puts it (store_pack_put: upload, then the server's size and MD5 read
 * back and compared). A commit waits only for the packs it names that are not confirmed
 * yet (store_upl_wait), so the upload of a pack sealed by size overlaps with the reading,
 * chunking and compression of the next. The crash rules stay those of the commit protocol:
 * the index names a pack only after its confirmation (the commit waits for it), and a pack
 * no commit named is the next writer's to check (store.c, writer start-up).
 *
 * Bounded: at most UPL_MAX_QUEUED packs are queued or being put; a writer that seals one
 * more waits (under wlock: every appender waits, the back pressure of a slow server).
 * A failed put is sticky: every later queue, wait and append returns it, so the run
 * stops at its next step and the commit that would have named the pack fails (the tools
 * exit 3 saying why; store_pack_put logged it).
 *
 * Threads: store_upl_queue is called with wlock held or not; the uploader thread takes
 * only upl_lock (never wlock), so lock order is wlock before upl_lock. Fields of struct
 * store_upl are protected by upl_lock (store_int.h).
 * Errors: 0 or -errno.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store_int.h"

#define UPL_MAX_QUEUED 4	/* packs queued or being put (each up to pack_target) */

enum upl_state { UPL_QUEUED, UPL_RUNNING, UPL_DONE };

struct upl_job {
	uint32_t id;
	uint64_t len;
	enum upl_state state;
};

/* The oldest queued job, or NULL. upl_lock held. */
static struct upl_job *next_queued(struct store_upl *u)
{
	for (size_t i = 0; i < u->njobs; i++)
		if (u->jobs[i].state == UPL_QUEUED)
			return &u->jobs[i];
	return NULL;
}

static struct upl_job *find_job(struct store_upl *u, uint32_t id)
{
	for (size_t i = 0; i < u->njobs; i++)
		if (u->jobs[i].id == id)
			return &u->jobs[i];
	return NULL;
}

static void *upl_main(void *arg)
{
	struct store *st = arg;
	struct store_upl *u = &st->upl;

	pthread_mutex_lock(&u->lock);
	for (;;) {
		struct upl_job *j;
		uint32_t id;
		uint64_t len;
		int rc;

		while (!u->stop && !u->err && !(j = next_queued(u)))
			pthread_cond_wait(&u->cond, &u->lock);
		if (u->stop || u->err)
			break;
		j->state = UPL_RUNNING;
		id = j->id;
		len = j->len;
		pthread_mutex_unlock(&u->lock);
		rc = store_pack_put(st, id, len);
		pthread_mutex_lock(&u->lock);
		j = find_job(u, id);	/* the array may have moved */
		if (rc < 0) {
			if (!u->err)
				u->err = rc;
		} else if (j) {
			j->state = UPL_DONE;
		}
		u->busy--;
		pthread_cond_broadcast(&u->cond);
	}
	pthread_mutex_unlock(&u->lock);
	return NULL;
}

void store_upl_init(struct store *st)
{
	pthread_mutex_init(&st->upl.lock, NULL);
	pthread_cond_init(&st->upl.cond, NULL);
}

int store_upl_err(struct store *st)
{
	int rc;

	pthread_mutex_lock(&st->upl.lock);
	rc = st->upl.err;
	pthread_mutex_unlock(&st->upl.lock);
	return rc;
}

int store_upl_queue(struct store *st, uint32_t id, uint64_t len)
{
	struct store_upl *u = &st->upl;
	struct upl_job *j;
	int rc = 0;

	pthread_mutex_lock(&u->lock);
	if (!u->started) {
		rc = -pthread_create(&u->thread, NULL, upl_main, st);
		if (rc < 0) {
			dfs_err("cannot start the uploader thread: %s", dfs_strerror(rc));
			goto out;
		}
		u->started = true;
	}
	j = find_job(u, id);
	if (j) {
		rc = j->len == len ? u->err : -EINVAL;	/* a sealed pack does not grow */
		goto out;
	}
	while (!u->err && u->busy >= UPL_MAX_QUEUED)
		pthread_cond_wait(&u->cond, &u->lock);
	rc = u->err;
	if (rc < 0)
		goto out;
	if (u->njobs == u->cap) {
		size_t cap = u->cap ? u->cap * 2 : 16;
		struct upl_job *v = realloc(u->jobs, cap * sizeof(*v));

		if (!v) {
			rc = -ENOMEM;
			goto out;
		}
		u->jobs = v;
		u->cap = cap;
	}
	u->jobs[u->njobs++] = (struct upl_job){ .id = id, .len = len, .state = UPL_QUEUED };
	u->busy++;
	pthread_cond_broadcast(&u->cond);
out:
	pthread_mutex_unlock(&u->lock);
	return rc;
}

int store_upl_wait(struct store *st, const uint32_t *ids, size_t n)
{
	struct store_upl *u = &st->upl;
	int rc = 0;

	pthread_mutex_lock(&u->lock);
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct upl_job *j;

		while (!u->err && (j = find_job(u, ids[i])) && j->state != UPL_DONE)
			pthread_cond_wait(&u->cond, &u->lock);
		rc = u->err;
		if (rc == 0 && !find_job(u, ids[i]))
			rc = -ENOENT;	/* never queued: a bug of the caller */
	}
	pthread_mutex_unlock(&u->lock);
	return rc;
}

void store_upl_forget(struct store *st, const uint32_t *ids, size_t n)
{
	struct store_upl *u = &st->upl;

	pthread_mutex_lock(&u->lock);
	for (size_t i = 0; i < n; i++) {
		struct upl_job *j = find_job(u, ids[i]);

		if (j && j->state == UPL_DONE)
			*j = u->jobs[--u->njobs];
	}
	pthread_mutex_unlock(&u->lock);
}

void store_upl_stop(struct store *st)
{
	struct store_upl *u = &st->upl;
	bool started;

	pthread_mutex_lock(&u->lock);
	u->stop = true;
	started = u->started;
	pthread_cond_broadcast(&u->cond);
	pthread_mutex_unlock(&u->lock);
	if (started)
		pthread_join(u->thread, NULL);
	free(u->jobs);
	pthread_mutex_destroy(&u->lock);
	pthread_cond_destroy(&u->cond);
}
