/*
 * lib_ingest.c - the ingest pipeline (see lib_ingest.h for its shape).
 *
 * Order and state: the walker appends items to a ring in walk order (a directory before
 * its entries); workers claim file items and read them; the committer applies the head
 * item once it is done. So index changes happen in walk order, in one thread, and a
 * parent's inode number is known before its children are placed.
 *
 * Source view rules (DESIGN.md "Sources and re-ingest"):
 *   - (source, st_ino) -> inode via srcmap; a file whose (st_ino, size, mtime, ctime) did
 *     not change since the last ingest is not read again (the walker decides, from the
 *     committed index);
 *   - a directory's stale entries (names no longer listed) are removed at the end of the
 *     run, after the deletion threshold check (--allow-deletions);
 *   - a file that changed while it was read is retried, then reported; its previous
 *     version stays; torn content is never stored.
 *
 * Threads: ring_lock guards the ring and item states; the store is thread-safe for chunk
 * appends; the transaction belongs to the committer.
 *
 * SPDX-License-Identifier: MIT
 */
#include "lib_ingest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <blkid/blkid.h>
#include <jansson.h>

#include "lib_cli.h"
#include "lib_fstree.h"
#include "organize/organize.h"
#include "classify/classify.h"
#include "classify/mime.h"
#include "store/buf.h"
#include "store/log.h"

#define IN_RING 4096u
#define READ_WINDOW (8u << 20)
#define CHANGE_RETRIES 3
#define COMMIT_BYTES (256ull << 20)	/* file bytes per commit group */
#define COMMIT_META (8u << 20)		/* op log bytes per commit group */
#define MIME_CACHE_SLOTS 16384		/* 2 MiB of remembered MIME types */
#define COMMIT_SECONDS 5

/* A directory of the walk: its fd (for openat by workers) and, once the committer has
 * placed it, its inode number. Refcounted: the walker and each child item hold one. */
struct wdir {
	int fd;
	atomic_int refs;
	uint64_t ino;		/* set by the committer before any child is applied */
};

enum item_state { IT_WAIT = 0, IT_BUSY, IT_DONE };

struct item {
	int state;			/* ring_lock */
	bool is_file_work;		/* a worker must read it */
	struct stat sb;
	uint8_t *path;			/* source-relative, "" for the root */
	size_t path_len;
	size_t name_off;
	struct wdir *parent;		/* NULL for the root */
	struct wdir *self;		/* directories */
	/* results */
	int err;			/* -errno; the item is reported and not stored */
	const char *why;		/* static text for err */
	bool unchanged;			/* incremental: keep the stored record */
	bool link_only;			/* hardlink seen earlier in this run */
	uint64_t old_ino;		/* srcmap hit (unchanged or link_only) */
	struct store_content_builder *cb;
	struct store_str target;
	struct store_xattr *xattrs;
	size_t nxattrs;
	uint8_t *names;			/* directories: sorted child names, NUL-separated */
	size_t names_len;
	bool listing_ok;
	char *mime;			/* regular files: MIME type from the first bytes read,
					 * when a rule may need it (NULL otherwise) */
};

struct failure {
	uint8_t *path;
	size_t len;
	char *why;
};

struct hl_set {			/* st_ino of multiply-linked files seen this run */
	uint64_t *v;
	size_t n, cap;
};

struct ing {
	const struct ingest_opts *o;
	struct store *st;
	const struct store_create_opts *params;
	uint32_t source_id;
	const char *source_name;
	struct classify *cls;		/* rules, for MIME-on-read (NULL: dry run or none) */
	uint64_t run_gen;
	uint64_t epoch;			/* "src_epoch" at the start of the run */
	bool security_noted;		/* STORE_META_SECURITY_XATTRS set in this run */
	bool epoch_noted;		/* advanced in a transaction of this run */
	dev_t root_dev;
	dev_t store_dev;
	ino_t store_ino;
	dev_t *skip_devs;
	size_t nskip_devs;

	/*
	 * MIME types by SHA-256 of the bytes libmagic looks at: the same head gives the same
	 * type, and backups hold many copies (a direct-mapped, fixed-size cache; a slot's
	 * older key is simply replaced). Protected by mime_lock.
	 */
	pthread_mutex_t mime_lock;
	struct mime_slot {
		struct fp256 key;
		bool exact;
		char type[96];
	} *mime_cache;
	pthread_mutex_t ring_lock;
	pthread_cond_t ring_cond;	/* any state change */
	struct item *ring[IN_RING];
	uint64_t head, tail, claim;	/* head: next to commit; tail: next free; claim >= head */
	bool walk_done;
	atomic_bool stop;		/* set under ring_lock; the prewalk reads it without */

	struct hl_set hl;		/* walker only */

	/* counters */
	atomic_uint_fast64_t files_done, bytes_done, bytes_read, new_raw, new_stored;
	atomic_uint_fast64_t mime_calls, mime_ns;	/* libmagic calls and their thread time */
	atomic_uint_fast64_t total_files, total_bytes;
	atomic_bool prewalk_done;
	uint64_t skipped_unchanged;

	/* failures (committer and walker, under ring_lock) */
	struct failure *fails;
	size_t nfails, capfails;

	/* chunk pool: big files are cut by one worker and hashed/compressed by many */
	pthread_mutex_t pool_lock;
	pthread_cond_t pool_cond;	/* a batch has work */
	pthread_cond_t pool_done;	/* a batch finished */
	struct cbatch *batches;		/* pool_lock */
	bool pool_stop;			/* pool_lock */

	/* deletions deferred to the end: (parent ino, name) */
	struct dfs_buf dels;
	uint64_t ndels;
	int fatal;			/* store failure: stop everything */
};

/* ---- small helpers ------------------------------------------------------------------ */

