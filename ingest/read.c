/*
 * read.c - the workers: each file read once, in large windows, holes skipped
 * (SEEK_DATA/SEEK_HOLE); every chunk cut (FastCDC), fingerprinted (SHA-256), and, when
 * the store lacks it, compressed and appended; the MIME type taken from the first bytes
 * read when a rule may need it. A big file's chunks are spread over the helpers.
 *
 * Threads and locks: see ingest_int.h. Errors: an item's err/why (the committer reports
 * it); a store failure is the item's err too.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ingest_int.h"
#include "srcfile.h"
#include "store/cdc.h"
#include "store/pack.h"
#include "store/fp.h"

bool ing_dry_sampled(uint64_t key, unsigned shift)
{
	return ((key >> 1) & ((1ull << shift) - 1)) == 0;
}

void ing_dry_halve(struct ingest_dryset *d)
{
	struct u64map m = { 0 };
	uint64_t raw = 0, chunks = 0, wire = 0;

	d->shift++;
	for (size_t i = 0; i < d->ids.cap; i++) {
		uint64_t k = d->ids.k[i], v = d->ids.v[i];

		if (!k || !ing_dry_sampled(k, d->shift))
			continue;
		if (u64map_put(&m, k, v) < 0) {
			d->err = -ENOMEM;
			break;
		}
		if (!(v & DRY_KNOWN)) {
			raw += v & DRY_RAW;
			wire += v >> 32;
			chunks++;
		}
	}
	u64map_release(&d->ids);
	d->ids = m;
	d->raw = raw;
	d->wire = wire;
	d->chunks = chunks;
}

/*
 * A dry run's chunk: counted as new the first time this run sees it, unless the store
 * has it; a new one of the compression sample is compressed with @codec into @cbuf.
 */
static void dry_note(struct ing *g, const struct fp256 *id, const uint8_t *p, size_t n,
		     struct codec *codec, uint8_t *cbuf, size_t cap)
{
	struct ingest_dryset *d = g->o->dry;
	struct store_chunk_loc loc;
	uint64_t k, v, weight;
	unsigned shift;
	bool known = false, added = false, compress;

	memcpy(&k, id->b, sizeof(k));
	k |= 1;
	pthread_mutex_lock(&d->lock);
	shift = d->shift;
	if (!ing_dry_sampled(k, shift) || u64map_get(&d->ids, k, &v)) {
		pthread_mutex_unlock(&d->lock);
		return;
	}
	pthread_mutex_unlock(&d->lock);
	if (d->st)	/* outside the lock: a point read of the index */
		known = store_chunk_locate(d->st, id, &loc) == 0;
	pthread_mutex_lock(&d->lock);
	if (ing_dry_sampled(k, d->shift) && !u64map_get(&d->ids, k, &v)) {
		if (u64map_put(&d->ids, k, known ? DRY_KNOWN : n) < 0) {
			d->err = -ENOMEM;
		} else if (!known) {
			d->raw += n;
			d->chunks++;
			added = true;
		}
		shift = d->shift;
		while (d->ids.n >= d->cap && d->shift < 63)
			ing_dry_halve(d);
	}
	/* every new chunk of the first DRY_COMP_ALL bytes, then one in 8 weighing 8 */
	weight = d->comp_all < DRY_COMP_ALL ? 1 : ((k >> 40) & 7) == 0 ? 8 : 0;
	compress = added && weight;
	if (compress && weight == 1)
		d->comp_all += n;
	pthread_mutex_unlock(&d->lock);
	if (!added)
		return;
	atomic_fetch_add(&g->new_raw, (uint64_t)n << shift);
	if (compress) {
		enum codec_id cid;
		ssize_t sl = codec_compress(codec, p, n, cbuf, cap, &cid);

		if (sl >= 0) {
			pthread_mutex_lock(&d->lock);
			d->comp_raw += (uint64_t)n * weight;
			d->comp_stored += ((uint64_t)sl +
					   store_chunk_table_len((uint32_t)n, (uint32_t)sl, cid)) * weight;
			pthread_mutex_unlock(&d->lock);
		}
	}
}

static void cjob_run(struct ing *g, struct codec *codec, uint8_t *cbuf, size_t cap,
		     struct cjob *j)
{
	enum codec_id cid;
	ssize_t sl;
	int rc;

	fp_sha256(j->p, j->len, &j->id);
	j->rc = 0;
	if (g->o->dry_run) {
		dry_note(g, &j->id, j->p, j->len, codec, cbuf, cap);
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
		atomic_fetch_add(&g->new_stored, (uint64_t)sl + PACK_REC_HDR +
				 store_chunk_table_len(j->len, (uint32_t)sl, cid));
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

void *ing_helper_main(void *arg)
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
bool ing_want_mime(struct worker *w, const struct item *it)
{
	size_t nlen;
	const uint8_t *name = ing_item_name(it, &nlen);
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
	struct src_window sw;
	int rc = 0;

	src_window_init(&sw, w->win, ing_window_cap(&w->g->params->cdc), start, end);
	while (src_window_more(&sw)) {
		ssize_t got = src_window_fill(&sw, fd);
		size_t n;

		if (got < 0)
			return (int)got;
		if (mime_for) {
			note_mime(w, mime_for, w->win, sw.have);
			mime_for = NULL;
		}
		atomic_fetch_add(&w->g->bytes_read, (uint64_t)got);
		atomic_fetch_add(&w->g->bytes_done, (uint64_t)got);
		/* cut every chunk the window holds for sure */
		b->n = 0;
		while ((n = src_window_cut(&sw, cp))) {
			b->jobs[b->n].p = sw.buf + sw.pos - n;
			b->jobs[b->n].len = (uint32_t)n;
			b->n++;
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
	bool mime = ing_want_mime(w, it);
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
		off_t data, hole;

		src_next_data(fd, off, size, &data, &hole);
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
	const uint8_t *name = ing_item_name(it, &nlen);
	const char *cname = (const char *)name;	/* NUL-terminated: the path's end */
	int rc = 0;

	if (!it->cb && store_cb_new(&it->cb) < 0) {
		it->err = -ENOMEM;
		it->why = "out of memory";
		return;
	}
	for (int attempt = 0; attempt <= CHANGE_RETRIES; attempt++) {
		struct stat before, after;
		int fd = src_reopen_file(it->parent->fd, cname, it->sb.st_ino, &before);

		if (fd < 0) {
			rc = fd;
			it->why = rc == -ENOENT ? "vanished before it could be read" :
				  rc == -ESTALE ? "replaced by another file while ingest ran" : NULL;
			break;
		}
		rc = read_file_once(w, it, fd, &before);
		if (rc == 0) {
			src_xattrs_free(it->xattrs, it->nxattrs);
			it->xattrs = NULL;
			it->nxattrs = 0;
			rc = src_read_xattrs(fd, -1, NULL, &it->xattrs, &it->nxattrs);
		}
		if (rc == 0 && fstat(fd, &after) < 0)
			rc = -errno;
		close(fd);
		if (rc == 0 && (after.st_size != before.st_size ||
				!src_same_time(&after.st_mtim, &before.st_mtim) ||
				!src_same_time(&after.st_ctim, &before.st_ctim)))
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

void *ing_worker_main(void *arg)
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
