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
	*out = d;
	return 0;
}

void ingest_dryset_free(struct ingest_dryset *d)
{
	if (!d)
		return;
	u64set_release(&d->ids);
	pthread_mutex_destroy(&d->lock);
	free(d);
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

static void progress(struct ing *g, double t0)
{
	struct ingest_progress p = {
		.source = g->source_name,
		.files_done = atomic_load(&g->files_done),
		.files_total = atomic_load(&g->total_files),
		.bytes_done = atomic_load(&g->bytes_done),
		.bytes_total = atomic_load(&g->total_bytes),
		.bytes_read = atomic_load(&g->bytes_read),
		.new_raw = atomic_load(&g->new_raw),
		.totals_final = atomic_load(&g->prewalk_done),
		.elapsed = now_s() - t0,
	};

	g->o->progress(&p, g->o->progress_arg);
}

static bool item_ready(const struct item *it)
{
	return !it->is_file_work || it->state == IT_DONE;
}

/* ---- the source record ------------------------------------------------------------------- */

/*
 * Reads or creates the record of source @name in @tx and points it at @path and @fsid.
 * A known name whose filesystem changed is refused without @replace (-EXDEV).
 */
static int source_begin(struct ing *g, struct store_txn *tx, const char *path, const char *fsid,
			struct store_source *src, uint64_t *prev_files, struct ingest_report *rep)
{
	const char *name = g->source_name;
	struct store_source old;
	int rc;

	rc = store_txn_get_source(tx, name, strlen(name), &old);
	if (rc == 0) {
		if ((old.fsid.len != strlen(fsid) || memcmp(old.fsid.p, fsid, old.fsid.len)) &&
		    !g->o->replace) {
			report_set(rep, INGEST_REFUSED, -EXDEV,
				   "source '%s' was ingested from another filesystem (%.*s, now %s); "
				   "use --replace to replace it, or --name to ingest it as a new "
				   "source", name, (int)old.fsid.len, (char *)old.fsid.p, fsid);
			store_source_release(&old);
			return -EXDEV;
		}
		*src = old;
		*prev_files = src->files;
	} else if (rc != -ENOENT) {
		return report_set(rep, INGEST_STORE_FAILED, rc, "%s: cannot read the source "
				  "record: %s", store_dir(g->st), dfs_strerror(rc));
	} else {
		src->name.p = (uint8_t *)strdup(name);
		src->name.len = strlen(name);
		src->first_ingest = time(NULL);
		src->against_result = -1;
	}
	free(src->fsid.p);
	src->fsid.p = (uint8_t *)strdup(fsid);
	src->fsid.len = strlen(fsid);
	free(src->path.p);
	src->path.p = (uint8_t *)strdup(path);
	src->path.len = strlen(path);
	rc = src->name.p && src->fsid.p && src->path.p ? excl_pack(g->o->excludes,
				(size_t)g->o->nexcludes, &src->excludes) : -ENOMEM;
	if (rc == 0)
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
		w->win = malloc(READ_WINDOW + 1);
		w->batch.jobs = calloc(READ_WINDOW / g->params->cdc.min_size + 2,
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

/* Applies every item in walk order, committing in groups. 0 or -errno (report set). */
static int commit_loop(struct ing *g, struct store_txn **txp, double t0, struct ingest_report *rep)
{
	const struct ingest_opts *o = g->o;
	double last_commit = t0, last_prog = t0;
	uint64_t bytes_at_commit = 0;
	int rc = 0;

	for (;;) {
		struct item *it = next_item(g, o->progress != NULL);
		double t = now_s();

		if (o->progress && t - last_prog >= o->progress_interval) {
			progress(g, t0);
			last_prog = t;
		}
		if (!it) {
			if (g->walk_done && g->head == g->tail)
				break;
			continue;
		}
		if (o->dry_run) {
			if (S_ISREG(it->sb.st_mode) && !it->err)
				atomic_fetch_add(&g->files_done, 1);
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
			rc = store_txn_commit(*txp);
			*txp = NULL;
			if (rc == 0)
				rc = store_txn_begin(g->st, txp);
			if (rc < 0) {
				report_set(rep, INGEST_STORE_FAILED, rc, "%s: commit failed: %s; "
					   "everything committed before is safe, run the same "
					   "command again", store_dir(g->st), dfs_strerror(rc));
				break;
			}
			last_commit = t;
			bytes_at_commit = atomic_load(&g->bytes_read);
		}
	}
	if (rc < 0)
		ing_stop_all(g);
	if (o->progress)
		progress(g, t0);
	return rc;
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

	if (g->ndels) {
		uint64_t removed = ing_count_deletions(g, *txp);

		if (prev_files && removed * 2 > prev_files && !g->o->allow_deletions &&
		    !g->o->replace)
			return report_set(rep, INGEST_REFUSED, -ECANCELED, "%s: this run would "
					  "remove %" PRIu64 " of the %" PRIu64 " files stored for "
					  "source '%s' (more than half); if that is intended, run "
					  "again with --allow-deletions", path, removed, prev_files,
					  name);
		rc = ing_apply_deletions(g, *txp);
		if (rc < 0)
			return report_set(rep, INGEST_STORE_FAILED, rc, "%s: cannot update the "
					  "index: %s", store_dir(g->st), dfs_strerror(rc));
	}
	rc = ing_apply_drops(g, *txp);
	if (rc < 0)
		return report_set(rep, INGEST_STORE_FAILED, rc, "%s: cannot update the index: %s",
				  store_dir(g->st), dfs_strerror(rc));
	if (store_txn_lookup(*txp, STORE_SOURCES_INO, name, strlen(name), &root, &t) == 0)
		src->root_ino = root;
	src->last_ingest = time(NULL);
	src->files = atomic_load(&g->files_done) + g->skipped_unchanged;
	src->bytes = atomic_load(&g->bytes_done);
	src->ingest_gen = g->run_gen;
	rc = store_txn_put_source(*txp, src);
	if (rc == 0)
		rc = store_txn_commit(*txp);
	*txp = NULL;
	if (rc == 0)
		rc = store_txn_begin(g->st, txp);
	if (rc < 0)
		return report_set(rep, INGEST_STORE_FAILED, rc, "%s: commit failed: %s; "
				  "everything committed before is safe, run the same command "
				  "again", store_dir(g->st), dfs_strerror(rc));
	return 0;
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
	for (unsigned k = 0; k < ING_MAX_FS; k++)
		u64set_release(&g->fs[k].hl);
	free(g->skip_devs);
	classify_close(g->cls);
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
		    struct ingest_report *rep);

int ingest_source(struct store *st, struct store_txn **txp, const char *path, const char *name,
		  const struct ingest_opts *o, struct ingest_report *rep)
{
	struct threads t = { 0 };
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
	rootfd = src_open_root(path);
	if (rootfd >= 0 && fstat(rootfd, &rootsb) < 0) {
		rc = -errno;
		close(rootfd);
		rootfd = rc;
	}
	if (rootfd < 0)
		return report_set(rep, INGEST_SOURCE_FAILED, rootfd, "%s: %s", path,
				  strerror(-rootfd));
	g = ing_new(st, name, o);
	if (!g) {
		close(rootfd);
		return report_set(rep, INGEST_STORE_FAILED, -ENOMEM, "out of memory");
	}
	g->root_dev = rootsb.st_dev;
	src_fsid(rootfd, &rootsb, fsid, sizeof(fsid));
	g->fs[0].dev = rootsb.st_dev;
	g->fs[0].id = ing_fs_id(rootfd, &rootsb);
	g->fs[0].saved = true;
	g->nfs = 1;
	if (st) {
		rc = source_begin(g, *txp, path, fsid, &src, &prev_files, rep);
		if (rc == 0) {
			rc = ing_fs_load(g, *txp);
			if (rc < 0)
				report_set(rep, INGEST_STORE_FAILED, rc, "%s: cannot read the "
					   "source's filesystems: %s", store_dir(st),
					   dfs_strerror(rc));
		}
		if (rc < 0) {
			close(rootfd);
			goto out;
		}
	}
	t.jobs = o->jobs > 0 ? o->jobs : (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (t.jobs < 1)
		t.jobs = 1;
	rc = threads_start(g, &t, rootfd, &rootsb);
	if (rc < 0)
		report_set(rep, INGEST_STORE_FAILED, rc, "cannot start the ingest's threads: %s",
			   strerror(-rc));
	else
		rc = commit_loop(g, txp, t0, rep);
	threads_join(g, &t);
	if (rc == 0 && g->fatal)
		rc = report_set(rep, INGEST_STORE_FAILED, g->fatal, "the run stopped: %s",
				strerror(-g->fatal));
	if (rc == 0 && st)
		rc = source_finish(g, txp, path, &src, prev_files, rep);
	if (rc == 0 && o->dry_run) {
		rc = dry_plan(o, path, name, rep);
		if (rc < 0)
			report_set(rep, INGEST_SOURCE_FAILED, rc, "%s: classification failed: %s",
				   path, dfs_strerror(rc));
	}
	if (rc == 0)
		rep->outcome = g->nfails ? INGEST_PARTIAL : INGEST_DONE;
	rep->files = atomic_load(&g->files_done) + g->skipped_unchanged;
	rep->bytes = atomic_load(&g->bytes_done);
	rep->bytes_read = atomic_load(&g->bytes_read);
	rep->new_raw = atomic_load(&g->new_raw);
	rep->new_stored = atomic_load(&g->new_stored);
	rep->unchanged = g->skipped_unchanged;
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
out:
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

static int dry_plan(const struct ingest_opts *o, const char *path, const char *name,
		    struct ingest_report *rep)
{
	struct classify *cls = NULL;
	struct fstree *t = NULL;
	char err[512];
	int rc;

	rc = classify_open(o->rules, &cls, err, sizeof(err));
	if (rc == 0)
		rc = fstree_open(path, &t);
	if (rc == 0)
		rc = classify_source(cls, fstree_tree(t), fstree_root(t), name, plan_emit, rep);
	fstree_close(t);
	classify_close(cls);
	return rc;
}