static void add_failure(struct ing *g, const uint8_t *path, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void add_failure(struct ing *g, const uint8_t *path, size_t len, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&g->ring_lock);
	if (g->nfails == g->capfails) {
		size_t cap = g->capfails ? g->capfails * 2 : 16;
		struct failure *f = realloc(g->fails, cap * sizeof(*f));

		if (!f) {
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
	}
	pthread_mutex_unlock(&g->ring_lock);
}

static void wdir_put(struct wdir *d)
{
	if (d && atomic_fetch_sub(&d->refs, 1) == 1) {
		if (d->fd >= 0)
			close(d->fd);
		free(d);
	}
}

static struct wdir *wdir_get(struct wdir *d)
{
	if (d)
		atomic_fetch_add(&d->refs, 1);
	return d;
}

static void item_free(struct item *it)
{
	if (!it)
		return;
	free(it->path);
	wdir_put(it->parent);
	wdir_put(it->self);
	store_cb_free(it->cb);
	free(it->target.p);
	for (size_t i = 0; i < it->nxattrs; i++) {
		free(it->xattrs[i].name.p);
		free(it->xattrs[i].value.p);
	}
	free(it->xattrs);
	free(it->names);
	free(it->mime);
	free(it);
}

static const uint8_t *item_name(const struct item *it, size_t *len)
{
	*len = it->path_len - it->name_off;
	return it->path + it->name_off;
}

static uint8_t dtype_of(mode_t m)
{
	switch (m & S_IFMT) {
	case S_IFREG: return DT_REG;
	case S_IFDIR: return DT_DIR;
	case S_IFLNK: return DT_LNK;
	case S_IFIFO: return DT_FIFO;
	case S_IFSOCK: return DT_SOCK;
	case S_IFCHR: return DT_CHR;
	case S_IFBLK: return DT_BLK;
	default: return DT_UNKNOWN;
	}
}

static bool same_times(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

static int cmp_xattr(const void *a, const void *b)
{
	const struct store_xattr *x = a, *y = b;
	size_t n = x->name.len < y->name.len ? x->name.len : y->name.len;
	int c = memcmp(x->name.p, y->name.p, n);

	return c ? c : (x->name.len > y->name.len) - (x->name.len < y->name.len);
}

/*
 * Reads every extended attribute: through @fd when >= 0, else through @path with the
 * l* calls (never following a symlink). Returns 0 or -errno (ENOTSUP counts as none).
 */
static int read_xattrs(int fd, const char *path, struct item *it)
{
	char *list = NULL;
	ssize_t n;
	int rc = 0;

	for (int tries = 0; tries < 4; tries++) {
		n = fd >= 0 ? flistxattr(fd, NULL, 0) : llistxattr(path, NULL, 0);
		if (n < 0)
			return errno == ENOTSUP || errno == ENODATA ? 0 : -errno;
		if (n == 0)
			return 0;
		free(list);
		list = malloc((size_t)n);
		if (!list)
			return -ENOMEM;
		n = fd >= 0 ? flistxattr(fd, list, (size_t)n) : llistxattr(path, list, (size_t)n);
		if (n >= 0)
			break;
		if (errno != ERANGE) {
			free(list);
			return -errno;
		}
	}
	if (n < 0) {
		free(list);
		return -ERANGE;
	}
	for (ssize_t off = 0; off < n && rc == 0;) {
		const char *name = list + off;
		size_t nl = strlen(name);
		struct store_xattr *x;
		ssize_t vl;

		off += (ssize_t)nl + 1;
		x = realloc(it->xattrs, (it->nxattrs + 1) * sizeof(*x));
		if (!x) {
			rc = -ENOMEM;
			break;
		}
		it->xattrs = x;
		x = &it->xattrs[it->nxattrs];
		memset(x, 0, sizeof(*x));
		vl = fd >= 0 ? fgetxattr(fd, name, NULL, 0) : lgetxattr(path, name, NULL, 0);
		if (vl < 0) {
			if (errno == ENODATA)
				continue;	/* removed meanwhile */
			rc = -errno;
			break;
		}
		x->value.p = malloc((size_t)vl + 1);
		x->name.p = (uint8_t *)strdup(name);
		if (!x->value.p || !x->name.p) {
			free(x->value.p);
			free(x->name.p);
			rc = -ENOMEM;
			break;
		}
		x->name.len = nl;
		vl = fd >= 0 ? fgetxattr(fd, name, x->value.p, (size_t)vl)
			     : lgetxattr(path, name, x->value.p, (size_t)vl);
		if (vl < 0) {
			rc = errno == ERANGE ? -EAGAIN : -errno;
			free(x->value.p);
			free(x->name.p);
			break;
		}
		x->value.len = (size_t)vl;
		it->nxattrs++;
	}
	free(list);
	if (it->nxattrs > 1)
		qsort(it->xattrs, it->nxattrs, sizeof(*it->xattrs), cmp_xattr);
	return rc;
}

static void free_xattrs(struct item *it)
{
	for (size_t i = 0; i < it->nxattrs; i++) {
		free(it->xattrs[i].name.p);
		free(it->xattrs[i].value.p);
	}
	free(it->xattrs);
	it->xattrs = NULL;
	it->nxattrs = 0;
}

/* "/proc/self/fd/N/name": reaches an entry of a directory fd by path, whatever the depth. */
static void proc_path(char *buf, size_t len, int dirfd, const uint8_t *name, size_t nlen)
{
	int n = snprintf(buf, len, "/proc/self/fd/%d/", dirfd);

	if (n > 0 && (size_t)n + nlen < len) {
		memcpy(buf + n, name, nlen);
		buf[n + (int)nlen] = '\0';
	}
}

/* ---- the worker: read one file once ---------------------------------------------------- */

static void dry_note(const struct fp256 *id, size_t n);

/* One chunk to fingerprint, and to compress and append if it is new. */
struct cjob {
	const uint8_t *p;
	uint32_t len;
	struct fp256 id;
	int rc;
};

struct cbatch {
	struct cjob *jobs;
	size_t n;
	atomic_size_t next;	/* next job to take */
	size_t done;		/* pool_lock */
	int users;		/* helpers inside the batch; pool_lock */
	struct cbatch *link;	/* pool_lock */
};

struct worker {
	struct ing *g;
	struct codec *codec;
	uint8_t *win;
	uint8_t *cbuf;
	size_t cbuf_cap;
	struct cbatch batch;	/* the chunks of one window */
	struct mime *mime;	/* this worker's libmagic handle (loaded on first use) */
	bool mime_exact;	/* the file being read needs its exact MIME type */
};

static void cjob_run(struct ing *g, struct codec *codec, uint8_t *cbuf, size_t cap,
		     struct cjob *j)
{
	enum codec_id cid;
	ssize_t sl;
	int rc;

	fp_sha256(j->p, j->len, &j->id);
	j->rc = 0;
	if (g->o->dry_run) {
		dry_note(&j->id, j->len);
		return;
	}
	if (store_has_chunk(g->st, &j->id))
		return;
	sl = codec_compress(codec, j->p, j->len, cbuf, cap, &cid);
	if (sl < 0) {
		j->rc = (int)sl;
		return;
	}
	rc = store_put_chunk(g->st, &j->id, j->len, cbuf, (uint32_t)sl, cid);
	if (rc == 1) {
		atomic_fetch_add(&g->new_raw, j->len);
		atomic_fetch_add(&g->new_stored, (uint64_t)sl + 56);
		rc = 0;
	}
	j->rc = rc;
}

static void batch_work(struct ing *g, struct cbatch *b, struct codec *codec, uint8_t *cbuf,
		       size_t cap)
{
	size_t mine = 0;

	for (;;) {
		size_t i = atomic_fetch_add(&b->next, 1);

		if (i >= b->n)
			break;
		cjob_run(g, codec, cbuf, cap, &b->jobs[i]);
		mine++;
	}
	if (mine) {
		pthread_mutex_lock(&g->pool_lock);
		b->done += mine;
		if (b->done == b->n)
			pthread_cond_broadcast(&g->pool_done);
		pthread_mutex_unlock(&g->pool_lock);
	}
}

struct helper {
	struct ing *g;
	struct codec *codec;
	uint8_t *cbuf;
	size_t cap;
	pthread_t tid;
	bool started;
};

static void *helper_main(void *arg)
{
	struct helper *h = arg;
	struct ing *g = h->g;

	pthread_mutex_lock(&g->pool_lock);
	for (;;) {
		struct cbatch *b;

		for (b = g->batches; b; b = b->link)
			if (atomic_load(&b->next) < b->n)
				break;
		if (!b) {
			if (g->pool_stop)
				break;
			pthread_cond_wait(&g->pool_cond, &g->pool_lock);
			continue;
		}
		b->users++;
		pthread_mutex_unlock(&g->pool_lock);
		batch_work(g, b, h->codec, h->cbuf, h->cap);
		pthread_mutex_lock(&g->pool_lock);
		if (--b->users == 0)
			pthread_cond_broadcast(&g->pool_done);
	}
	pthread_mutex_unlock(&g->pool_lock);
	return NULL;
}

/* Runs the jobs of @b on this thread and the helpers; returns when all are done. */
static void batch_run(struct worker *w, struct cbatch *b)
{
	struct ing *g = w->g;
	struct cbatch **pp;

	atomic_init(&b->next, 0);
	b->done = 0;
	b->users = 0;
	if (b->n < 2) {
		batch_work(g, b, w->codec, w->cbuf, w->cbuf_cap);
		return;
	}
	pthread_mutex_lock(&g->pool_lock);
	b->link = g->batches;
	g->batches = b;
	pthread_cond_broadcast(&g->pool_cond);
	pthread_mutex_unlock(&g->pool_lock);
	batch_work(g, b, w->codec, w->cbuf, w->cbuf_cap);
	pthread_mutex_lock(&g->pool_lock);
	while (b->done < b->n || b->users > 0)
		pthread_cond_wait(&g->pool_done, &g->pool_lock);
	for (pp = &g->batches; *pp; pp = &(*pp)->link) {
		if (*pp == b) {
			*pp = b->link;
			break;
		}
	}
	pthread_mutex_unlock(&g->pool_lock);
}

/* Chunks the data region [start, end) of @fd: read a window, cut every chunk it holds,
 * fingerprint and store them in parallel, add them to the content in order. */
/*
 * The MIME type of a file, from the bytes already read for chunking (no extra I/O), kept
 * with the item so the organizer does not have to read the stored first chunk again.
 */
static void note_mime(struct worker *w, struct item *it, const uint8_t *p, size_t len)
{
	struct ing *g = w->g;
	struct mime_slot *sl = NULL;
	struct fp256 key;
	char type[96] = "";
	const char *m;

	if (len > MIME_HEAD)
		len = MIME_HEAD;
	if (!w->mime_exact && mime_quick_known(p, len)) {
		/* executables and scripts: known without libmagic, not worth hashing */
		free(it->mime);
		it->mime = strdup(MIME_NOT_BINARY);
		return;
	}
	if (g->mime_cache) {
		uint32_t h;

		fp_sha256(p, len, &key);
		memcpy(&h, key.b, sizeof(h));
		sl = &g->mime_cache[h % MIME_CACHE_SLOTS];
		pthread_mutex_lock(&g->mime_lock);
		if (sl->type[0] && fp_equal(&sl->key, &key) && sl->exact == w->mime_exact)
			memcpy(type, sl->type, sizeof(type));
		pthread_mutex_unlock(&g->mime_lock);
	}
	if (type[0]) {
		m = type;
	} else {
		struct timespec t0, t1;

		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
		m = mime_of(w->mime, p, len, w->mime_exact);
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
		atomic_fetch_add(&g->mime_calls, 1);
		atomic_fetch_add(&g->mime_ns, (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000000LL +
							   (t1.tv_nsec - t0.tv_nsec)));
	}
	free(it->mime);
	it->mime = strdup(m);
	if (sl && !type[0] && strlen(m) < sizeof(sl->type)) {
		pthread_mutex_lock(&g->mime_lock);
		sl->key = key;
		sl->exact = w->mime_exact;
		snprintf(sl->type, sizeof(sl->type), "%s", m);
		pthread_mutex_unlock(&g->mime_lock);
	}
}

/* Git's object store is inside a git unit (placed whole, never classified file by file). */
static bool in_git_dir(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i + 4 <= n; i++)
		if ((i == 0 || p[i - 1] == '/') && !memcmp(p + i, ".git", 4) &&
		    (i + 4 == n || p[i + 4] == '/'))
			return true;
	return false;
}

/* Does @it need a MIME type? Sets w->mime_exact to how much of one. */
static bool want_mime(struct worker *w, const struct item *it)
{
	size_t nlen;
	const uint8_t *name = item_name(it, &nlen);
	enum rules_mime need;

	if (!w->g->cls || !w->mime || in_git_dir(it->path, it->path_len))
		return false;
	need = classify_may_need_mime(w->g->cls, it->path, it->path_len, name, nlen,
				      it->sb.st_mode, (uint64_t)it->sb.st_size,
				      it->sb.st_mtim.tv_sec, w->g->source_name);
	w->mime_exact = need == RULES_MIME_EXACT;
	return need != RULES_MIME_NONE;
}

/* @mime_for: the item whose MIME type comes from the first window (@start is 0), or NULL. */
static int read_region(struct worker *w, int fd, struct store_content_builder *cb, off_t start,
		       off_t end, struct item *mime_for)
{
	const struct cdc_params *cp = &w->g->params->cdc;
	struct cbatch *b = &w->batch;
	size_t have = 0, pos = 0;
	off_t off = start;
	bool eof = false;
	int rc = 0;

	while (!eof || pos < have) {
		size_t want;
		ssize_t got;

		memmove(w->win, w->win + pos, have - pos);
		have -= pos;
		pos = 0;
		want = READ_WINDOW - have;
		if ((off_t)want > end - off)
			want = (size_t)(end - off);
		got = want ? pread(fd, w->win + have, want, off) : 0;
		if (got < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (got == 0 && want)
			return -ESTALE;	/* shrank while read */
		have += (size_t)got;
		off += got;
		if (mime_for) {
			note_mime(w, mime_for, w->win, have);
			mime_for = NULL;
		}
		atomic_fetch_add(&w->g->bytes_read, (uint64_t)got);
		atomic_fetch_add(&w->g->bytes_done, (uint64_t)got);
		if (off >= end)
			eof = true;
		/* cut every chunk the window holds for sure */
		b->n = 0;
		while (pos < have && (eof || have - pos >= cp->max_size)) {
			size_t n = cdc_next(cp, w->win + pos, have - pos, eof);

			if (n == 0)
				break;
			b->jobs[b->n].p = w->win + pos;
			b->jobs[b->n].len = (uint32_t)n;
			b->n++;
			pos += n;
		}
		batch_run(w, b);
		for (size_t i = 0; i < b->n && rc == 0; i++) {
			rc = b->jobs[i].rc;
			if (rc == 0)
				rc = store_cb_add_chunk(cb, &b->jobs[i].id, b->jobs[i].len);
		}
		if (rc < 0)
			return rc;
	}
	return rc;
}

static int read_file_once(struct worker *w, struct item *it, int fd, const struct stat *sb)
{
	struct store_content_builder *cb = it->cb;
	off_t size = sb->st_size, off = 0;
	bool mime = want_mime(w, it);
	int rc = 0;

	store_cb_reset(cb);
	free(it->mime);
	it->mime = NULL;
	if (size <= (off_t)w->g->params->inline_max) {
		ssize_t n = size ? pread(fd, w->win, (size_t)size + 1, 0) : 0;

		if (n < 0)
			return -errno;
		if (n != size)
			return -ESTALE;
		atomic_fetch_add(&w->g->bytes_read, (uint64_t)n);
		atomic_fetch_add(&w->g->bytes_done, (uint64_t)n);
		if (mime)
			note_mime(w, it, w->win, (size_t)n);
		return store_cb_set_inline(cb, w->win, (size_t)n);
	}
	while (off < size) {
		off_t data = lseek(fd, off, SEEK_DATA), hole;

		if (data < 0) {
			if (errno == ENXIO) {	/* a hole up to the end */
				rc = store_cb_add_hole(cb, (uint64_t)(size - off));
				atomic_fetch_add(&w->g->bytes_done, (uint64_t)(size - off));
				break;
			}
			data = off;	/* SEEK_DATA unsupported: all data */
			hole = size;
		} else {
			hole = lseek(fd, data, SEEK_HOLE);
			if (hole < 0 || hole > size)
				hole = size;
		}
		if (data > size)
			data = size;
		if (data > off) {
			rc = store_cb_add_hole(cb, (uint64_t)(data - off));
			atomic_fetch_add(&w->g->bytes_done, (uint64_t)(data - off));
			if (rc < 0)
				break;
		}
		if (hole > data) {
			/*
			 * MIME from the first bytes, when the first region holds all the bytes
			 * libmagic looks at; else (a hole within them) the organizer computes
			 * it from the stored content, holes as zeros
			 */
			bool whole = hole >= (size < MIME_HEAD ? size : (off_t)MIME_HEAD);

			rc = read_region(w, fd, cb, data, hole,
					 mime && data == 0 && whole ? it : NULL);
			if (rc < 0)
				break;
		}
		off = hole;
	}
	return rc;
}

static void work_file(struct worker *w, struct item *it)
{
	struct ing *g = w->g;
	size_t nlen;
	const uint8_t *name = item_name(it, &nlen);
	char cname[256];
	int rc = 0;

	memcpy(cname, name, nlen);
	cname[nlen] = '\0';
	if (!it->cb && store_cb_new(&it->cb) < 0) {
		it->err = -ENOMEM;
		it->why = "out of memory";
		return;
	}
	for (int attempt = 0; attempt <= CHANGE_RETRIES; attempt++) {
		struct stat before, after;
		int fd = openat(it->parent->fd, cname,
				O_RDONLY | O_NOFOLLOW | O_NOATIME | O_NONBLOCK | O_CLOEXEC);

		if (fd < 0 && errno == EPERM)
			fd = openat(it->parent->fd, cname,
				    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0) {
			rc = -errno;
			it->why = rc == -ENOENT ? "vanished before it could be read" : NULL;
			break;
		}
		if (fstat(fd, &before) < 0) {
			rc = -errno;
			close(fd);
			break;
		}
		if (!S_ISREG(before.st_mode) || before.st_ino != it->sb.st_ino) {
			close(fd);
			rc = -ESTALE;
			it->why = "replaced by another file while ingest ran";
			break;
		}
		rc = read_file_once(w, it, fd, &before);
		if (rc == 0) {
			free_xattrs(it);
			rc = read_xattrs(fd, NULL, it);
		}
		if (rc == 0 && fstat(fd, &after) < 0)
			rc = -errno;
		close(fd);
		if (rc == 0 && (after.st_size != before.st_size ||
				!same_times(&after.st_mtim, &before.st_mtim) ||
				!same_times(&after.st_ctim, &before.st_ctim)))
			rc = -ESTALE;
		if (rc == -ESTALE || rc == -EAGAIN) {
			it->why = "changed while it was read (retried)";
			continue;
		}
		if (rc == 0)
			it->sb = after;
		break;
	}
	if (rc < 0) {
		it->err = rc;
		if (!it->why || rc != -ESTALE)
			it->why = it->why && rc == -ENOENT ? it->why : NULL;
		if (rc == -ESTALE && !it->why)
			it->why = "changed while it was read";
	}
	(void)g;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct ing *g = w->g;

	for (;;) {
		struct item *it = NULL;

		pthread_mutex_lock(&g->ring_lock);
		for (;;) {
			/*
			 * Everything before head is committed and freed (a file item is
			 * committed only once done), so never look behind it.
			 */
			if (g->claim < g->head)
				g->claim = g->head;
			while (g->claim < g->tail) {
				struct item *c = g->ring[g->claim % IN_RING];

				g->claim++;
				if (c->is_file_work && c->state == IT_WAIT) {
					c->state = IT_BUSY;
					it = c;
					break;
				}
			}
			if (it || g->stop || (g->walk_done && g->claim >= g->tail))
				break;
			pthread_cond_wait(&g->ring_cond, &g->ring_lock);
		}
		pthread_mutex_unlock(&g->ring_lock);
		if (!it)
			break;
		work_file(w, it);
		pthread_mutex_lock(&g->ring_lock);
		it->state = IT_DONE;
		pthread_cond_broadcast(&g->ring_cond);
		pthread_mutex_unlock(&g->ring_lock);
	}
	return NULL;
}

/* ---- the walker --------------------------------------------------------------------------- */

static bool excluded(struct ing *g, const uint8_t *path, size_t len, const uint8_t *name,
		     size_t nlen)
{
	char p[PATH_MAX], n[256];

	if (!g->o->nexcludes || len >= sizeof(p))
		return false;
	memcpy(p, path, len);
	p[len] = '\0';
	memcpy(n, name, nlen);
	n[nlen] = '\0';
	for (int i = 0; i < g->o->nexcludes; i++) {
		const char *pat = g->o->excludes[i];

		if (fnmatch(pat, p, FNM_PATHNAME | FNM_PERIOD) == 0 ||
		    (!strchr(pat, '/') && fnmatch(pat, n, FNM_PERIOD) == 0) ||
		    fnmatch(pat, p, 0) == 0)
			return true;
	}
	return false;
}

static bool hl_seen(struct hl_set *s, uint64_t ino)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (s->v[mid] == ino)
			return true;
		if (s->v[mid] < ino)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 256;
		uint64_t *v = realloc(s->v, cap * sizeof(*v));

		if (!v)
			return false;
		s->v = v;
		s->cap = cap;
	}
	memmove(s->v + lo + 1, s->v + lo, (s->n - lo) * sizeof(*s->v));
	s->v[lo] = ino;
	s->n++;
	return false;
}

