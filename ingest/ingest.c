/*
 * ingest.c - ingest_source(): one source into the store (see ingest.h): the run's state,
 * its threads, the committer loop in the caller's thread, the deletion threshold and the
 * source record; and the dry run's plan and --explain, which classify the live source.
 *
 * Threads and locks: see ingest_int.h. Errors: -errno with the report's outcome and
 * message; nothing is printed.
 *
 * SPDX-License-Identifier: MIT
 */
#include "ingest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "exclude.h"
#include "fstree.h"
#include "ingest_int.h"
#include "srcfile.h"
#include "store/fp.h"
#include "store/log.h"
#include "store/pack.h"

/* ---- the run's failures and report ------------------------------------------------------- */

void ing_add_failure(struct ing *g, const uint8_t *path, size_t len, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&g->ring_lock);
	if (g->nfails == g->capfails) {
		size_t cap = g->capfails ? g->capfails * 2 : 16;
		struct ingest_failure *f = realloc(g->fails, cap * sizeof(*f));

		if (!f) {
			/* a failure must never go unreported: the run stops instead */
			g->fatal = -ENOMEM;
			pthread_mutex_unlock(&g->ring_lock);
			return;
		}
		g->fails = f;
		g->capfails = cap;
	}
	g->fails[g->nfails].path = malloc(len + 1);
	if (g->fails[g->nfails].path) {
		memcpy(g->fails[g->nfails].path, path, len);
		g->fails[g->nfails].len = len;
		g->fails[g->nfails].why = strdup(why);
		g->nfails++;
	} else {
		g->fatal = -ENOMEM;
	}
	pthread_mutex_unlock(&g->ring_lock);
}

static void live_release(struct ingest_live_entry *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].path);
		free(v[i].target);
	}
	free(v);
}

void ingest_report_release(struct ingest_report *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nfails; i++) {
		free(r->fails[i].path);
		free(r->fails[i].why);
	}
	free(r->fails);
	for (size_t i = 0; i < r->nskipped; i++)
		free(r->skipped[i].path);
	free(r->skipped);
	cls_tally_release(&r->cats);
	free(r->name);
	live_release(r->live, r->nlive);
	memset(r, 0, sizeof(*r));
}

