/*
 * warm.c - the index's table files kept in the page cache (see warm.h).
 *
 * Measured on the medium bench_peers corpus (docs/BENCHMARKS.md, "The index in the page
 * cache"): a cold sequential read made ~1,750 reads of 4 KiB of the index a GiB (RocksDB
 * opens table files with FADV_RANDOM), each waited for by a loader before its pack read;
 * the whole index was 12 MiB. Kept in the page cache, the disk's requests fell by a
 * fifth, random 4 KiB reads by a tenth at p50 (more where a read costs a seek).
 *
 * Each check (at most every 50 ms while requests come): the table files of the current
 * view (store_index_tables, listed again at most once a second), upper levels first, are
 * taken while they fit the budget. They are held open and mapped between checks (an open can drop a file's cached pages
 * on some filesystems, FUSE ones without keep_cache). mincore(2) on the mapping tells
 * which pages are in the page cache, and the missing runs get posix_fadvise(WILLNEED):
 * the kernel reads them in large requests without us waiting. A file asked for that never
 * came in whole counts against a limit of twice the bytes that fit, a minute.
 *
 * Threads: warm_poke from any thread; everything else on the warm thread.
 *
 * SPDX-License-Identifier: MIT
 */
#include "warm.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "store/index.h"
#include "store/log.h"

#define WARM_WINDOW 60000	/* ms over which the limit is counted */
#define WARM_EVERY 50		/* ms: checks at most this often */
#define WARM_PIECE (128u << 10)	/* bytes per WILLNEED (see ask) */
#define WARM_RELIST 1000	/* ms: the table files listed again at most this often */
#define WARM_FILES 256		/* files held at most: descriptors beside RocksDB's own */