static void ring_push(struct ing *g, struct item *it)
{
	pthread_mutex_lock(&g->ring_lock);
	while (g->tail - g->head >= IN_RING && !g->stop)
		pthread_cond_wait(&g->ring_cond, &g->ring_lock);
	if (g->stop) {
		pthread_mutex_unlock(&g->ring_lock);
		item_free(it);
		return;
	}
	g->ring[g->tail % IN_RING] = it;
	g->tail++;
	pthread_cond_broadcast(&g->ring_cond);
	pthread_mutex_unlock(&g->ring_lock);
}

static struct item *item_new(const uint8_t *ppath, size_t plen, const uint8_t *name, size_t nlen)
{
	struct item *it = calloc(1, sizeof(*it));

	if (!it)
		return NULL;
	it->path_len = plen ? plen + 1 + nlen : nlen;
	it->path = malloc(it->path_len + 1);
	if (!it->path) {
		free(it);
		return NULL;
	}
	if (plen) {
		memcpy(it->path, ppath, plen);
		it->path[plen] = '/';
		it->name_off = plen + 1;
	}
	memcpy(it->path + it->name_off, name, nlen);
	it->path[it->path_len] = '\0';
	return it;
}

/* Is the file unchanged since the last committed ingest of this source? */
static bool incremental_hit(struct ing *g, struct item *it)
{
	struct store_inode in;
	uint64_t ino;
	bool hit;

	if (!g->st)
		return false;
	if (store_get_srcmap(g->st, g->source_id, (uint64_t)it->sb.st_ino, &ino) < 0)
		return false;
	if (store_get_inode(g->st, ino, &in) < 0)
		return false;
	hit = in.view == STORE_VIEW_SRC && in.size == (uint64_t)it->sb.st_size &&
	      in.mode == it->sb.st_mode && same_times(&in.mtime, &it->sb.st_mtim) &&
	      same_times(&in.ctime, &it->sb.st_ctim) && in.has_content &&
	      in.src_ino == (uint64_t)it->sb.st_ino;
	store_inode_release(&in);
	if (hit)
		it->old_ino = ino;
	return hit;
}

static int name_cmp(const void *a, const void *b)
{
	const struct { char *p; size_t n; } *x = a, *y = b;
	size_t n = x->n < y->n ? x->n : y->n;
	int c = memcmp(x->p, y->p, n);

	return c ? c : (x->n > y->n) - (x->n < y->n);
}

struct nm {
	char *p;
	size_t n;
};

static void walk_dir(struct ing *g, struct item *it, int fd);