static int report_set(struct ingest_report *r, enum ingest_outcome o, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Sets the outcome and its message; returns @rc. */
static int report_set(struct ingest_report *r, enum ingest_outcome o, int rc, const char *fmt, ...)
{
	va_list ap;

	r->outcome = o;
	va_start(ap, fmt);
	vsnprintf(r->message, sizeof(r->message), fmt, ap);
	va_end(ap);
	return rc;
}

int ingest_dryset_new(struct ingest_dryset **out)
{
	struct ingest_dryset *d = calloc(1, sizeof(*d));

	*out = NULL;
	if (!d)
		return -ENOMEM;
	pthread_mutex_init(&d->lock, NULL);
	d->cap = INGEST_DRY_CAP;
	if (ing_meter_new(&d->meter) < 0) {
		pthread_mutex_destroy(&d->lock);
		free(d);
		return -ENOMEM;
	}
#ifdef DFS_TEST_FAULTS
	/* DFS_DRY_CAP=N: a small set, so tests reach the sampling */
	if (getenv("DFS_DRY_CAP") && atol(getenv("DFS_DRY_CAP")) >= 16)
		d->cap = (size_t)atol(getenv("DFS_DRY_CAP"));
#endif
	*out = d;
	return 0;
}

void ingest_dryset_free(struct ingest_dryset *d)
{
	if (!d)
		return;
	u64map_release(&d->ids);
	u64set_release(&d->cids);
	ing_meter_free(d->meter);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

void ingest_dryset_use_store(struct ingest_dryset *d, struct store *st)
{
	d->st = st;
}

void ingest_dryset_estimate(struct ingest_dryset *d, struct ingest_dry_estimate *e)
{
	pthread_mutex_lock(&d->lock);
	e->sample_every = 1ull << d->shift;
	e->new_chunks = d->chunks << d->shift;
	e->new_raw = d->raw << d->shift;
	e->compression = d->comp_raw && d->comp_stored ?
			 (double)d->comp_raw / (double)d->comp_stored : 1.0;
	e->incomplete = d->err != 0;
	e->new_contents = ing_meter_contents(d->meter);
	e->new_content_meta = ing_meter_estimate(d->meter);
	pthread_mutex_unlock(&d->lock);
	/* as a real ingest appends them: the compressed bytes and a record header each */
	e->new_stored = (uint64_t)((double)e->new_raw / e->compression) +
			e->new_chunks * PACK_REC_HDR;
}

bool ingest_valid_name(const char *n)
{
	size_t len = strlen(n);

	return len && len <= 255 && !strchr(n, '/') && strcmp(n, ".") && strcmp(n, "..");
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* @complete: the walk has ended and every item was taken, so what was done is the total
 * (the pre-walk, stopped with the other threads, may not have finished counting). */
static void progress(struct ing *g, double t0, bool complete)
{
	struct ingest_progress p = {
		.source = g->source_name,
		.files_done = atomic_load(&g->files_done) + g->skipped_unchanged,
		.files_total = atomic_load(&g->total_files),
		.bytes_done = atomic_load(&g->bytes_done),
		.bytes_total = atomic_load(&g->total_bytes),
		.bytes_read = atomic_load(&g->bytes_read),
		.new_raw = atomic_load(&g->new_raw),
		.totals_final = atomic_load(&g->prewalk_done),
		.elapsed = now_s() - t0,
	};

	if (complete) {
		p.files_total = p.files_done;
		p.bytes_total = p.bytes_done;
		p.totals_final = true;
	}
	g->o->progress(&p, g->o->progress_arg);
}

static bool item_ready(const struct item *it)
{
	return !it->is_file_work || it->state == IT_DONE;
}

/* ---- the source record ------------------------------------------------------------------- */

/* The filesystem part of a src_fsid() identity: "uuid:U" whole, "fsid:F:ROOT" and
 * "dev:MA:MI:ROOT" without the root inode. Its length. */
static size_t fsid_fs_len(const uint8_t *p, size_t n)
{
	if (n > 5 && !memcmp(p, "uuid:", 5))
		return n;
	for (size_t i = n; i > 0; i--)
		if (p[i - 1] == ':')
			return i - 1;
	return n;
}

/*
 * A source that was a filesystem of its own, now found at a path that is an empty
 * directory or part of its parent's filesystem: the drive is not mounted (an unmounted
 * mount point). Writes what was found to @what.
 */
static bool nothing_mounted(int rootfd, const struct stat *rootsb, const struct store_str *old,
			    const char *fsid, char *what, size_t wl)
{
	struct src_listing l = { 0 };
	struct stat psb;
	bool empty = false;

	if (src_list_dir(rootfd, &l) == 0 && !l.err && l.n == 0)
		empty = true;
	src_listing_release(&l);
	if (empty) {
		snprintf(what, wl, "an empty directory");
		return true;
	}
	if (fstatat(rootfd, "..", &psb, 0) == 0 && psb.st_dev == rootsb->st_dev &&
	    psb.st_ino != rootsb->st_ino) {
		size_t a = fsid_fs_len(old->p, old->len);
		size_t b = fsid_fs_len((const uint8_t *)fsid, strlen(fsid));

		if (a != b || memcmp(old->p, fsid, a)) {
			snprintf(what, wl, "a directory of its parent's filesystem");
			return true;
		}
	}
	return false;
}

/* Looking for another source that is the same directory of the same filesystem. */
struct twin_find {
	struct store_txn *tx;
	const char *name, *fsid, *path;
	uint64_t root_st_ino;
	char *found;		/* its name (malloc'd) */
};

static int twin_check(void *arg, const struct store_source *s)
{
	struct twin_find *f = arg;
	struct store_inode in;
	bool same;

	if ((s->name.len == strlen(f->name) && !memcmp(s->name.p, f->name, s->name.len)) ||
	    s->fsid.len != strlen(f->fsid) || memcmp(s->fsid.p, f->fsid, s->fsid.len))
		return 0;
	if (s->root_ino && store_txn_get_inode(f->tx, s->root_ino, &in) == 0) {
		same = in.src_ino == f->root_st_ino;
		store_inode_release(&in);
	} else {	/* never completed: by its path */
		same = s->path.len == strlen(f->path) && !memcmp(s->path.p, f->path, s->path.len);
	}
	if (!same)
		return 0;
	f->found = strndup((const char *)s->name.p, s->name.len);
	return f->found ? 1 : -ENOMEM;
}

/*
 * Is the directory @path (@rootsb) already another source of the store (same filesystem
 * identity, same root directory)? Refused without --alias: its files would be stored
 * twice under two names. 0, or -errno (report set).
 */
static int twin_refuse(struct ing *g, struct store_txn *tx, const char *path, const char *fsid,
		       const struct stat *rootsb, struct ingest_report *rep)
{
	struct twin_find f = { .tx = tx, .name = g->source_name, .fsid = fsid, .path = path,
			       .root_st_ino = (uint64_t)rootsb->st_ino };
	int rc;

	if (g->o->alias)
		return 0;
	rc = store_each_source(g->st, twin_check, &f);
	if (rc < 0)
		return report_set(rep, INGEST_STORE_FAILED, rc, "%s: cannot read the source "
				  "records: %s", store_dir(g->st), dfs_strerror(rc));
	if (!f.found)
		return 0;
	report_set(rep, INGEST_REFUSED, -EEXIST, "%s is already in the store as source '%s' "
		   "(the same directory of the same filesystem): as '%s' every file would be "
		   "there twice; run with --name %s to update it, or add --alias to keep a "
		   "second name for it", path, f.found, g->source_name, f.found);
	free(f.found);
	return -EEXIST;
}

/*
 * Reads or creates the record of source @name in @tx (a new one is put now, for its id;
 * a known one is put back by source_finish, so a refused or interrupted run leaves it
 * as it was). A known name whose filesystem changed is refused without @replace
 * (-EXDEV), and said "nothing is mounted" when the path is an unmounted mount point.
 */
static int source_begin(struct ing *g, struct store_txn *tx, const char *path, const char *fsid,
			int rootfd, const struct stat *rootsb, struct store_source *src,
			uint64_t *prev_files, struct ingest_report *rep)
{
	const char *name = g->source_name;
	struct store_source old;
	bool is_new = false;
	int rc;

	rc = store_txn_get_source(tx, name, strlen(name), &old);
	if (rc == 0) {
		bool moved = old.fsid.len != strlen(fsid) || memcmp(old.fsid.p, fsid, old.fsid.len);
		char what[64];

		if (moved && !g->o->replace) {
			if (nothing_mounted(rootfd, rootsb, &old.fsid, fsid, what, sizeof(what)))
				report_set(rep, INGEST_REFUSED, -EXDEV,
					   "nothing is mounted at %s: source '%s' was ingested "
					   "from filesystem %.*s, and %s is now %s; mount the "
					   "drive and run again", path, name, (int)old.fsid.len,
					   (char *)old.fsid.p, path, what);
			else
				report_set(rep, INGEST_REFUSED, -EXDEV,
					   "source '%s' was ingested from another filesystem "
					   "(%.*s, now %s); use --replace to replace it (the "
					   "deletion threshold still applies), or --name to "
					   "ingest it as a new source", name, (int)old.fsid.len,
					   (char *)old.fsid.p, fsid);
			store_source_release(&old);
			return -EXDEV;
		}
		*src = old;
		*prev_files = src->files;
		if (moved) {
			rc = twin_refuse(g, tx, path, fsid, rootsb, rep);
			if (rc < 0)
				return rc;
			g->fresh = true;
		}
	} else if (rc != -ENOENT) {
		return report_set(rep, INGEST_STORE_FAILED, rc, "%s: cannot read the source "
				  "record: %s", store_dir(g->st), dfs_strerror(rc));
	} else {
		rc = twin_refuse(g, tx, path, fsid, rootsb, rep);
		if (rc < 0)
			return rc;
		src->name.p = (uint8_t *)strdup(name);
		src->name.len = strlen(name);
		src->first_ingest = time(NULL);
		src->against_result = -1;
		is_new = true;
	}
	free(src->fsid.p);
	src->fsid.p = (uint8_t *)strdup(fsid);
	src->fsid.len = strlen(fsid);
	free(src->path.p);
	src->path.p = (uint8_t *)strdup(path);
	src->path.len = strlen(path);
	/* the excludes are kept with the record written at the end of the run (the gate
	 * skips what they left out) */
	rc = src->name.p && src->fsid.p && src->path.p ? excl_pack(g->o->excludes,
				(size_t)g->o->nexcludes, &src->excludes) : -ENOMEM;
	if (rc == 0 && is_new)
		rc = store_txn_put_source(tx, src);
	if (rc == 0)
		rc = store_txn_get_meta_u64(tx, "src_epoch", &g->epoch);
	if (rc < 0)
		return report_set(rep, INGEST_STORE_FAILED, rc, "%s: cannot update the source "
				  "record: %s", store_dir(g->st), dfs_strerror(rc));
	g->source_id = src->id;
	g->run_gen = src->ingest_gen + 1;
	return 0;
}

/* ---- the store's place: on the source's filesystem? -------------------------------------- */

int ingest_path_shares_store_fs(const char *store_dir, const char *path, char *why,
				size_t whylen)
{
	char *sreal = NULL, *real = realpath(path, NULL);
	char *dir = malloc(strlen(store_dir) + 3);	/* room for "./" */
	struct stat ssb, psb;
	int rc = 0;

	why[0] = '\0';
	if (!real) {
		rc = -errno;
		goto out;
	}
	if (!dir) {
		rc = -ENOMEM;
		goto out;
	}
	/* "store" is "./store": its parent is the working directory */
	snprintf(dir, strlen(store_dir) + 3, "%s%s", store_dir[0] == '/' ? "" : "./", store_dir);
	if (stat(real, &psb) < 0) {
		rc = -errno;
		goto out;
	}
	/* the store, or the nearest of its parents that exists */
	while (stat(dir, &ssb) < 0) {
		char *slash = strrchr(dir, '/');

		if (errno != ENOENT || !slash) {
			rc = -errno;
			goto out;
		}
		if (slash == dir)
			slash[1] = '\0';
		else
			*slash = '\0';
	}
	sreal = realpath(dir, NULL);
	if (sreal && !strncmp(sreal, real, strlen(real)) &&
	    (sreal[strlen(real)] == '/' || !sreal[strlen(real)] || !strcmp(real, "/"))) {
		snprintf(why, whylen, "is inside the source");
		rc = 1;
	} else if (ssb.st_dev == psb.st_dev) {
		snprintf(why, whylen, "is on the same filesystem as the source");
		rc = 1;
	}
out:
	free(sreal);
	free(dir);
	free(real);
	return rc;
}

#define SAMEFS_KEY "samefs.%" PRIu32	/* 2: shares, 1: does not (0, absent: unknown) */

int ingest_store_shares_fs(struct store *st, const struct store_source *s)
{
	char key[40];
	uint64_t v = 0;
	int rc;

	snprintf(key, sizeof(key), SAMEFS_KEY, s->id);
	rc = store_get_meta_u64(st, key, &v);
	if (rc < 0)
		return rc;
	return v == 2 ? 1 : v == 1 ? 0 : -ENOENT;
}

/* ---- the source's filesystems ------------------------------------------------------------ */

uint64_t ing_fs_id(int fd, const struct stat *sb)
{
	char id[256];
	struct fp256 h;
	uint64_t v;

	src_fsid(fd, sb, id, sizeof(id));
	fp_sha256(id, strlen(id), &h);
	memcpy(&v, h.b, sizeof(v));
	return v | 1;	/* never 0 */
}

/*
 * The filesystems met below the source in earlier runs, by identity: META records
 * "srcfs.<source id>.<k>" = ing_fs_id, k = 1, 2 ... (index 0 is the root's, which the
 * source record identifies).
 */
int ing_fs_load(struct ing *g, struct store_txn *tx)
{
	for (unsigned k = 1; k < ING_MAX_FS; k++) {
		char key[48];
		uint64_t id;
		int rc;

		snprintf(key, sizeof(key), "srcfs.%" PRIu32 ".%u", g->source_id, k);
		rc = store_txn_get_meta_u64(tx, key, &id);
		if (rc == -ENOENT || (rc == 0 && id == 0))	/* a missing key reads as 0 */
			break;
		if (rc < 0)
			return rc;
		g->fs[k].id = id;
		g->fs[k].saved = true;
		g->nfs = k + 1;
	}
	return 0;
}

/* ---- threads ----------------------------------------------------------------------------- */

struct threads {
	int jobs;
	pthread_t walker, pre, *workers;
	struct worker *wk;
	struct helper *helpers;
	int nworkers;
	bool pre_started, walker_started;
	struct walk_start walk, prewalk;
};

/*
 * Starts the pre-walk, the workers, the helpers and the walker. @rootfd (the source's
 * root) is owned: handed to the walker, or closed on failure. 0, -ENOMEM or -EAGAIN.
 */
static int threads_start(struct ing *g, struct threads *t, int rootfd, const struct stat *rootsb)
{
	size_t cap = codec_bound(g->params->cdc.max_size);

	t->prewalk.g = g;
	t->prewalk.fd = src_open_dir(rootfd, NULL);
	if (t->prewalk.fd >= 0 && pthread_create(&t->pre, NULL, ing_prewalk_main, &t->prewalk) == 0)
		t->pre_started = true;
	else if (t->prewalk.fd >= 0)
		close(t->prewalk.fd);
	t->workers = calloc((size_t)t->jobs, sizeof(*t->workers));
	t->wk = calloc((size_t)t->jobs, sizeof(*t->wk));
	if (!t->workers || !t->wk)
		goto fail;
	for (int i = 0; i < t->jobs; i++) {
		struct worker *w = &t->wk[i];

		w->g = g;
		w->cbuf_cap = cap;
		w->win = malloc(ing_window_cap(&g->params->cdc) + 1);
		w->batch.jobs = calloc(src_window_max_cuts(ing_window_cap(&g->params->cdc),
							   &g->params->cdc),
				       sizeof(*w->batch.jobs));
		w->cbuf = malloc(cap);
		if (!w->batch.jobs || !w->win || !w->cbuf)
			goto fail;
		if (g->cls && mime_new(&w->mime) < 0)
			w->mime = NULL;	/* the organizer computes MIME types then */
		if (codec_new(g->params->zstd_level, &w->codec) < 0 ||
		    pthread_create(&t->workers[i], NULL, ing_worker_main, w) != 0)
			goto fail;
		t->nworkers++;
	}
	t->helpers = calloc((size_t)t->jobs, sizeof(*t->helpers));
	for (int i = 0; t->helpers && i < t->jobs - 1 + (t->jobs == 1); i++) {
		struct helper *h = &t->helpers[i];

		h->g = g;
		h->cap = cap;
		h->cbuf = malloc(cap);
		if (!h->cbuf || codec_new(g->params->zstd_level, &h->codec) < 0 ||
		    pthread_create(&h->tid, NULL, ing_helper_main, h) != 0)
			break;
		h->started = true;
	}
	t->walk.g = g;
	t->walk.fd = rootfd;	/* the walker owns it now */
	t->walk.sb = *rootsb;
	if (pthread_create(&t->walker, NULL, ing_walker_main, &t->walk) != 0) {
		close(rootfd);
		return -EAGAIN;
	}
	t->walker_started = true;
	return 0;
fail:
	close(rootfd);	/* the walker never started to own it */
	return -ENOMEM;
}

static void threads_join(struct ing *g, struct threads *t)
{
	if (t->walker_started)
		pthread_join(t->walker, NULL);
	ing_stop_all(g);
	for (int i = 0; i < t->nworkers; i++)
		pthread_join(t->workers[i], NULL);
	if (t->pre_started)
		pthread_join(t->pre, NULL);
	pthread_mutex_lock(&g->pool_lock);
	g->pool_stop = true;
	pthread_cond_broadcast(&g->pool_cond);
	pthread_mutex_unlock(&g->pool_lock);
	for (int i = 0; t->helpers && i < t->jobs; i++) {
		if (t->helpers[i].started)
			pthread_join(t->helpers[i].tid, NULL);
		codec_free(t->helpers[i].codec);
		free(t->helpers[i].cbuf);
	}
	free(t->helpers);
	for (int i = 0; t->wk && i < t->jobs; i++) {
		free(t->wk[i].batch.jobs);
		mime_free(t->wk[i].mime);
		codec_free(t->wk[i].codec);
		free(t->wk[i].win);
		free(t->wk[i].cbuf);
	}
	free(t->wk);
	free(t->workers);
	/* drain what was never applied (after a failure) */
	while (g->head < g->tail) {
		ing_item_free(g->ring[g->head % IN_RING]);
		g->head++;
	}
}

/* ---- the committer ----------------------------------------------------------------------- */

/* The next item to apply, in walk order; NULL when the walk is over (or a progress tick). */
static struct item *next_item(struct ing *g, bool tick)
{
	struct item *it = NULL;

	pthread_mutex_lock(&g->ring_lock);
	for (;;) {
		if (g->head < g->tail && item_ready(g->ring[g->head % IN_RING])) {
			it = g->ring[g->head % IN_RING];
			g->head++;
			pthread_cond_broadcast(&g->ring_cond);
			break;
		}
		if (g->walk_done && g->head == g->tail)
			break;
		if (tick) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 200000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&g->ring_cond, &g->ring_lock, &ts);
			break;
		}
		pthread_cond_wait(&g->ring_cond, &g->ring_lock);
	}
	pthread_mutex_unlock(&g->ring_lock);
	return it;
}

/* Commits *@txp and opens the next transaction (NULL after a failure). 0 or -errno (report
 * set). */
static int commit_renew(struct ing *g, struct store_txn **txp, struct ingest_report *rep)
{
	int rc = store_txn_commit(*txp);

	*txp = NULL;
	if (rc == 0)
		rc = store_txn_begin(g->st, txp);
	if (rc < 0)
		return report_set(rep, INGEST_STORE_FAILED, rc, "%s: commit failed: %s; "
				  "everything committed before is safe, run the same command "
				  "again", store_dir(g->st), dfs_strerror(rc));
	return 0;
}

/*
 * Stops the run on an interrupt: the workers are told to stop, and what was applied so far
 * is committed (the source's record is not: the run did not complete). -EINTR (report
 * set: INTERRUPTED, or STORE_FAILED when that commit fails).
 */
static int interrupt_commit(struct ing *g, struct store_txn **txp, struct ingest_report *rep)
{
	int rc = 0;

	ing_stop_all(g);
	if (!g->o->dry_run)
		rc = commit_renew(g, txp, rep);
	if (rc < 0)
		return rc;
	g->committed_files = atomic_load(&g->files_done) + g->skipped_unchanged;
	if (g->o->dry_run)
		return report_set(rep, INGEST_INTERRUPTED, -EINTR, "interrupted: the dry run "
				  "stopped after %" PRIu64 " files", g->committed_files);
	return report_set(rep, INGEST_INTERRUPTED, -EINTR, "interrupted: %" PRIu64 " files "
			  "committed, run the same command to finish", g->committed_files);
}

/*
 * A dry run's file: its content object is metered when neither the store nor this run
 * has it (the run's ids up to the set's cap; past it, a content the store lacks counts
 * as new).
 */
static void dry_content(struct ing *g, struct item *it, uint64_t *digest)
{
	struct ingest_dryset *d = g->o->dry;
	struct fp256 cid;
	uint64_t size, data_bytes, k;
	bool fresh;

	*digest = 0;
	if (!it->cb || store_cb_finish(it->cb, &cid, &size, &data_bytes) < 0)
		return;
	memcpy(&k, cid.b, sizeof(k));
	*digest = k;
	k |= 1;
	pthread_mutex_lock(&d->lock);
	fresh = !u64set_has(&d->cids, k);
	if (fresh && d->cids.n < d->cap && u64set_add(&d->cids, k) < 0)
		d->err = -ENOMEM;
	pthread_mutex_unlock(&d->lock);
	if (fresh && d->st)
		fresh = !store_has_content(d->st, &cid);
	pthread_mutex_lock(&d->lock);
	if ((fresh ? ing_meter_add(d->meter, it->cb) : ing_meter_add_ref(d->meter, &cid)) < 0)
		d->err = -ENOMEM;
	pthread_mutex_unlock(&d->lock);
}

/* A dry run's item into the live tree (g->live), as its view would hold it. */
static void live_add(struct ing *g, const struct item *it, uint64_t digest)
{
	struct ingest_live_entry *e;

	if (g->live_err)
		return;
	if (g->nlive == g->live_cap) {
		size_t c = g->live_cap ? g->live_cap * 2 : 1024;
		void *nv = realloc(g->live, c * sizeof(*g->live));

		if (!nv) {
			g->live_err = -ENOMEM;
			return;
		}
		g->live = nv;
		g->live_cap = c;
	}
	e = &g->live[g->nlive];
	memset(e, 0, sizeof(*e));
	e->path = malloc(it->path_len + 1);
	if (e->path && it->target.len)
		e->target = malloc(it->target.len);
	if (!e->path || (it->target.len && !e->target)) {
		free(e->path);
		g->live_err = -ENOMEM;
		return;
	}
	memcpy(e->path, it->path, it->path_len);
	e->path[it->path_len] = '\0';
	e->len = it->path_len;
	if (it->target.len)
		memcpy(e->target, it->target.p, it->target.len);
	e->target_len = it->target.len;
	e->mode = it->sb.st_mode;
	e->size = (uint64_t)it->sb.st_size;
	e->digest = digest;
	e->rdev = it->sb.st_rdev;
	g->nlive++;
}

/* A remote dry run's item into its plan's tree (g->plan), as the stream gave it. */
static void plan_add(struct ing *g, const struct item *it)
{
	size_t depth = 1, nl;
	const uint8_t *name = ing_item_name(it, &nl);

	for (size_t i = 0; i < it->path_len; i++)
		depth += it->path[i] == '/';
	if (it->err)
		fstree_skip(g->plan, depth);
	else if (!g->plan_err)
		g->plan_err = fstree_add(g->plan, depth, name, nl, &it->sb, it->mime);
}

/* Applies every item in walk order, committing in groups. 0 or -errno (report set). */
static int commit_loop(struct ing *g, struct store_txn **txp, double t0, struct ingest_report *rep)
{
	const struct ingest_opts *o = g->o;
	double last_commit = t0, last_prog = t0;
	uint64_t bytes_at_commit = 0;
	int rc = 0;

	for (;;) {
		struct item *it;
		double t;

		if (o->interrupt && *o->interrupt) {
			rc = interrupt_commit(g, txp, rep);
			break;
		}
		it = next_item(g, o->progress != NULL || o->interrupt != NULL);
		t = now_s();

		if (o->progress && t - last_prog >= o->progress_interval) {
			progress(g, t0, false);
			last_prog = t;
		}
		if (!it) {
			if (g->walk_done && g->head == g->tail)
				break;
			continue;
		}
		if (o->dry_run) {
			uint64_t digest = 0;

			if (S_ISREG(it->sb.st_mode) && !it->err) {
				atomic_fetch_add(&g->files_done, 1);
				dry_content(g, it, &digest);
			}
			if (!it->err && o->dry->st)
				live_add(g, it, digest);
			if (g->plan && it->path_len)
				plan_add(g, it);
			if (it->err)
				ing_add_failure(g, it->path, it->path_len, "%s", it->why ? it->why
						: strerror(-it->err));
			ing_item_free(it);
			continue;
		}
		if (it->unchanged)
			g->skipped_unchanged++;
		rc = ing_apply_item(g, *txp, it);
		ing_item_free(it);
		if (rc < 0) {
			report_set(rep, INGEST_STORE_FAILED, rc, "%s: cannot update the index: %s",
				   store_dir(g->st), dfs_strerror(rc));
			break;
		}
		if (store_txn_size(*txp) > COMMIT_META ||
		    atomic_load(&g->bytes_read) - bytes_at_commit > COMMIT_BYTES ||
		    t - last_commit > COMMIT_SECONDS) {
			rc = commit_renew(g, txp, rep);
			if (rc < 0)
				break;
			last_commit = t;
			bytes_at_commit = atomic_load(&g->bytes_read);
		}
	}
	if (rc < 0)
		ing_stop_all(g);
	if (o->progress)
		progress(g, t0, rc == 0 && g->walk_done && !(o->interrupt && *o->interrupt));
	return rc;
}

/* A replacement passed the threshold: its root takes the source's name; the old tree is
 * dropped with the other drops. */
static int swap_roots(struct ing *g, struct store_txn *tx)
{
	const char *name = g->source_name;
	int rc = store_txn_put_dirent(tx, STORE_SOURCES_INO, name, strlen(name), g->swap_new,
				      DT_DIR);

	if (rc == 0)
		rc = dfs_buf_put_u64(&g->drops, g->swap_old);
	if (rc == 0)
		rc = dfs_buf_put_u8(&g->drops, DT_DIR);
	return rc < 0 ? rc : g->drops.err;
}

/*
 * The run's snapshot of the view (root @root), recorded with the source record in the
 * run's last commit. A store from before history has its previous state as a first
 * snapshot (its records are all older than this run, so none was changed). A snapshot's
 * time is unique in its source: a run ending in the same second as the previous one is
 * named one second later.
 */
static int add_snapshot(struct ing *g, struct store_source *src, uint64_t root)
{
	struct store_snap sn = { .time = time(NULL), .gen = g->run_gen, .root = root };
	int rc = 0;

	if (!src->nsnaps && src->ingest_gen && src->root_ino) {
		struct store_snap first = { .time = src->last_ingest, .gen = src->ingest_gen,
					    .root = src->root_ino };

		rc = store_source_add_snap(src, &first);
	}
	if (rc == 0 && src->nsnaps && sn.time <= src->snaps[src->nsnaps - 1].time)
		sn.time = src->snaps[src->nsnaps - 1].time + 1;
	return rc < 0 ? rc : store_source_add_snap(src, &sn);
}

/*
 * The end of a complete walk: the deferred deletions (refused over the threshold), then
 * the source record, committed. 0 or -errno (report set).
 */
static int source_finish(struct ing *g, struct store_txn **txp, const char *path,
			 struct store_source *src, uint64_t prev_files, struct ingest_report *rep)
{
	const char *name = g->source_name;
	uint64_t root;
	uint8_t t;
	int rc = 0;

	if (g->ndels || g->swap_old) {
		uint64_t removed = ing_count_deletions(g, *txp);

		if (g->swap_old)
			removed += ing_count_replaced(g, *txp, g->swap_old, g->swap_new);
		if (prev_files && removed * 2 > prev_files && !g->o->allow_deletions) {
			if (g->swap_old && (rc = ing_undo_replacement(g, *txp)) < 0)
				return report_set(rep, INGEST_STORE_FAILED, rc, "%s: cannot "
						  "update the index: %s", store_dir(g->st),
						  dfs_strerror(rc));
			return report_set(rep, INGEST_REFUSED, -ECANCELED, "%s: this run would "
					  "remove %" PRIu64 " of the %" PRIu64 " files stored for "
					  "source '%s' (more than half); nothing was removed; if "
					  "that is intended, run again with --allow-deletions%s",
					  path, removed, prev_files, name,
					  g->o->replace ? " (as well as --replace)" : "");
		}
		rc = ing_apply_deletions(g, *txp);
		if (rc == 0 && g->swap_old)
			rc = swap_roots(g, *txp);
		if (rc < 0)
			return report_set(rep, INGEST_STORE_FAILED, rc, "%s: cannot update the "
					  "index: %s", store_dir(g->st), dfs_strerror(rc));
	}
	rc = ing_apply_drops(g, *txp);
	if (rc < 0)
		return report_set(rep, INGEST_STORE_FAILED, rc, "%s: cannot update the index: %s",
				  store_dir(g->st), dfs_strerror(rc));
	if (store_txn_lookup(*txp, STORE_SOURCES_INO, name, strlen(name), &root, &t) == 0) {
		rc = add_snapshot(g, src, root);
		if (rc < 0)
			return report_set(rep, INGEST_STORE_FAILED, rc, "%s: cannot record the "
					  "snapshot: %s", store_dir(g->st), dfs_strerror(rc));
		src->root_ino = root;
	}
	src->last_ingest = time(NULL);
	src->files = atomic_load(&g->files_done) + g->skipped_unchanged;
	src->bytes = atomic_load(&g->bytes_done);
	src->ingest_gen = g->run_gen;
	rc = store_txn_put_source(*txp, src);
	if (rc == 0) {
		char key[40], why[64];
		int shared = ingest_path_shares_store_fs(store_dir(g->st), path, why,
							 sizeof(why));

		snprintf(key, sizeof(key), SAMEFS_KEY, src->id);
		if (shared >= 0)
			rc = store_txn_put_meta_u64(*txp, key, shared ? 2 : 1);
	}
	if (rc < 0)
		return report_set(rep, INGEST_STORE_FAILED, rc, "%s: cannot update the index: %s",
				  store_dir(g->st), dfs_strerror(rc));
	return commit_renew(g, txp, rep);
}

static struct ing *ing_new(struct store *st, const char *name, const struct ingest_opts *o)
{
	struct ing *g = calloc(1, sizeof(*g));
	struct stat stsb;

	if (!g)
		return NULL;
	g->o = o;
	g->st = st;
	g->source_name = name;
	if (!o->dry_run && !o->no_organize) {
		char cerr[512];

		/* checked before the run started; failing now only costs MIME-on-read */
		if (classify_open_store(st, o->rules, &g->cls, cerr, sizeof(cerr)) < 0)
			g->cls = NULL;
	}
	pthread_mutex_init(&g->ring_lock, NULL);
	pthread_mutex_init(&g->mime_lock, NULL);
	g->mime_cache = g->cls ? calloc(MIME_CACHE_SLOTS, sizeof(*g->mime_cache)) : NULL;
	pthread_cond_init(&g->ring_cond, NULL);
	pthread_mutex_init(&g->pool_lock, NULL);
	pthread_cond_init(&g->pool_cond, NULL);
	pthread_cond_init(&g->pool_done, NULL);
	dfs_buf_init(&g->dels, 1ull << 34);
	dfs_buf_init(&g->drops, 1ull << 34);
	dfs_buf_init(&g->srcmap_undo, 1ull << 34);
	if (st && !o->dry_run && ing_meter_new(&g->meter) < 0)
		g->meter = NULL;	/* no figure then (content_meta 0) */
	ing_collect_skip_devs(g);
	if (st && stat(store_dir(st), &stsb) == 0) {
		g->store_dev = stsb.st_dev;
		g->store_ino = stsb.st_ino;
	}
	g->params = st ? store_params(st) : o->create;
	return g;
}

static void ing_free(struct ing *g)
{
	live_release(g->live, g->nlive);
	for (size_t i = 0; i < g->nfails; i++) {
		free(g->fails[i].path);
		free(g->fails[i].why);
	}
	free(g->fails);
	for (size_t i = 0; i < g->nskipped; i++)
		free(g->skipped[i].path);
	free(g->skipped);
	dfs_buf_release(&g->dels);
	dfs_buf_release(&g->drops);
	dfs_buf_release(&g->srcmap_undo);
	ing_meter_free(g->meter);
	for (unsigned k = 0; k < ING_MAX_FS; k++)
		u64set_release(&g->fs[k].hl);
	u64set_release(&g->placed);
	free(g->skip_devs);
	classify_close(g->cls);
	fstree_close(g->plan);
	free(g->mime_cache);
	pthread_mutex_destroy(&g->mime_lock);
	pthread_mutex_destroy(&g->ring_lock);
	pthread_cond_destroy(&g->ring_cond);
	pthread_mutex_destroy(&g->pool_lock);
	pthread_cond_destroy(&g->pool_cond);
	pthread_cond_destroy(&g->pool_done);
	free(g);
}

static int dry_plan(const struct ingest_opts *o, const char *path, const char *name,
		    struct fstree *given, struct ingest_report *rep);

int ingest_source(struct store *st, struct store_txn **txp, const char *path, const char *name,
		  const struct ingest_opts *o, struct ingest_report *rep)
{
	struct threads t = { 0 };
	struct ing_remote *rm = NULL;
	bool remote = ingest_is_remote(path);
	struct store_source src;
	struct stat rootsb;
	struct ing *g;
	uint64_t prev_files = 0;
	char fsid[256];
	double t0 = now_s();
	int rootfd, rc;

	memset(rep, 0, sizeof(*rep));
	memset(&src, 0, sizeof(src));
	rep->name = strdup(name);
	if (!rep->name)
		return report_set(rep, INGEST_STORE_FAILED, -ENOMEM, "out of memory");
	if ((!st && !o->dry_run) || (o->dry_run && (!o->dry || !o->create)))
		return report_set(rep, INGEST_STORE_FAILED, -EINVAL, "no store");
	rootfd = remote ? -1 : src_open_root(path);
	if (rootfd >= 0 && fstat(rootfd, &rootsb) < 0) {
		rc = -errno;
		close(rootfd);
		rootfd = rc;
	}
	if (rootfd < 0 && !remote)
		return report_set(rep, INGEST_SOURCE_FAILED, rootfd, "%s: %s", path,
				  strerror(-rootfd));
	g = ing_new(st, name, o);
	if (!g) {
		if (rootfd >= 0)
			close(rootfd);
		return report_set(rep, INGEST_STORE_FAILED, -ENOMEM, "out of memory");
	}
	if (remote && o->dry_run) {
		/* its plan: the tree as the stream gives it, MIME types computed there (asked
		 * for the files a rule may need them for, as a real run asks) */
		char cerr[512];

		rc = fstree_new_given(&g->plan);
		if (rc == 0 && !o->no_organize && classify_open(o->rules, &g->cls, cerr,
								 sizeof(cerr)) < 0)
			g->cls = NULL;	/* the plan then finds its own error below */
		if (rc < 0) {
			report_set(rep, INGEST_STORE_FAILED, rc, "out of memory");
			goto out;
		}
	}
	if (remote) {	/* ssh, the handshake: the root's stat and identity from there */
		rc = ing_remote_open(g, path, &rootsb, fsid, sizeof(fsid), &g->fs[0].id, &rm,
				     rep->message, sizeof(rep->message));
		if (rc < 0) {
			rep->outcome = INGEST_SOURCE_FAILED;
			goto out;
		}
	} else {
		src_fsid(rootfd, &rootsb, fsid, sizeof(fsid));
		g->fs[0].id = ing_fs_id(rootfd, &rootsb);
	}
	g->root_dev = rootsb.st_dev;
	g->fs[0].dev = rootsb.st_dev;
	g->fs[0].saved = true;
	g->nfs = 1;
	if (st) {
		rc = source_begin(g, *txp, path, fsid, rootfd, &rootsb, &src, &prev_files, rep);
		if (rc == 0) {
			rc = ing_fs_load(g, *txp);
			if (rc < 0)
				report_set(rep, INGEST_STORE_FAILED, rc, "%s: cannot read the "
					   "source's filesystems: %s", store_dir(st),
					   dfs_strerror(rc));
		}
		if (rc < 0) {
			if (rootfd >= 0)
				close(rootfd);
			goto out;
		}
	}
	t.jobs = o->jobs > 0 ? o->jobs : (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (t.jobs < 1)
		t.jobs = 1;
	rc = rm ? ing_remote_start(rm) : threads_start(g, &t, rootfd, &rootsb);
	if (rc < 0)
		report_set(rep, INGEST_STORE_FAILED, rc, "cannot start the ingest's threads: %s",
			   strerror(-rc));
	else
		rc = commit_loop(g, txp, t0, rep);
	if (rm) {
		char msg[640];
		int jr = ing_remote_join(rm, msg, sizeof(msg));

		if (jr < 0 && rc == 0)
			rc = report_set(rep, INGEST_SOURCE_FAILED, jr, "%s: %s; what was committed "
					"is kept: run the same command again", path, msg);
	}
	threads_join(g, &t);
	if (rc == 0 && g->fatal)
		rc = report_set(rep, INGEST_STORE_FAILED, g->fatal, "the run stopped: %s",
				strerror(-g->fatal));
	if (rc == 0 && st)
		rc = source_finish(g, txp, path, &src, prev_files, rep);
	if (rc == 0 && o->dry_run && rm && g->plan_err)
		rc = report_set(rep, INGEST_STORE_FAILED, g->plan_err, "out of memory");
	if (rc == 0 && o->dry_run) {
		rc = dry_plan(o, path, name, g->plan, rep);
		if (rc < 0)
			report_set(rep, INGEST_SOURCE_FAILED, rc, "%s: classification failed: %s",
				   path, dfs_strerror(rc));
	}
	if (rc == 0)
		rep->outcome = g->nfails ? INGEST_PARTIAL : INGEST_DONE;
	rep->files = atomic_load(&g->files_done) + g->skipped_unchanged;
	if (rep->outcome == INGEST_INTERRUPTED)
		rep->files = g->committed_files;
	rep->bytes = atomic_load(&g->bytes_done);
	rep->bytes_read = atomic_load(&g->bytes_read);
	rep->new_raw = atomic_load(&g->new_raw);
	rep->new_stored = atomic_load(&g->new_stored);
	rep->content_meta = g->meter ? ing_meter_estimate(g->meter) : 0;
	rep->unchanged = g->skipped_unchanged;
	ing_remote_counts(rm, &rep->bytes_received, &rep->would_receive);
	rep->mime_calls = atomic_load(&g->mime_calls);
	rep->mime_secs = (double)atomic_load(&g->mime_ns) / 1e9;
	rep->secs = now_s() - t0;
	/* the failures go to the caller */
	rep->fails = g->fails;
	rep->nfails = g->nfails;
	g->fails = NULL;
	g->nfails = 0;
	rep->skipped = g->skipped;
	rep->nskipped = g->nskipped;
	g->skipped = NULL;
	g->nskipped = 0;
	if (rc == 0 && o->dry_run && !g->live_err) {
		rep->live = g->live;
		rep->nlive = g->nlive;
		g->live = NULL;
		g->nlive = 0;
	}
out:
	ing_remote_close(rm);
	store_source_release(&src);
	ing_free(g);
	return rc;
}

/* ---- the dry run's plan, and --explain: classify the live source ------------------------- */

static int plan_emit(void *arg, const struct cls_result *r)
{
	struct ingest_report *rep = arg;
	int rc;

	if (!S_ISREG(r->entry->mode))
		return 0;
	rc = cls_tally_add(&rep->cats, r->category, 1, r->entry->size);
	if (rc == 0)
		rep->planned++;
	return rc;
}

/* The plan of @path's tree: walked here, or @given (a remote source's, from its stream). */
static int dry_plan(const struct ingest_opts *o, const char *path, const char *name,
		    struct fstree *given, struct ingest_report *rep)
{
	struct classify *cls = NULL;
	struct fstree *t = given;
	char err[512];
	int rc;

	rc = classify_open(o->rules, &cls, err, sizeof(err));
	if (rc == 0 && !given)
		rc = fstree_open(path, &t);
	if (rc == 0)
		rc = classify_source(cls, fstree_tree(t), fstree_root(t), name, plan_emit, rep);
	if (!given)
		fstree_close(t);
	classify_close(cls);
	return rc;
}