struct warm {
	struct store *st;
	uint64_t budget;
	_Atomic int64_t next_check;	/* pokes before this time (ms) are ignored */
	pthread_mutex_t lock;		/* protects want and stop */
	pthread_cond_t cond;
	bool want, stop;
	pthread_t tid;
	/* the thread's own */
	int64_t window_start;
	uint64_t window_bytes;
	bool told;
	unsigned char *vec;		/* mincore's answer */
	bool vec_valid;			/* ... for the file cold() was last asked about */
	size_t vec_cap;
	struct wfile *files;		/* held, sorted by path */
	size_t nfiles;
	uint64_t fit, total;		/* bytes of the held files, of all the index's */
	int64_t listed;			/* when the files were last listed (ms) */
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A table file held between checks: open and mapped (never touched, only asked about). */
struct wfile {
	char *path;
	int fd;
	void *map;		/* MAP_FAILED: cannot be mapped */
	uint64_t size;
	bool moved;		/* taken into the next check's set (owns nothing here) */
	bool pending;		/* asked for, and not seen whole in the page cache since */
};

static int wfile_cmp(const void *a, const void *b)
{
	return strcmp(((const struct wfile *)a)->path, ((const struct wfile *)b)->path);
}

static void wfile_close(struct wfile *f)
{
	if (f->moved)
		return;
	if (f->map != MAP_FAILED)
		munmap(f->map, (size_t)f->size);
	if (f->fd >= 0)
		close(f->fd);
	free(f->path);
}

/*
 * Whether a page of @f is not in the page cache: mincore(2) over its mapping, which reads
 * nothing (a probing read would: a read that misses starts the kernel's read-ahead
 * there, a seek on a disk with a head). A file that cannot be mapped counts as cold:
 * the window's limit bounds what that costs.
 */
static bool cold(struct warm *w, const struct wfile *f)
{
	size_t psz = (size_t)sysconf(_SC_PAGESIZE), pages = ((size_t)f->size + psz - 1) / psz;

	w->vec_valid = false;
	if (f->map == MAP_FAILED)
		return true;
	if (pages > w->vec_cap) {
		unsigned char *v = realloc(w->vec, pages);

		if (!v)
			return true;
		w->vec = v;
		w->vec_cap = pages;
	}
	if (mincore(f->map, (size_t)f->size, w->vec) < 0)
		return true;
	w->vec_valid = true;
	for (size_t i = 0; i < pages; i++)
		if (!(w->vec[i] & 1))
			return true;
	return false;
}

/*
 * Asks the kernel for the pages of @f that cold(@f) found missing (in w->vec), in pieces
 * of WARM_PIECE: the kernel cuts a WILLNEED to the device's largest request or the
 * read-ahead size, whichever is larger (128 KiB on a FUSE mount), from its start.
 */
static void ask(struct warm *w, const struct wfile *f)
{
	size_t psz = (size_t)sysconf(_SC_PAGESIZE), pages = ((size_t)f->size + psz - 1) / psz;
	size_t per = WARM_PIECE / psz;

	if (!w->vec_valid) {	/* no answer from mincore: the whole file */
		for (uint64_t off = 0; off < f->size; off += WARM_PIECE)
			(void)posix_fadvise(f->fd, (off_t)off, WARM_PIECE, POSIX_FADV_WILLNEED);
		return;
	}
	for (size_t i = 0; i < pages;) {
		size_t j = i;

		if (w->vec[i] & 1) {
			i++;
			continue;
		}
		while (j < pages && j - i < per && !(w->vec[j] & 1))
			j++;
		(void)posix_fadvise(f->fd, (off_t)(i * psz), (off_t)((j - i) * psz),
				    POSIX_FADV_WILLNEED);
		i = j;
	}
}

/*
 * The held file of @path (taken out of the old set), or a newly opened one; false when it
 * cannot be opened (compacted away since the listing: the next check sees).
 */
static bool hold(struct warm *w, const struct idx_table *t, struct wfile *out)
{
	struct wfile key = { .path = t->path }, *old = NULL;

	if (w->nfiles)
		old = bsearch(&key, w->files, w->nfiles, sizeof(*w->files), wfile_cmp);
	if (old && !old->moved && old->size == t->size) {
		*out = *old;
		old->moved = true;
		return true;
	}
	*out = (struct wfile){ .fd = open(t->path, O_RDONLY | O_CLOEXEC), .map = MAP_FAILED };
	if (out->fd < 0)
		return false;
	out->path = strdup(t->path);
	if (!out->path) {
		close(out->fd);
		return false;
	}
	out->size = t->size;
	out->map = t->size ? mmap(NULL, (size_t)t->size, PROT_READ, MAP_SHARED, out->fd, 0)
			   : MAP_FAILED;
	return true;
}

/*
 * The table files that fit the budget, upper levels first, held (the ones already held
 * kept with their state, new ones opened, the rest closed); w->fit and w->total set.
 */
static void relist(struct warm *w)
{
	struct idx_table *t;
	struct wfile *nf;
	uint64_t fit = 0, total = 0;
	size_t n, k = 0;
	int rc;

	rc = store_index_tables(w->st, &t, &n);
	if (rc < 0) {
		dfs_debug("index warm-up: cannot list the table files: %s", dfs_strerror(rc));
		return;
	}
	nf = calloc(n ? n : 1, sizeof(*nf));
	if (!nf) {
		idx_tables_free(t, n);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		total += t[i].size;
		if (t[i].size > w->budget - fit || k == WARM_FILES)
			continue;
		fit += t[i].size;
		if (hold(w, &t[i], &nf[k]))
			k++;
	}
	for (size_t i = 0; i < w->nfiles; i++)
		wfile_close(&w->files[i]);
	free(w->files);
	if (k)
		qsort(nf, k, sizeof(*nf), wfile_cmp);
	w->files = nf;
	w->nfiles = k;
	w->fit = fit;
	w->total = total;
	idx_tables_free(t, n);
}

static void check(struct warm *w)
{
	uint64_t asked = 0;
	int64_t now = now_ms();

	if (now - w->window_start >= WARM_WINDOW) {
		w->window_start = now;
		w->window_bytes = 0;
	}
	/* the list changes only with a compaction or a catch-up: taken again once a second
	 * (a file compacted away stays open until then), the pages asked about each time */
	if (now - w->listed >= WARM_RELIST) {
		relist(w);
		w->listed = now;
	}
	for (size_t i = 0; i < w->nfiles; i++) {
		struct wfile *f = &w->files[i];

		/*
		 * A file seen whole in the page cache since it was last asked for is asked
		 * for again when pages are missing (they were evicted: memory pressure, a
		 * drop of the caches). One that never came in whole (still being read, or a
		 * filesystem that does not keep the pages) counts against the window's
		 * limit: twice what fits, a minute.
		 */
		if (!f->size || !cold(w, f)) {
			f->pending = false;
		} else if (!f->pending || (w->window_bytes <= 2 * w->fit &&
					   f->size <= 2 * w->fit - w->window_bytes)) {
			ask(w, f);
			if (f->pending)
				w->window_bytes += f->size;
			f->pending = true;
			asked += f->size;
		}
	}
	if (!w->told && w->listed == now) {
		w->told = true;
		if (w->fit < w->total)
			dfs_info("index warm-up: %" PRIu64 " of the index's %" PRIu64 " KiB fit "
				 "index_warm (%" PRIu64 " KiB); the rest is read as it is needed",
				 w->fit >> 10, w->total >> 10, w->budget >> 10);
		else
			dfs_info("index warm-up: the index's %" PRIu64 " KiB are kept in the "
				 "page cache", w->total >> 10);
	}
	if (asked)
		dfs_debug("index warm-up: %" PRIu64 " KiB of table files read ahead",
			  asked >> 10);
}

static void *warm_main(void *arg)
{
	struct warm *w = arg;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (!w->want && !w->stop)
			pthread_cond_wait(&w->cond, &w->lock);
		if (w->stop)
			break;
		w->want = false;
		pthread_mutex_unlock(&w->lock);
		check(w);
		pthread_mutex_lock(&w->lock);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

int warm_start(struct store *st, uint64_t budget, struct warm **out)
{
	struct warm *w = calloc(1, sizeof(*w));
	int rc;

	*out = NULL;
	if (!w)
		return -ENOMEM;
	w->st = st;
	w->budget = budget;
	w->window_start = INT64_MIN / 2;
	w->listed = INT64_MIN / 2;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	rc = pthread_create(&w->tid, NULL, warm_main, w);
	if (rc != 0) {
		pthread_mutex_destroy(&w->lock);
		pthread_cond_destroy(&w->cond);
		free(w);
		return -rc;
	}
	*out = w;
	return 0;
}

void warm_poke(struct warm *w)
{
	int64_t now, next;

	if (!w)
		return;
	now = now_ms();
	next = atomic_load_explicit(&w->next_check, memory_order_relaxed);
	if (now < next ||
	    !atomic_compare_exchange_strong(&w->next_check, &next, now + WARM_EVERY))
		return;
	pthread_mutex_lock(&w->lock);
	w->want = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

void warm_stop(struct warm *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->tid, NULL);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	for (size_t i = 0; i < w->nfiles; i++)
		wfile_close(&w->files[i]);
	free(w->files);
	free(w->vec);
	free(w);
}