/* Creates the item for entry @name of directory @pdir (path @ppath) and pushes it. */
static void walk_entry(struct ing *g, struct wdir *pdir, const uint8_t *ppath, size_t plen,
		       const char *name, size_t nlen)
{
	struct item *it;
	struct stat sb;

	it = item_new(ppath, plen, (const uint8_t *)name, nlen);
	if (!it) {
		g->fatal = -ENOMEM;
		return;
	}
	if (fstatat(pdir->fd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno != ENOENT)
			add_failure(g, it->path, it->path_len, "cannot stat: %s", strerror(errno));
		item_free(it);
		return;
	}
	it->sb = sb;
	it->parent = wdir_get(pdir);
	if (excluded(g, it->path, it->path_len, (const uint8_t *)name, nlen)) {
		item_free(it);
		return;
	}
	if (S_ISDIR(sb.st_mode)) {
		int fd;

		if (sb.st_dev == g->store_dev && sb.st_ino == g->store_ino) {
			dfs_warn("skipping %s: it is the store itself", (char *)it->path);
			item_free(it);
			return;
		}
		for (size_t i = 0; i < g->nskip_devs; i++) {
			if (sb.st_dev == g->skip_devs[i]) {
				dfs_warn("skipping %s: a defragfs mount", (char *)it->path);
				item_free(it);
				return;
			}
		}
		if (g->o->one_fs && sb.st_dev != g->root_dev) {
			dfs_info("skipping %s: another filesystem (--one-file-system)",
				 (char *)it->path);
			item_free(it);
			return;
		}
		fd = openat(pdir->fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NOATIME |
			    O_CLOEXEC);
		if (fd < 0 && errno == EPERM)
			fd = openat(pdir->fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			it->err = -errno;
			it->why = "cannot open directory";
			ring_push(g, it);
			return;
		}
		walk_dir(g, it, fd);
		return;
	}
	if (S_ISREG(sb.st_mode)) {
		if (sb.st_nlink > 1 && hl_seen(&g->hl, (uint64_t)sb.st_ino)) {
			it->link_only = true;
		} else if (incremental_hit(g, it)) {
			it->unchanged = true;
			atomic_fetch_add(&g->bytes_done, (uint64_t)sb.st_size);
		} else {
			it->is_file_work = true;
		}
	} else {
		char pp[PATH_MAX];
		int rc;

		if (sb.st_nlink > 1 && hl_seen(&g->hl, (uint64_t)sb.st_ino))
			it->link_only = true;
		proc_path(pp, sizeof(pp), pdir->fd, (const uint8_t *)name, nlen);
		if (S_ISLNK(sb.st_mode)) {
			size_t cap = (size_t)sb.st_size + 1 > 256 ? (size_t)sb.st_size + 1 : 256;
			ssize_t n;

			it->target.p = malloc(cap + 1);
			n = it->target.p ? readlinkat(pdir->fd, name, (char *)it->target.p, cap)
					 : -1;
			if (n < 0 || (size_t)n >= cap) {
				it->err = n < 0 ? -errno : -ESTALE;
				it->why = n < 0 ? "cannot read symlink" : "symlink changed while read";
			} else {
				it->target.len = (size_t)n;
				it->target.p[n] = '\0';
			}
		}
		rc = read_xattrs(-1, pp, it);
		if (rc < 0 && !it->err) {
			it->err = rc;
			it->why = "cannot read extended attributes";
		}
	}
	ring_push(g, it);
}

/* Lists directory @it (open at @fd, owned), pushes it, then walks its entries. */
static void walk_dir(struct ing *g, struct item *it, int fd)
{
	struct nm *names = NULL;
	size_t n = 0, cap = 0, total = 0, plen;
	struct wdir *self;
	struct dirent *de;
	uint8_t *ppath;
	DIR *d;
	int dfd, rc;

	self = calloc(1, sizeof(*self));
	ppath = malloc(it->path_len + 1);
	if (!self || !ppath) {
		free(self);
		free(ppath);
		close(fd);
		g->fatal = -ENOMEM;
		item_free(it);
		return;
	}
	memcpy(ppath, it->path, it->path_len);
	plen = it->path_len;
	self->fd = fd;
	atomic_init(&self->refs, 1);
	it->self = wdir_get(self);
	rc = read_xattrs(fd, NULL, it);
	if (rc < 0) {
		it->err = rc;
		it->why = "cannot read extended attributes";
	}
	/* its own open file description: a dup() would share the read offset */
	dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_NOATIME | O_CLOEXEC);
	if (dfd < 0 && errno == EPERM)
		dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		add_failure(g, it->path, it->path_len, "cannot list directory: %s",
			    strerror(errno));
		ring_push(g, it);
		goto out;
	}
	errno = 0;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);

		if ((l == 1 && de->d_name[0] == '.') ||
		    (l == 2 && de->d_name[0] == '.' && de->d_name[1] == '.'))
			continue;
		if (n == cap) {
			struct nm *x;

			cap = cap ? cap * 2 : 64;
			x = realloc(names, cap * sizeof(*x));
			if (!x)
				break;
			names = x;
		}
		names[n].p = strdup(de->d_name);
		names[n].n = l;
		if (!names[n].p)
			break;
		total += l + 1;
		n++;
		errno = 0;
	}
	it->listing_ok = errno == 0;
	if (!it->listing_ok)
		add_failure(g, it->path, it->path_len, "cannot list directory: %s",
			    strerror(errno));
	closedir(d);
	if (n > 1)
		qsort(names, n, sizeof(*names), name_cmp);
	it->names = malloc(total ? total : 1);
	if (it->names) {
		for (size_t i = 0; i < n; i++) {
			memcpy(it->names + it->names_len, names[i].p, names[i].n + 1);
			it->names_len += names[i].n + 1;
		}
	} else {
		it->listing_ok = false;
	}
	ring_push(g, it);	/* the directory goes before its entries */
	for (size_t i = 0; i < n; i++) {
		if (!g->stop && !g->fatal)
			walk_entry(g, self, ppath, plen, names[i].p, names[i].n);
		free(names[i].p);
	}
	free(names);
out:
	free(ppath);
	wdir_put(self);
}

/* ---- stat pre-walk (progress totals) ------------------------------------------------------ */

struct prewalk {
	struct ing *g;
	int rootfd;
};

static void prewalk_dir(struct ing *g, int fd, int depth)
{
	DIR *d = fdopendir(fd);
	struct dirent *de;

	if (!d) {
		close(fd);
		return;
	}
	while (!g->stop && (de = readdir(d))) {
		struct stat sb;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		atomic_fetch_add(&g->total_files, 1);
		if (S_ISREG(sb.st_mode))
			atomic_fetch_add(&g->total_bytes, (uint64_t)sb.st_size);
		if (S_ISDIR(sb.st_mode) && depth < 4096 &&
		    !(g->o->one_fs && sb.st_dev != g->root_dev) &&
		    !(sb.st_dev == g->store_dev && sb.st_ino == g->store_ino)) {
			int cfd = openat(dirfd(d), de->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			if (cfd >= 0)
				prewalk_dir(g, cfd, depth + 1);
		}
	}
	closedir(d);
}

static void *prewalk_main(void *arg)
{
	struct prewalk *p = arg;

	prewalk_dir(p->g, p->rootfd, 0);
	atomic_store(&p->g->prewalk_done, true);
	return NULL;
}

/* ---- the committer ------------------------------------------------------------------------- */

static int fill_inode_common(struct ing *g, const struct item *it, uint64_t ino,
			     struct store_inode *in)
{
	memset(in, 0, sizeof(*in));
	in->ino = ino;
	in->view = STORE_VIEW_SRC;
	in->mode = it->sb.st_mode;
	in->uid = it->sb.st_uid;
	in->gid = it->sb.st_gid;
	in->nlink = (uint32_t)it->sb.st_nlink;
	in->size = S_ISREG(it->sb.st_mode) || S_ISLNK(it->sb.st_mode) ? (uint64_t)it->sb.st_size
									 : 0;
	in->rdev = S_ISCHR(it->sb.st_mode) || S_ISBLK(it->sb.st_mode) ? it->sb.st_rdev : 0;
	in->atime = it->sb.st_atim;
	in->mtime = it->sb.st_mtim;
	in->ctime = it->sb.st_ctim;
	in->source_id = g->source_id;
	in->src_ino = (uint64_t)it->sb.st_ino;
	in->gen = g->run_gen;
	/* borrowed from the item: the caller never releases @in */
	in->target = it->target;
	in->xattrs = it->xattrs;
	in->nxattrs = it->nxattrs;
	return 0;
}

/*
 * Called before a change to the source's view: advances "src_epoch" once per run, in the
 * same transaction as the change, so the organizer knows its tree is out of date (and
 * that an ingest which changed nothing needs no new build).
 */
static int note_change(struct ing *g, struct store_txn *tx)
{
	char key[40];
	int rc;

	if (g->epoch_noted)
		return 0;
	/* and when this source last changed: an append build needs the older ones unchanged */
	snprintf(key, sizeof(key), "src_changed.%" PRIu32, g->source_id);
	rc = store_txn_put_meta_u64(tx, "src_epoch", g->epoch + 1);
	if (rc == 0)
		rc = store_txn_put_meta_u64(tx, key, g->epoch + 1);
	if (rc == 0)
		g->epoch_noted = true;
	return rc;
}

/*
 * Is @b the same entry as @a for the organized tree? The same record (store_inode_same,
 * which sets the generation aside) but for the atime and the MIME type: reading a
 * directory moves its atime (relatime), so every ingest would see a change, and a file
 * whose atime alone moved is not read again either (the incremental key); a MIME type
 * only follows the bytes.
 */
static bool same_record(const struct store_inode *a, const struct store_inode *b)
{
	struct store_inode x = *b;	/* shallow */

	x.atime = a->atime;
	x.mime = a->mime;
	return store_inode_same(&x, a);
}

static int delete_entry(struct ing *g, struct store_txn *tx, uint64_t parent, const uint8_t *name,
			size_t nlen, uint64_t *files);

/* The entry (parent, name) no longer names @child: drop @child if nothing else can. */
static int drop_child(struct ing *g, struct store_txn *tx, uint64_t child, uint8_t dtype,
		      uint64_t *files)
{
	struct store_inode in;
	uint64_t mapped;
	int rc;

	if (dtype == DT_DIR) {
		struct store_dir_iter *di;
		const uint8_t *nm;
		size_t nl;
		uint64_t c;
		uint8_t t;
		struct dfs_buf names;

		/* Collect first: the iterator must not see its own deletions. */
		dfs_buf_init(&names, 1ull << 32);
		rc = store_txn_dir_open(tx, child, &di);
		if (rc < 0)
			return rc;
		while ((rc = store_dir_next(di, &nm, &nl, &c, &t)) == 1)
			dfs_buf_put_bytes(&names, nm, nl);
		store_dir_close(di);
		if (rc == 0 && names.err)
			rc = names.err;
		if (rc == 0) {
			struct dfs_rd r;

			dfs_rd_init(&r, names.data, names.len);
			while (r.left && rc == 0) {
				const uint8_t *p = dfs_rd_bytes(&r, &nl);

				rc = p ? delete_entry(g, tx, child, p, nl, files) : -EBADMSG;
			}
		}
		dfs_buf_release(&names);
		if (rc < 0)
			return rc;
	}
	rc = store_txn_get_inode(tx, child, &in);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	if (in.gen == g->run_gen || (dtype != DT_DIR && in.nlink > 1)) {
		store_inode_release(&in);
		return 0;
	}
	if (dtype != DT_DIR && files)
		(*files)++;
	if (store_txn_get_srcmap(tx, in.source_id, in.src_ino, &mapped) == 0 && mapped == child)
		rc = store_txn_del_srcmap(tx, in.source_id, in.src_ino);
	if (rc == 0)
		rc = store_txn_del_inode(tx, child);
	store_inode_release(&in);
	return rc;
}

static int delete_entry(struct ing *g, struct store_txn *tx, uint64_t parent, const uint8_t *name,
			size_t nlen, uint64_t *files)
{
	uint64_t child;
	uint8_t dtype;
	int rc = store_txn_lookup(tx, parent, name, nlen, &child, &dtype);

	if (rc == -ENOENT)
		return 0;
	if (rc == 0)
		rc = note_change(g, tx);
	if (rc == 0)
		rc = store_txn_del_dirent(tx, parent, name, nlen);
	if (rc == 0)
		rc = drop_child(g, tx, child, dtype, files);
	return rc;
}

/* Counts the non-directory entries under (parent, name), read-only. */
static uint64_t count_tree(struct store *st, uint64_t parent, const uint8_t *name, size_t nlen)
{
	struct store_dir_iter *di;
	const uint8_t *nm;
	size_t nl;
	uint64_t child, c, n = 0;
	uint8_t dtype, t;

	if (store_lookup(st, parent, name, nlen, &child, &dtype) < 0)
		return 0;
	if (dtype != DT_DIR)
		return 1;
	if (store_dir_open(st, child, NULL, 0, &di) < 0)
		return 0;
	while (store_dir_next(di, &nm, &nl, &c, &t) == 1) {
		if (t == DT_DIR)
			n += count_tree(st, child, nm, nl);
		else
			n++;
	}
	store_dir_close(di);
	return n;
}

/* Names of the index directory @dir missing from the item's sorted listing -> g->dels. */
static int note_stale(struct ing *g, struct store_txn *tx, uint64_t dir, const struct item *it)
{
	struct store_dir_iter *di;
	const uint8_t *nm;
	size_t nl, pos = 0;
	uint64_t c;
	uint8_t t;
	int rc;

	rc = store_txn_dir_open(tx, dir, &di);
	if (rc < 0)
		return rc;
	while ((rc = store_dir_next(di, &nm, &nl, &c, &t)) == 1) {
		int cmp = 1;

		while (pos < it->names_len) {
			const uint8_t *cur = it->names + pos;
			size_t cl = strlen((const char *)cur), m = cl < nl ? cl : nl;

			cmp = memcmp(cur, nm, m);
			if (!cmp)
				cmp = (cl > nl) - (cl < nl);
			if (cmp >= 0)
				break;
			pos += cl + 1;
		}
		if (cmp == 0)
			continue;
		dfs_buf_put_u64(&g->dels, dir);
		dfs_buf_put_bytes(&g->dels, nm, nl);
		g->ndels++;
	}
	store_dir_close(di);
	return rc < 0 ? rc : g->dels.err;
}

static int apply_item(struct ing *g, struct store_txn *tx, struct item *it)
{
	uint64_t parent = it->parent ? it->parent->ino : STORE_SOURCES_INO;
	const uint8_t *name;
	size_t nlen;
	uint64_t cur = 0, ino = 0;
	uint8_t cur_type = 0, dtype = dtype_of(it->sb.st_mode);
	struct store_inode in, old;
	bool have_old = false;
	int rc;

	if (it->parent) {
		name = item_name(it, &nlen);
	} else {
		name = (const uint8_t *)g->source_name;
		nlen = strlen(g->source_name);
	}
	if (it->err && !it->self) {
		char msg[256];

		snprintf(msg, sizeof(msg), "%s%s%s", it->why ? it->why : "",
			 it->why ? ": " : "", strerror(-it->err));
		add_failure(g, it->path, it->path_len, "%s", msg);
		return 0;
	}
	if (it->err)	/* a directory whose xattrs failed: placed, and reported */
		add_failure(g, it->path, it->path_len, "%s: %s", it->why, strerror(-it->err));
	rc = store_txn_lookup(tx, parent, name, nlen, &cur, &cur_type);
	if (rc < 0 && rc != -ENOENT)
		return rc;
	if (it->link_only) {
		rc = store_txn_get_srcmap(tx, g->source_id, (uint64_t)it->sb.st_ino, &ino);
		if (rc < 0) {
			add_failure(g, it->path, it->path_len,
				    "hard link whose first name could not be stored");
			return 0;
		}
		goto put_dirent;
	}
	if (it->unchanged) {
		ino = it->old_ino;
		if (cur == ino)
			return 0;
		/* Same file at a new name (a rename): mark it seen in this run. */
		rc = note_change(g, tx);
		if (rc == 0)
			rc = store_txn_get_inode(tx, ino, &old);
		if (rc < 0)
			return rc;
		old.gen = g->run_gen;
		rc = store_txn_put_inode(tx, &old);
		store_inode_release(&old);
		if (rc < 0)
			return rc;
		goto put_dirent;
	}
	rc = store_txn_get_srcmap(tx, g->source_id, (uint64_t)it->sb.st_ino, &ino);
	if (rc == -ENOENT) {
		ino = store_txn_alloc_ino(tx);
		rc = store_txn_put_srcmap(tx, g->source_id, (uint64_t)it->sb.st_ino, ino);
	} else if (rc == 0) {
		have_old = store_txn_get_inode(tx, ino, &old) == 0;
	}
	if (rc < 0)
		return rc;
	fill_inode_common(g, it, ino, &in);
	if (S_ISREG(it->sb.st_mode)) {
		uint64_t size, data_bytes;
		bool fresh_inline = false;

		rc = store_cb_finish(it->cb, &in.content, &size, &data_bytes);
		if (rc < 0)
			goto out_old;
		/* tiny files live inline in their content record: new ones count as new data */
		if (size && size <= g->params->inline_max)
			fresh_inline = !store_txn_has_content(tx, &in.content);
		rc = store_txn_put_content(tx, it->cb, &in.content);
		if (rc < 0)
			goto out_old;
		if (fresh_inline) {
			atomic_fetch_add(&g->new_raw, size);
			atomic_fetch_add(&g->new_stored, size);
		}
		in.has_content = true;
		in.size = size;
		in.data_bytes = data_bytes;
		if (it->mime) {		/* borrowed from the item */
			in.mime.p = (uint8_t *)it->mime;
			in.mime.len = strlen(it->mime);
		} else if (have_old && old.has_content && fp_equal(&old.content, &in.content)) {
			in.mime = old.mime;	/* borrowed: the MIME type of the same bytes */
		}
	}
	/* the mount refuses security.* names outright while no inode has one */
	if (rc == 0 && !g->security_noted) {
		for (size_t i = 0; i < in.nxattrs; i++) {
			if (in.xattrs[i].name.len > 9 &&
			    !memcmp(in.xattrs[i].name.p, "security.", 9)) {
				rc = store_txn_put_meta_u64(tx, STORE_META_SECURITY_XATTRS, 1);
				g->security_noted = rc == 0;
				break;
			}
		}
	}
	/* directories and symlinks are stored again every run (their generation); only a
	 * new or different record changes the view */
	if (rc == 0 && (!have_old || !same_record(&old, &in)))
		rc = note_change(g, tx);
	if (rc == 0)
		rc = store_txn_put_inode(tx, &in);
out_old:
	if (have_old)
		store_inode_release(&old);
	if (rc < 0)
		return rc;
put_dirent:
	if (S_ISDIR(it->sb.st_mode) && it->self)
		it->self->ino = ino;
	if (cur != ino || cur_type != dtype) {
		rc = note_change(g, tx);
		if (rc == 0)
			rc = store_txn_put_dirent(tx, parent, name, nlen, ino, dtype);
		if (rc == 0 && cur && cur != ino)
			rc = drop_child(g, tx, cur, cur_type, NULL);
		if (rc < 0)
			return rc;
	}
	if (S_ISDIR(it->sb.st_mode) && it->listing_ok && !it->err)
		rc = note_stale(g, tx, ino, it);
	if (S_ISREG(it->sb.st_mode))
		atomic_fetch_add(&g->files_done, 1);
	return rc;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void progress_line(struct ing *g, double t0, bool tty)
{
	double el = now_s() - t0;
	uint64_t bd = atomic_load(&g->bytes_done), tb = atomic_load(&g->total_bytes);
	uint64_t rd = atomic_load(&g->bytes_read), nr = atomic_load(&g->new_raw);
	double mbs = el > 0 ? (double)bd / el / 1e6 : 0;
	char a[32], b[32], eta[32] = "?";

	if (atomic_load(&g->prewalk_done) && mbs > 0 && tb > bd)
		snprintf(eta, sizeof(eta), "%.0fs", (double)(tb - bd) / 1e6 / mbs);
	else if (atomic_load(&g->prewalk_done))
		snprintf(eta, sizeof(eta), "0s");
	fprintf(stderr, "%s%s: %" PRIu64 "/%" PRIu64 "%s files, %s/%s, %.1f MB/s, ETA %s, "
		"dedup %.2fx%s", tty ? "\r\033[K" : "", g->source_name,
		(uint64_t)atomic_load(&g->files_done), (uint64_t)atomic_load(&g->total_files),
		atomic_load(&g->prewalk_done) ? "" : "+", cli_human(bd, a, sizeof(a)),
		cli_human(tb, b, sizeof(b)), mbs, eta, nr ? (double)rd / (double)nr : 1.0,
		tty ? "" : "\n");
	fflush(stderr);
}

/* ---- one source ------------------------------------------------------------------------------ */

struct src_run {
	const char *path;
	int rootfd;
	int walk_fd;	/* handed to the walker thread, which closes it */
	struct stat rootsb;
};

static void *walker_root_main(void *arg)
{
	void **a = arg;
	struct ing *g = a[0];
	struct src_run *sr = a[1];
	struct item *root = item_new((const uint8_t *)"", 0, (const uint8_t *)"", 0);

	if (!root) {
		g->fatal = -ENOMEM;
		close(sr->walk_fd);
	} else {
		root->sb = sr->rootsb;
		walk_dir(g, root, sr->walk_fd);
	}
	pthread_mutex_lock(&g->ring_lock);
	g->walk_done = true;
	pthread_cond_broadcast(&g->ring_cond);
	pthread_mutex_unlock(&g->ring_lock);
	return NULL;
}

/* Filesystem identity: "uuid:..." from libblkid, else "fsid:<f_fsid>:<root inode>". */
static void source_fsid(int fd, const struct stat *sb, char *out, size_t len)
{
	char *dev = blkid_devno_to_devname(sb->st_dev);
	struct statfs sfs;

	if (dev) {
		blkid_cache cache = NULL;
		char *uuid = NULL;

		if (blkid_get_cache(&cache, "/dev/null") == 0) {
			uuid = blkid_get_tag_value(cache, "UUID", dev);
			blkid_put_cache(cache);
		}
		free(dev);
		if (uuid) {
			snprintf(out, len, "uuid:%s", uuid);
			free(uuid);
			return;
		}
	}
	if (fstatfs(fd, &sfs) == 0) {
		unsigned a, b;

		memcpy(&a, &sfs.f_fsid, sizeof(a));
		memcpy(&b, (char *)&sfs.f_fsid + sizeof(a), sizeof(b));
		snprintf(out, len, "fsid:%08x%08x:%llu", a, b, (unsigned long long)sb->st_ino);
		return;
	}
	snprintf(out, len, "dev:%u:%u:%llu", major(sb->st_dev), minor(sb->st_dev),
		 (unsigned long long)sb->st_ino);
}

static void collect_skip_devs(struct ing *g)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096];

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned maj, min;
		char *sep = strstr(line, " - ");

		if (!sep || strncmp(sep + 3, "fuse.defragfs ", 14) != 0)
			continue;
		if (sscanf(line, "%*u %*u %u:%u", &maj, &min) == 2) {
			dev_t *d = realloc(g->skip_devs, (g->nskip_devs + 1) * sizeof(*d));

			if (d) {
				g->skip_devs = d;
				g->skip_devs[g->nskip_devs++] = makedev(maj, min);
			}
		}
	}
	fclose(f);
}

/* Dry run: an in-memory set of chunk id prefixes estimates the dedup of the run. */
#define DRY_SET_MAX (1u << 25)
static pthread_mutex_t dry_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t *dry_set;
static size_t dry_cap, dry_n;
static atomic_uint_fast64_t dry_unique_bytes;

static void dry_note(const struct fp256 *id, size_t n)
{
	uint64_t k;
	size_t s;

	memcpy(&k, id->b, sizeof(k));
	k |= 1;
	pthread_mutex_lock(&dry_lock);
	if (!dry_set) {
		dry_cap = 1u << 20;
		dry_set = calloc(dry_cap, sizeof(*dry_set));
	}
	if (dry_set && dry_n * 2 >= dry_cap && dry_cap < DRY_SET_MAX) {
		uint64_t *old = dry_set;
		size_t oc = dry_cap;

		dry_set = calloc(oc * 2, sizeof(*dry_set));
		if (dry_set) {
			dry_cap = oc * 2;
			for (size_t i = 0; i < oc; i++) {
				if (!old[i])
					continue;
				for (s = old[i] & (dry_cap - 1); dry_set[s]; s = (s + 1) & (dry_cap - 1))
					;
				dry_set[s] = old[i];
			}
			free(old);
		} else {
			dry_set = old;
		}
	}
	if (dry_set && dry_n * 2 < dry_cap) {
		for (s = k & (dry_cap - 1); dry_set[s] && dry_set[s] != k; s = (s + 1) & (dry_cap - 1))
			;
		if (!dry_set[s]) {
			dry_set[s] = k;
			dry_n++;
			atomic_fetch_add(&dry_unique_bytes, n);
		}
	}
	pthread_mutex_unlock(&dry_lock);
}

static bool item_ready(const struct item *it)
{
	return !it->is_file_work || it->state == IT_DONE;
}

static void stop_all(struct ing *g)
{
	pthread_mutex_lock(&g->ring_lock);
	g->stop = true;
	pthread_cond_broadcast(&g->ring_cond);
	pthread_mutex_unlock(&g->ring_lock);
}

static int ensure_roots(struct store_txn *tx)
{
	struct store_inode in;
	struct timespec now;
	int rc;

	rc = store_txn_get_inode(tx, STORE_ROOT_INO, &in);
	if (rc == 0) {
		store_inode_release(&in);
		return 0;
	}
	if (rc != -ENOENT)
		return rc;
	clock_gettime(CLOCK_REALTIME, &now);
	memset(&in, 0, sizeof(in));
	in.ino = STORE_ROOT_INO;
	in.view = STORE_VIEW_ORG;
	in.mode = S_IFDIR | 0755;
	in.nlink = 2;
	in.atime = in.mtime = in.ctime = now;
	rc = store_txn_put_inode(tx, &in);
	if (rc < 0)
		return rc;
	in.ino = STORE_SOURCES_INO;
	in.view = STORE_VIEW_SRC;
	in.mode = S_IFDIR | 0555;
	rc = store_txn_put_inode(tx, &in);
	/* a new store: nothing has security.* xattrs yet (an ingest that stores one says so) */
	if (rc == 0)
		rc = store_txn_put_meta_u64(tx, STORE_META_SECURITY_XATTRS, 0);
	return rc;
}

struct src_summary {
	char *name;
	uint64_t files, bytes, bytes_read, new_raw, new_stored, unchanged, mime_calls;
	double secs, mime_secs;
	int status;
};

static int run_source(const struct ingest_opts *o, struct store *st, const char *path,
		      const char *name, struct store_txn **txp, struct src_summary *sum,
		      struct failure **fails, size_t *nfails)
{
	struct ing *g;
	struct src_run sr = { .path = path, .rootfd = -1 };
	struct store_source src, old;
	struct prewalk pw;
	pthread_t walker, pre, *workers = NULL;
	struct worker *wk = NULL;
	struct helper *helpers = NULL;
	void *wargs[2];
	char fsid[256];
	bool have_old = false, pre_started = false;
	double t0 = now_s(), last_commit = t0, last_prog = t0;
	uint64_t bytes_at_commit = 0, prev_files = 0;
	bool tty = o->progress == PROGRESS_ALWAYS ||
		   (o->progress == PROGRESS_AUTO && isatty(STDERR_FILENO));
	int jobs = o->jobs > 0 ? o->jobs : (int)sysconf(_SC_NPROCESSORS_ONLN);
	int rc = 0, status = CLI_EXIT_OK, nworkers = 0;
	struct stat stsb;

	if (jobs < 1)
		jobs = 1;
	memset(&src, 0, sizeof(src));
	g = calloc(1, sizeof(*g));
	if (!g)
		return CLI_EXIT_STORE;
	g->o = o;
	g->st = st;
	g->source_name = name;
	if (!o->dry_run && !o->no_organize) {
		char cerr[512];

		/* checked before the run started; failing now only costs MIME-on-read */
		if (classify_open(o->rules, &g->cls, cerr, sizeof(cerr)) < 0)
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
	collect_skip_devs(g);
	if (st && stat(store_dir(st), &stsb) == 0) {
		g->store_dev = stsb.st_dev;
		g->store_ino = stsb.st_ino;
	}
	sr.rootfd = open(path, O_RDONLY | O_DIRECTORY | O_NOATIME | O_CLOEXEC);
	if (sr.rootfd < 0 && errno == EPERM)
		sr.rootfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sr.rootfd < 0 || fstat(sr.rootfd, &sr.rootsb) < 0) {
		fprintf(stderr, "defrag-ingest: %s: %s\n", path, strerror(errno));
		status = CLI_EXIT_PARTIAL;
		goto out;
	}
	g->root_dev = sr.rootsb.st_dev;
	source_fsid(sr.rootfd, &sr.rootsb, fsid, sizeof(fsid));
	g->params = st ? store_params(st) : &o->create;

	if (st) {
		rc = store_txn_get_source(*txp, name, strlen(name), &old);
		if (rc == 0) {
			have_old = true;
			if (old.fsid.len != strlen(fsid) || memcmp(old.fsid.p, fsid, old.fsid.len)) {
				if (!o->replace) {
					fprintf(stderr, "defrag-ingest: source '%s' was ingested from "
						"another filesystem (%.*s, now %s); use --replace to "
						"replace it, or --name to ingest it as a new source\n",
						name, (int)old.fsid.len, (char *)old.fsid.p, fsid);
					status = CLI_EXIT_USAGE;
					goto out;
				}
			}
			src = old;
			memset(&old, 0, sizeof(old));
			prev_files = src.files;
		} else if (rc != -ENOENT) {
			status = CLI_EXIT_STORE;
			goto out;
		} else {
			src.name.p = (uint8_t *)strdup(name);
			src.name.len = strlen(name);
			src.first_ingest = time(NULL);
			src.against_result = -1;
		}
		free(src.fsid.p);
		src.fsid.p = (uint8_t *)strdup(fsid);
		src.fsid.len = strlen(fsid);
		free(src.path.p);
		src.path.p = (uint8_t *)strdup(path);
		src.path.len = strlen(path);
		rc = store_txn_put_source(*txp, &src);
		if (rc < 0) {
			status = CLI_EXIT_STORE;
			goto out;
		}
		g->source_id = src.id;
		g->run_gen = src.ingest_gen + 1;
		rc = store_txn_get_meta_u64(*txp, "src_epoch", &g->epoch);
		if (rc < 0) {
			status = CLI_EXIT_STORE;
			goto out;
		}
	}

	/* threads */
	pw.g = g;
	pw.rootfd = openat(sr.rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pw.rootfd >= 0 && pthread_create(&pre, NULL, prewalk_main, &pw) == 0)
		pre_started = true;
	else if (pw.rootfd >= 0)
		close(pw.rootfd);
	workers = calloc((size_t)jobs, sizeof(*workers));
	wk = calloc((size_t)jobs, sizeof(*wk));
	if (!workers || !wk) {
		status = CLI_EXIT_STORE;
		goto out_join;
	}
	for (int i = 0; i < jobs; i++) {
		wk[i].g = g;
		wk[i].cbuf_cap = codec_bound(g->params->cdc.max_size);
		wk[i].win = malloc(READ_WINDOW + 1);
		wk[i].batch.jobs = calloc(READ_WINDOW / g->params->cdc.min_size + 2,
					  sizeof(*wk[i].batch.jobs));
		if (!wk[i].batch.jobs) {
			status = CLI_EXIT_STORE;
			goto out_join;
		}
		wk[i].cbuf = malloc(wk[i].cbuf_cap);
		if (g->cls && mime_new(&wk[i].mime) < 0)
			wk[i].mime = NULL;	/* the organizer computes MIME types then */
		if (!wk[i].win || !wk[i].cbuf ||
		    codec_new(g->params->zstd_level, &wk[i].codec) < 0 ||
		    pthread_create(&workers[i], NULL, worker_main, &wk[i]) != 0) {
			status = CLI_EXIT_STORE;
			goto out_join;
		}
		nworkers++;
	}
	helpers = calloc((size_t)jobs, sizeof(*helpers));
	for (int i = 0; helpers && i < jobs - 1 + (jobs == 1); i++) {
		helpers[i].g = g;
		helpers[i].cap = codec_bound(g->params->cdc.max_size);
		helpers[i].cbuf = malloc(helpers[i].cap);
		if (!helpers[i].cbuf || codec_new(g->params->zstd_level, &helpers[i].codec) < 0 ||
		    pthread_create(&helpers[i].tid, NULL, helper_main, &helpers[i]) != 0)
			break;
		helpers[i].started = true;
	}
	wargs[0] = g;
	wargs[1] = &sr;
	sr.walk_fd = sr.rootfd;
	sr.rootfd = -1;	/* the walker owns it now */
	if (pthread_create(&walker, NULL, walker_root_main, wargs) != 0) {
		close(sr.walk_fd);
		status = CLI_EXIT_STORE;
		goto out_join;
	}

	/* the committer */
	for (;;) {
		struct item *it = NULL;
		double t;

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
			if (tty || o->progress == PROGRESS_ALWAYS) {
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
		t = now_s();
		if ((tty || o->progress == PROGRESS_ALWAYS) && t - last_prog >= (tty ? 0.5 : 10)) {
			progress_line(g, t0, tty);
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
				add_failure(g, it->path, it->path_len, "%s", it->why ? it->why
					    : strerror(-it->err));
			item_free(it);
			continue;
		}
		if (it->unchanged)
			g->skipped_unchanged++;
		rc = apply_item(g, *txp, it);
		item_free(it);
		if (rc < 0) {
			fprintf(stderr, "defrag-ingest: %s: cannot update the index: %s\n",
				store_dir(st), dfs_strerror(rc));
			status = CLI_EXIT_STORE;
			stop_all(g);
			break;
		}
		if (store_txn_size(*txp) > COMMIT_META ||
		    atomic_load(&g->bytes_read) - bytes_at_commit > COMMIT_BYTES ||
		    t - last_commit > COMMIT_SECONDS) {
			rc = store_txn_commit(*txp);
			*txp = NULL;
			if (rc == 0)
				rc = store_txn_begin(st, txp);
			if (rc < 0) {
				fprintf(stderr, "defrag-ingest: %s: commit failed: %s; everything "
					"committed before is safe, run the same command again\n",
					store_dir(st), dfs_strerror(rc));
				status = CLI_EXIT_STORE;
				stop_all(g);
				break;
			}
			last_commit = t;
			bytes_at_commit = atomic_load(&g->bytes_read);
		}
	}
	if (tty || o->progress == PROGRESS_ALWAYS) {
		progress_line(g, t0, tty);
		if (tty)
			fputc('\n', stderr);
	}
	pthread_join(walker, NULL);
out_join:
	stop_all(g);
	for (int i = 0; i < nworkers; i++)
		pthread_join(workers[i], NULL);
	if (pre_started)
		pthread_join(pre, NULL);
	pthread_mutex_lock(&g->pool_lock);
	g->pool_stop = true;
	pthread_cond_broadcast(&g->pool_cond);
	pthread_mutex_unlock(&g->pool_lock);
	for (int i = 0; helpers && i < jobs; i++) {
		if (helpers[i].started)
			pthread_join(helpers[i].tid, NULL);
		codec_free(helpers[i].codec);
		free(helpers[i].cbuf);
	}
	free(helpers);
	helpers = NULL;
	/* drain what was never applied (after a failure) */
	while (g->head < g->tail) {
		item_free(g->ring[g->head % IN_RING]);
		g->head++;
	}
	if (g->fatal && status == CLI_EXIT_OK)
		status = CLI_EXIT_STORE;

	/* deferred deletions, after the threshold check */
	if (status == CLI_EXIT_OK && st && g->ndels) {
		struct dfs_rd r;
		uint64_t removed = 0;

		dfs_rd_init(&r, g->dels.data, g->dels.len);
		while (r.left) {
			uint64_t parent = dfs_rd_u64(&r);
			size_t nl;
			const uint8_t *nm = dfs_rd_bytes(&r, &nl);

			if (!nm)
				break;
			removed += count_tree(st, parent, nm, nl);
		}
		if (prev_files && removed * 2 > prev_files && !o->allow_deletions &&
		    !o->replace) {
			fprintf(stderr, "defrag-ingest: %s: this run would remove %" PRIu64
				" of the %" PRIu64 " files stored for source '%s' (more than half); "
				"if that is intended, run again with --allow-deletions\n",
				path, removed, prev_files, name);
			status = CLI_EXIT_USAGE;
		} else {
			dfs_rd_init(&r, g->dels.data, g->dels.len);
			while (r.left && rc == 0) {
				uint64_t parent = dfs_rd_u64(&r);
				size_t nl;
				const uint8_t *nm = dfs_rd_bytes(&r, &nl);

				rc = nm ? delete_entry(g, *txp, parent, nm, nl, NULL) : -EBADMSG;
			}
			if (rc < 0)
				status = CLI_EXIT_STORE;
		}
	}
	if (status == CLI_EXIT_OK && st) {
		uint64_t root;
		uint8_t t;

		if (store_txn_lookup(*txp, STORE_SOURCES_INO, name, strlen(name), &root, &t) == 0)
			src.root_ino = root;
		src.last_ingest = time(NULL);
		src.files = atomic_load(&g->files_done) + g->skipped_unchanged;
		src.bytes = atomic_load(&g->bytes_done);
		src.ingest_gen = g->run_gen;
		rc = store_txn_put_source(*txp, &src);
		if (rc == 0)
			rc = store_txn_commit(*txp);
		*txp = NULL;
		if (rc == 0)
			rc = store_txn_begin(st, txp);
		if (rc < 0)
			status = CLI_EXIT_STORE;
	}
	if (status == CLI_EXIT_OK && g->nfails)
		status = CLI_EXIT_PARTIAL;
	sum->name = strdup(name);
	sum->files = atomic_load(&g->files_done) + g->skipped_unchanged;
	sum->bytes = atomic_load(&g->bytes_done);
	sum->bytes_read = atomic_load(&g->bytes_read);
	sum->new_raw = o->dry_run ? atomic_load(&dry_unique_bytes) : atomic_load(&g->new_raw);
	sum->new_stored = atomic_load(&g->new_stored);
	sum->unchanged = g->skipped_unchanged;
	sum->mime_calls = atomic_load(&g->mime_calls);
	sum->mime_secs = (double)atomic_load(&g->mime_ns) / 1e9;
	sum->secs = now_s() - t0;
	sum->status = status;
	/* hand the failures to the caller */
	for (size_t i = 0; i < g->nfails; i++) {
		struct failure *f = realloc(*fails, (*nfails + 1) * sizeof(*f));

		if (!f)
			break;
		*fails = f;
		(*fails)[(*nfails)++] = g->fails[i];
	}
	free(g->fails);
	g->fails = NULL;
	g->nfails = 0;
out:
	for (int i = 0; wk && i < jobs; i++) {
		free(wk[i].batch.jobs);
		mime_free(wk[i].mime);
		codec_free(wk[i].codec);
		free(wk[i].win);
		free(wk[i].cbuf);
	}
	free(wk);
	free(workers);
	if (sr.rootfd >= 0)
		close(sr.rootfd);
	if (have_old)
		store_source_release(&old);
	store_source_release(&src);
	dfs_buf_release(&g->dels);
	free(g->hl.v);
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
	return status;
}

/* ---- the dry-run plan: classify the live source ----------------------------------------- */

struct plan {
	struct organize_stats *os;
};

static int plan_emit(void *arg, const struct cls_result *r)
{
	struct plan *p = arg;
	struct organize_stats *os = p->os;
	const char *cat = r->category ? r->category : "";
	size_t i;

	if (!S_ISREG(r->entry->mode))
		return 0;
	for (i = 0; i < os->ncats; i++)
		if (!strcmp(os->cats[i].name, cat))
			break;
	if (i == os->ncats) {
		struct organize_cat *c = realloc(os->cats, (os->ncats + 1) * sizeof(*c));

		if (!c)
			return -ENOMEM;
		os->cats = c;
		c[i].name = strdup(cat);
		c[i].files = c[i].bytes = 0;
		if (!c[i].name)
			return -ENOMEM;
		os->ncats++;
	}
	os->cats[i].files++;
	os->cats[i].bytes += r->entry->size;
	os->entries++;
	return 0;
}

static int dry_plan(const struct ingest_opts *o, const char *path, const char *name,
		    struct organize_stats *os)
{
	struct classify *cls = NULL;
	struct fstree *t = NULL;
	struct plan p = { os };
	char err[512];
	int rc;

	rc = classify_open(o->rules, &cls, err, sizeof(err));
	if (rc == 0)
		rc = fstree_open(path, &t);
	if (rc == 0)
		rc = classify_source(cls, fstree_tree(t), fstree_root(t), name, plan_emit, &p);
	fstree_close(t);
	classify_close(cls);
	return rc;
}

int ingest_explain(const struct ingest_opts *o, const char *source, const char *what)
{
	struct classify *cls = NULL;
	struct fstree *t = NULL;
	char *real = realpath(source, NULL), *wreal = NULL, err[512];
	const char *rel = what, *name = o->name;
	int rc;

	if (!real) {
		fprintf(stderr, "defrag-ingest: %s: %s\n", source, strerror(errno));
		return CLI_EXIT_USAGE;
	}
	if (what[0] == '/') {
		size_t rl = strlen(real);

		wreal = realpath(what, NULL);
		rel = wreal ? wreal : what;
		if (strncmp(rel, real, rl) || (rel[rl] && rel[rl] != '/')) {
			fprintf(stderr, "defrag-ingest: %s is not inside %s\n", what, real);
			free(real);
			free(wreal);
			return CLI_EXIT_USAGE;
		}
		rel += rl;
		while (*rel == '/')
			rel++;
	}
	if (!name) {
		name = strrchr(real, '/');
		name = name && name[1] ? name + 1 : "root";
	}
	rc = classify_open(o->rules, &cls, err, sizeof(err));
	if (rc == 0)
		rc = fstree_open(real, &t);
	if (rc == 0)
		rc = classify_explain(cls, fstree_tree(t), fstree_root(t), name,
				      (const uint8_t *)rel, strlen(rel), stdout);
	if (rc < 0)
		fprintf(stderr, "defrag-ingest: --explain %s: %s\n", what,
			rc == -ENOENT ? "no such entry in the source" : dfs_strerror(rc));
	fstree_close(t);
	classify_close(cls);
	free(real);
	free(wreal);
	return rc < 0 ? CLI_EXIT_PARTIAL : CLI_EXIT_OK;
}

/* ---- the run --------------------------------------------------------------------------------- */

static int valid_source_name(const char *n)
{
	size_t len = strlen(n);

	return len && len <= 255 && !strchr(n, '/') && strcmp(n, ".") && strcmp(n, "..");
}

static void print_summary(const struct ingest_opts *o, struct src_summary *sums, int nsum,
			  const struct organize_stats *os, bool organized,
			  const struct failure *fails, size_t nfails, double secs)
{
	uint64_t files = 0, bytes = 0, rd = 0, nraw = 0, nst = 0;
	char a[32], b[32], c[32];

	for (int i = 0; i < nsum; i++) {
		files += sums[i].files;
		bytes += sums[i].bytes;
		rd += sums[i].bytes_read;
		nraw += sums[i].new_raw;
		nst += sums[i].new_stored;
	}
	if (o->json) {
		json_t *root = json_object(), *srcs = json_array(), *fl = json_array();

		json_object_set_new(root, "dry_run", json_boolean(o->dry_run));
		json_object_set_new(root, "files", json_integer((json_int_t)files));
		json_object_set_new(root, "logical_bytes", json_integer((json_int_t)bytes));
		json_object_set_new(root, "bytes_read", json_integer((json_int_t)rd));
		json_object_set_new(root, o->dry_run ? "estimated_unique_bytes" : "new_raw_bytes",
				    json_integer((json_int_t)nraw));
		json_object_set_new(root, "new_stored_bytes", json_integer((json_int_t)nst));
		/* everything read was a duplicate: no finite ratio, null (not 1.0) */
		json_object_set_new(root, "dedup_ratio",
				    nraw ? json_real((double)rd / (double)nraw)
					 : rd ? json_null() : json_real(1.0));
		json_object_set_new(root, "compression_ratio",
				    json_real(nst ? (double)nraw / (double)nst : 1.0));
		json_object_set_new(root, "elapsed_seconds", json_real(secs));
		for (int i = 0; i < nsum; i++) {
			json_t *s = json_object();

			json_object_set_new(s, "name", json_string(sums[i].name));
			json_object_set_new(s, "files", json_integer((json_int_t)sums[i].files));
			json_object_set_new(s, "unchanged_files",
					    json_integer((json_int_t)sums[i].unchanged));
			json_object_set_new(s, "logical_bytes",
					    json_integer((json_int_t)sums[i].bytes));
			json_object_set_new(s, "bytes_read",
					    json_integer((json_int_t)sums[i].bytes_read));
			json_object_set_new(s, "new_stored_bytes",
					    json_integer((json_int_t)sums[i].new_stored));
			json_object_set_new(s, "elapsed_seconds", json_real(sums[i].secs));
			json_object_set_new(s, "mime_calls",
					    json_integer((json_int_t)sums[i].mime_calls));
			json_object_set_new(s, "mime_cpu_seconds", json_real(sums[i].mime_secs));
			json_object_set_new(s, "status", json_integer(sums[i].status));
			json_array_append_new(srcs, s);
		}
		json_object_set_new(root, "sources", srcs);
		if (o->no_organize)
			json_object_set_new(root, "organize_deferred", json_true());
		if (organized) {
			json_object_set_new(root, "categories",
					    cli_categories_json(os->cats, os->ncats));
			json_object_set_new(root, "organize_seconds", json_real(os->seconds));
			json_object_set_new(root, "organize_mime_computed",
					    json_integer((json_int_t)os->mimes));
			json_object_set_new(root, "organize_skipped", json_boolean(os->skipped));
			json_object_set_new(root, "organize_append", json_boolean(os->append));
		}
		for (size_t i = 0; i < nfails; i++) {
			json_t *f = json_object();

			cli_json_set_path(f, "path", fails[i].path, fails[i].len);
			json_object_set_new(f, "error", json_string(fails[i].why));
			json_array_append_new(fl, f);
		}
		json_object_set_new(root, "failures", fl);
		json_dumpf(root, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII);
		fputc('\n', stdout);
		json_decref(root);
		return;
	}
	printf("%s%" PRIu64 " files, %s logical, %s read, %s %s, ",
	       o->dry_run ? "dry run: " : "", files, cli_human(bytes, a, sizeof(a)),
	       cli_human(rd, b, sizeof(b)), cli_human(nraw, c, sizeof(c)),
	       o->dry_run ? "unique (estimate)" : "new unique");
	printf("%s newly stored\n", cli_human(nst, a, sizeof(a)));
	if (!nraw && rd)
		printf("dedup: every byte read was already stored, ");
	else
		printf("dedup %.2fx, ", nraw ? (double)rd / (double)nraw : 1.0);
	printf("compression %.2fx, %.1f s (%.1f MB/s)\n",
	       nst ? (double)nraw / (double)nst : 1.0, secs,
	       secs > 0 ? (double)bytes / secs / 1e6 : 0.0);
	for (int i = 0; i < nsum; i++)
		printf("  source %-20s %10" PRIu64 " files (%" PRIu64 " unchanged)  %s  %s new"
		       "  %.1f s\n", sums[i].name, sums[i].files, sums[i].unchanged,
		       cli_human(sums[i].bytes, a, sizeof(a)),
		       cli_human(sums[i].new_stored, b, sizeof(b)), sums[i].secs);
	if (o->no_organize && !o->dry_run) {
		printf("organized: not updated (--no-organize); the next ingest or "
		       "defrag-reclassify updates it\n");
	} else if (organized && os->skipped) {
		printf("organized: unchanged (no source changed since the last build, same "
		       "rules), %.1f s\n", os->seconds);
	} else if (organized) {
		for (size_t i = 0; i < os->ncats; i++)
			printf("  category %-30s %10" PRIu64 " files  %s\n", os->cats[i].name,
			       os->cats[i].files, cli_human(os->cats[i].bytes, a, sizeof(a)));
		printf("organized%s: %" PRIu64 " entries, %" PRIu64 " merged origins, %" PRIu64
		       " renamed on conflict, %" PRIu64 " units, %.1f s\n",
		       os->append ? " (the new sources only)" : "", os->entries, os->merged,
		       os->conflicts, os->units, os->seconds);
	}
	if (nfails) {
		fprintf(stderr, "%zu item(s) could not be stored:\n", nfails);
		for (size_t i = 0; i < nfails; i++) {
			fputs("  ", stderr);
			cli_print_path(stderr, fails[i].path, fails[i].len);
			fprintf(stderr, ": %s\n", fails[i].why);
		}
	}
}

int ingest_run(const struct ingest_opts *o, char **sources, int nsources)
{
	struct store_open_opts so = { .mode = STORE_WRITER, .create = true,
				      .create_opts = &o->create,
				      .block_cache = 32u << 20 };
	struct organize_stats os = { 0 };
	struct src_summary *sums;
	struct failure *fails = NULL;
	struct store_txn *tx = NULL;
	struct store *st = NULL;
	size_t nfails = 0;
	bool organized = false;
	double t0 = now_s();
	int status = CLI_EXIT_OK, rc, nsum = 0;
	char err[512];

	sums = calloc((size_t)nsources, sizeof(*sums));
	if (!sums)
		return CLI_EXIT_STORE;
	if (!o->dry_run) {
		rc = store_open(o->store_dir, &so, &st);
		if (rc < 0) {
			fprintf(stderr, "defrag-ingest: %s: cannot use the store: %s\n",
				o->store_dir, dfs_strerror(rc));
			free(sums);
			return CLI_EXIT_STORE;
		}
		rc = store_txn_begin(st, &tx);
		if (rc == 0)
			rc = ensure_roots(tx);
		if (rc < 0) {
			status = CLI_EXIT_STORE;
			goto out;
		}
	}
	for (int i = 0; i < nsources; i++) {
		char *real = realpath(sources[i], NULL);
		const char *name = o->name;
		int s;

		if (!real) {
			fprintf(stderr, "defrag-ingest: %s: %s\n", sources[i], strerror(errno));
			status = status > CLI_EXIT_PARTIAL ? status : CLI_EXIT_PARTIAL;
			continue;
		}
		if (!name) {
			const char *slash = strrchr(real, '/');

			name = slash && slash[1] ? slash + 1 : "root";
		}
		if (!valid_source_name(name)) {
			fprintf(stderr, "defrag-ingest: '%s' is not a valid source name\n", name);
			free(real);
			status = CLI_EXIT_USAGE;
			continue;
		}
		s = run_source(o, st, real, name, &tx, &sums[nsum], &fails, &nfails);
		nsum++;
		if (o->dry_run && s != CLI_EXIT_STORE) {
			rc = dry_plan(o, real, name, &os);
			organized = rc == 0;
			if (rc < 0)
				fprintf(stderr, "defrag-ingest: %s: classification failed: %s\n", real,
					dfs_strerror(rc));
		}
		free(real);
		if (s > status)
			status = s;
		if (s == CLI_EXIT_STORE)
			break;
	}
	if (!o->dry_run && status != CLI_EXIT_STORE) {
		rc = store_txn_commit(tx);
		tx = NULL;
		if (rc == 0 && !o->no_organize) {
			/* the checkpoint below flushes the index: the ingest's part is
			 * flushed on RocksDB's thread beside the build's final commit */
			rc = organize_run(st, o->rules, ORG_FLUSH, &os, err, sizeof(err));
			if (rc < 0)
				fprintf(stderr, "defrag-ingest: organizing the tree failed: %s\n",
					err[0] ? err : dfs_strerror(rc));
			organized = rc == 0;
		}
		if (rc == 0)
			rc = store_checkpoint(st);
		if (rc < 0)
			status = CLI_EXIT_STORE;
	}
	print_summary(o, sums, nsum, &os, organized, fails, nfails, now_s() - t0);
out:
	store_txn_abort(tx);
	store_close(st);
	organize_stats_release(&os);
	for (int i = 0; i < nsum; i++)
		free(sums[i].name);
	free(sums);
	for (size_t i = 0; i < nfails; i++) {
		free(fails[i].path);
		free(fails[i].why);
	}
	free(fails);
	return status;
}
