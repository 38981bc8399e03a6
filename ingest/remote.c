/*
 * remote.c - a source on another machine: `ssh://[USER@]HOST[:PORT]/PATH` or `HOST:PATH`.
 * ingest_source() opens it here instead of a local directory: ssh (or --rsh) runs
 * `defrag-ingest --serve` there (serve.c), the handshake sends the store's chunking and
 * compression, and one thread (the client) turns the remote's stream of entries into the
 * ring's items, in walk order, exactly as the local walker and workers would: the same
 * hard link and incremental checks (answered to the remote, which reads only what is
 * asked), the same MIME decisions (the remote computes the type from the first bytes),
 * and every chunk the store lacks asked for, checked against its SHA-256 id and stored.
 * The committer (ingest.c) applies the items as for a local source.
 *
 * Threads: the client thread; the committer reads items it marks IT_DONE under ring_lock.
 * Errors: the stream's first error stops the run (g->fatal) with a message; nothing is
 * printed.
 *
 * SPDX-License-Identifier: MIT
 */
#include "ingest.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ingest_int.h"
#include "srcfile.h"
#include "store/codec.h"
#include "store/fp.h"
#include "store/pack.h"
#include "wire.h"

#define RSTACK (ING_MAX_DEPTH + 2)

struct ing_remote {
	struct ing *g;
	struct wire_link link;		/* ssh, and the connection through it */
	pthread_t tid;
	bool started;
	int rc;				/* the thread's result */
	char err[640];
	/* the directories above the next entry: stack[d] is the one at depth d */
	struct wdir *stack[RSTACK];
	size_t plen[RSTACK];
	size_t depth;			/* entries in stack */
	bool root_seen;
	struct dfs_buf path;
	/* asked files being sent, oldest first */
	struct item *pend[IN_RING];
	uint64_t pseq[IN_RING];		/* their entries' numbers */
	size_t ph, pt;
	uint64_t nentries;		/* ENTRY frames so far */
	struct dfs_buf answers;		/* flags of files answered, not yet sent */
	/* the file being sent */
	uint64_t sum;			/* its content bytes so far */
	bool inlined;
	struct wire_chunk *chunks;
	size_t nchunks;
	uint32_t *need;			/* indices into chunks of those asked for */
	size_t nneed, needpos;
	struct worker w;		/* MIME decisions (ing_want_mime) */
	struct codec *codec;
	uint8_t *raw;
	uint64_t bytes_read;		/* by the remote */
	uint64_t would;			/* a dry run: the DATA frames not sent */
};

/* ---- the address ------------------------------------------------------------------------ */

bool ingest_is_remote(const char *spec)
{
	const char *colon = strchr(spec, ':'), *slash = strchr(spec, '/');

	if (!strncmp(spec, "ssh://", 6))
		return true;
	/* scp and rsync: a ':' before any '/' */
	return colon && colon != spec && (!slash || colon < slash);
}

/* Splits @spec into "[USER@]HOST", the port (NULL: ssh's) and the path, malloc'd. */
static int parse_spec(const char *spec, char **host, char **port, char **path)
{
	const char *h = spec, *end, *p;

	*host = *port = *path = NULL;
	if (!strncmp(spec, "ssh://", 6)) {
		const char *colon;

		h = spec + 6;
		end = strchr(h, '/');
		if (!end || end == h)
			return -EINVAL;
		p = end;
		colon = memchr(h, ':', (size_t)(end - h));
		if (h[0] == '[') {	/* [IPv6]:port */
			const char *rb = memchr(h, ']', (size_t)(end - h));

			colon = rb && rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
		}
		if (colon) {
			*port = strndup(colon + 1, (size_t)(end - colon - 1));
			end = colon;
		}
	} else {
		end = strchr(h, ':');
		p = end + 1;
	}
	*host = strndup(h, (size_t)(end - h));
	*path = strdup(*p ? p : ".");
	if (!*host || !*path || (spec[0] == 's' && *port && !*port[0]) || !(*host)[0]) {
		free(*host);
		free(*port);
		free(*path);
		return -EINVAL;
	}
	return 0;
}

const char *ingest_remote_base(const char *spec)
{
	const char *p = strchr(spec, ':'), *slash;

	if (!strncmp(spec, "ssh://", 6))
		p = strchr(spec + 6, '/');
	else if (p)
		p++;
	if (!p)
		return NULL;
	slash = strrchr(p, '/');
	if (slash && !slash[1]) {	/* "host:/path/": the last component before it */
		static __thread char buf[NAME_MAX + 1];
		const char *q = slash;

		while (q > p && q[-1] == '/')
			q--;
		slash = NULL;
		for (const char *x = p; x < q; x++)
			if (*x == '/')
				slash = x;
		snprintf(buf, sizeof(buf), "%.*s", (int)(q - (slash ? slash + 1 : p)),
			 slash ? slash + 1 : p);
		return buf[0] ? buf : NULL;
	}
	return slash ? slash + 1 : p[0] ? p : NULL;
}

/* ---- ssh ------------------------------------------------------------------------------------ */

/* Runs "RSH [-p PORT] HOST 'CMD' --serve" with pipes for its stdin and stdout. */
static int spawn(struct wire_link *r, const char *rsh, const char *cmd, const char *host,
		 const char *port, int *to, int *from)
{
	char *words = strdup(rsh && rsh[0] ? rsh : "ssh"), *save = NULL, *w, *remote = NULL;
	const char *argv[64];
	int n = 0, in[2] = { -1, -1 }, out[2] = { -1, -1 }, rc = 0;

	if (!words)
		return -ENOMEM;
	for (w = strtok_r(words, " \t", &save); w && n < 56; w = strtok_r(NULL, " \t", &save))
		argv[n++] = w;
	if (port) {
		argv[n++] = "-p";
		argv[n++] = port;
	}
	argv[n++] = "--";
	argv[n++] = host;
	/* a shell runs it there, as rsync's --rsync-path; the path goes in the handshake */
	if (asprintf(&remote, "%s --serve", cmd) < 0) {
		free(words);
		return -ENOMEM;
	}
	argv[n++] = remote;
	argv[n] = NULL;
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
		rc = -errno;
		goto out;
	}
	r->pid = fork();
	if (r->pid < 0) {
		rc = -errno;
		goto out;
	}
	if (r->pid == 0) {
		dup2(in[0], STDIN_FILENO);
		dup2(out[1], STDOUT_FILENO);
		/* Ctrl-C is the local ingest's to handle: ssh goes when its pipe closes */
		setpgid(0, 0);
		execvp(argv[0], (char *const *)argv);
		dprintf(STDERR_FILENO, "defrag-ingest: cannot run %s: %s\n", argv[0],
			strerror(errno));
		_exit(127);
	}
	*to = in[1];
	*from = out[0];
	in[1] = out[0] = -1;
out:
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0 && !(i == 1 && rc == 0))
			close(in[i]);
		if (out[i] >= 0 && !(i == 0 && rc == 0))
			close(out[i]);
	}
	if (rc == 0) {
		close(in[0]);
		close(out[1]);
	}
	free(remote);
	free(words);
	return rc;
}

static int send_hello(struct wire_link *l, const char *path, const struct wire_link_opts *a)
{
	const struct store_create_opts *p = a->params;
	struct dfs_buf b;
	int rc;

	dfs_buf_init(&b, WIRE_HELLO_MAX);
	wire_begin(&b, WIRE_HELLO);
	dfs_buf_put_bytes(&b, WIRE_MAGIC, strlen(WIRE_MAGIC));
	dfs_buf_put_u32(&b, WIRE_VERSION);
	dfs_buf_put_bytes(&b, DFS_VERSION, strlen(DFS_VERSION));
	dfs_buf_put_bytes(&b, path, strlen(path));
	dfs_buf_put_u32(&b, p->cdc.min_size);
	dfs_buf_put_u32(&b, p->cdc.avg_size);
	dfs_buf_put_u32(&b, p->cdc.max_size);
	dfs_buf_put_u32(&b, p->cdc.norm_level);
	dfs_buf_put_u32(&b, p->cdc.tar_floor);
	dfs_buf_put_u32(&b, (uint32_t)p->zstd_level);
	dfs_buf_put_u32(&b, p->inline_max);
	dfs_buf_put_u32(&b, (a->one_fs ? WIRE_H_ONE_FS : 0) | (a->fetch ? WIRE_H_FETCH : 0));
	dfs_buf_put_varint(&b, a->nexcludes);
	for (size_t i = 0; i < a->nexcludes; i++)
		dfs_buf_put_bytes(&b, a->excludes[i], strlen(a->excludes[i]));
	rc = wire_end(&b, 0);
	if (rc == 0)
		rc = wire_send(&l->c, &b, true);
	dfs_buf_release(&b);
	return rc;
}

const char *wire_stream_error(int rc)
{
	return rc == -EPIPE ? "the connection closed (see ssh's message above, if any)" :
	       rc == -EBADMSG ? "a malformed frame from the remote side" : strerror(-rc);
}

int wire_link_open(struct wire_link *l, const char *spec, const struct wire_link_opts *a,
		   struct stat *rootsb, char *fsid, size_t fsidlen, uint64_t *root_fs_id,
		   char *err, size_t errlen)
{
	const char *cmd = a->remote_cmd ? a->remote_cmd : "defrag-ingest";
	char *host = NULL, *port = NULL, *path = NULL;
	struct wire_welcome wl = { 0 };
	const uint8_t *p;
	size_t n;
	uint8_t t;
	int to = -1, from = -1, rc;

	memset(l, 0, sizeof(*l));
	l->pid = -1;
	err[0] = '\0';
	rc = parse_spec(spec, &host, &port, &path);
	if (rc < 0) {
		snprintf(err, errlen, "%s: not a remote source (ssh://[USER@]HOST[:PORT]/PATH or "
			 "HOST:PATH)", spec);
		return rc;
	}
	rc = spawn(l, a->rsh, cmd, host, port, &to, &from);
	if (rc == 0) {
		rc = wire_conn_init(&l->c, from, to);
		l->conn_ok = true;
	}
	if (rc == 0)
		rc = send_hello(l, path, a);
	if (rc == 0)
		rc = wire_read(&l->c, &t, &p, &n);
	if (rc == 0 && t == WIRE_ERROR) {
		char msg[512];

		if (wire_dec_text(p, n, msg, sizeof(msg)) < 0)
			snprintf(msg, sizeof(msg), "(a malformed message)");
		snprintf(err, errlen, "%s: the remote side: %s", spec, msg);
		rc = -EPROTO;
		goto out;
	}
	if (rc == 0)
		rc = t == WIRE_WELCOME ? wire_dec_welcome(p, n, &wl) : -EBADMSG;
	if (rc == -EPROTONOSUPPORT) {
		snprintf(err, errlen, "%s: protocol version mismatch: the remote defrag-ingest "
			 "(%.*s) speaks protocol %u, this one (%s) protocol %u; install the same "
			 "defragfs version on both machines", spec,
			 (int)(wl.pkg_len > 40 ? 40 : wl.pkg_len), wl.pkg ? (char *)wl.pkg : "?",
			 wl.version, DFS_VERSION, WIRE_VERSION);
		goto out;
	}
	if (rc < 0) {
		snprintf(err, errlen, "%s: cannot start the remote side (%s --serve on %s): %s",
			 spec, cmd, host, wire_stream_error(rc));
		goto out;
	}
	*rootsb = wl.sb;
	snprintf(fsid, fsidlen, "%.*s", (int)wl.fsid_len, (const char *)wl.fsid);
	*root_fs_id = wl.fs_id | 1;
	/* a DATA frame is one compressed chunk, an ENTRY frame one directory's listing */
	l->c.max_payload = codec_bound(a->params->cdc.max_size) + 64;
	if (l->c.max_payload < WIRE_ENTRY_MAX)
		l->c.max_payload = WIRE_ENTRY_MAX;
out:
	if (rc < 0 && !err[0])
		snprintf(err, errlen, "%s: %s", spec, strerror(-rc));
	free(host);
	free(port);
	free(path);
	return rc;
}

void wire_link_close(struct wire_link *l, bool kill_it)
{
	int status;

	if (l->conn_ok && l->c.out >= 0) {
		close(l->c.out);
		l->c.out = -1;
	}
	if (l->pid > 0) {
		if (kill_it)
			kill(l->pid, SIGTERM);
		while (waitpid(l->pid, &status, 0) < 0 && errno == EINTR)
			;
		l->pid = -1;
	}
	if (l->conn_ok) {
		close(l->c.in);
		wire_conn_release(&l->c);
		l->conn_ok = false;
	}
}

int ing_remote_open(struct ing *g, const char *spec, struct stat *rootsb, char *fsid,
		    size_t fsidlen, uint64_t *root_fs_id, struct ing_remote **out, char *err,
		    size_t errlen)
{
	struct ing_remote *r = calloc(1, sizeof(*r));
	struct wire_link_opts a = {
		.rsh = g->o->rsh, .remote_cmd = g->o->remote_cmd, .params = g->params,
		.one_fs = g->o->one_fs, .excludes = g->o->excludes,
		.nexcludes = (size_t)g->o->nexcludes,
	};
	int rc;

	*out = NULL;
	if (!r)
		return -ENOMEM;
	r->g = g;
	dfs_buf_init(&r->path, (size_t)(ING_MAX_DEPTH + 1) * (NAME_MAX + 1));
	dfs_buf_init(&r->answers, 1u << 20);
	*out = r;
	rc = wire_link_open(&r->link, spec, &a, rootsb, fsid, fsidlen, root_fs_id, err, errlen);
	if (rc < 0)
		return rc;
	r->w.g = g;
	if (g->cls && mime_new(&r->w.mime) < 0)
		r->w.mime = NULL;
	rc = codec_new(g->params->zstd_level, &r->codec);
	r->raw = malloc(g->params->cdc.max_size);
	if (rc == 0 && !r->raw)
		rc = -ENOMEM;
	if (rc < 0)
		snprintf(err, errlen, "%s", strerror(-rc));
	return rc;
}

/* ---- the client thread ---------------------------------------------------------------------- */

static int fail(struct ing_remote *r, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct ing_remote *r, int rc, const char *fmt, ...)
{
	va_list ap;

	if (!r->err[0]) {
		va_start(ap, fmt);
		vsnprintf(r->err, sizeof(r->err), fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* Sends the answers collected, as one frame. */
static int send_answers(struct ing_remote *r)
{
	struct dfs_buf b;
	int rc;

	if (!r->answers.len)
		return 0;
	dfs_buf_init(&b, (1u << 20) + 16);
	wire_begin(&b, WIRE_ANSWER);
	dfs_buf_put_bytes(&b, r->answers.data, r->answers.len);
	rc = wire_end(&b, 0);
	if (rc == 0)
		rc = wire_send(&r->link.c, &b, false);
	dfs_buf_release(&b);
	dfs_buf_clear(&r->answers);
	return rc;
}

/* The index in g->fs of the remote's st_dev @dev (announced by an FS frame), or -1. */
static int fs_of(struct ing *g, dev_t dev)
{
	for (unsigned k = 0; k < g->nfs; k++)
		if (g->fs[k].dev == dev)
			return (int)k;
	return -1;
}

/* FS: a filesystem of the remote (this run's st_dev there, its identity). */
static int take_fs(struct ing_remote *r, const uint8_t *p, size_t n)
{
	struct ing *g = r->g;
	uint64_t dev, id;
	unsigned k;
	int rc = wire_dec_fs(p, n, &dev, &id);

	if (rc < 0)
		return rc;
	id |= 1;
	if (fs_of(g, (dev_t)dev) >= 0)
		return 0;
	for (k = 0; k < g->nfs; k++)	/* the root's, or met in an earlier run */
		if (g->fs[k].id == id && !g->fs[k].dev)
			break;
	if (k == g->nfs) {
		if (g->nfs == ING_MAX_FS || g->source_id >= (1u << 23))
			return fail(r, -EMLINK, "more than 255 filesystems below the source");
		k = g->nfs++;
		g->fs[k].id = id;
	}
	g->fs[k].dev = (dev_t)dev;
	return 0;
}

static void stack_pop(struct ing_remote *r, size_t depth)
{
	while (r->depth > depth) {
		r->depth--;
		ing_wdir_put(r->stack[r->depth]);
		r->stack[r->depth] = NULL;
	}
}

/* A regular file: linked, unchanged, or to be read (its answer's flags). */
static uint8_t decide(struct ing_remote *r, struct item *it)
{
	struct ing *g = r->g;
	uint8_t flags = WIRE_A_READ;

	if (it->sb.st_nlink > 1) {
		int seen = ing_hl_seen(g, it->fs, (uint64_t)it->sb.st_ino);

		if (seen < 0) {
			it->err = seen;
			it->why = "cannot remember a hard link";
			return 0;
		}
		it->link_only = seen == 1;
		if (it->link_only)
			return 0;
	}
	if (ing_incremental_hit(g, it)) {
		it->unchanged = true;
		atomic_fetch_add(&g->bytes_done, (uint64_t)it->sb.st_size);
		return 0;
	}
	if (ing_want_mime(&r->w, it))
		flags |= WIRE_A_MIME | (r->w.mime_exact ? WIRE_A_EXACT : 0);
	return flags;
}

static int take_entry(struct ing_remote *r, const uint8_t *p, size_t n)
{
	struct ing *g = r->g;
	struct wire_entry e;
	struct item *it;
	size_t pl;
	bool pended = false;
	int rc = wire_dec_entry(p, n, &e), fs;

	if (rc < 0)
		return rc;
	/* the remote keeps within WIRE_AHEAD entries of the oldest file not sent: further
	 * ahead, this thread could wait on a full ring for the committer, which waits for
	 * that file (a stream that would hang the run is refused instead) */
	if (r->ph != r->pt && r->nentries - r->pseq[r->ph % IN_RING] >= WIRE_AHEAD) {
		src_xattrs_free(e.xattrs, e.nxattrs);
		return fail(r, -EBADMSG, "protocol error: entries too far ahead of the files");
	}
	r->nentries++;
	if (e.depth == 0 ? r->root_seen : (!r->root_seen || e.depth > r->depth) ||
	    e.depth >= RSTACK) {
		src_xattrs_free(e.xattrs, e.nxattrs);
		return fail(r, -EBADMSG, "protocol error: an entry out of the walk's order");
	}
	stack_pop(r, e.depth);
	pl = e.depth ? r->plen[e.depth - 1] : 0;
	it = ing_item_new(r->path.data, pl, e.name, e.name_len);
	fs = fs_of(g, e.sb.st_dev);
	if (!it || fs < 0) {
		src_xattrs_free(e.xattrs, e.nxattrs);
		ing_item_free(it);
		return it ? fail(r, -EBADMSG, "protocol error: an entry of an unannounced "
				 "filesystem") : -ENOMEM;
	}
	r->root_seen = true;
	it->sb = e.sb;
	it->fs = (uint16_t)fs;
	it->parent = e.depth ? ing_wdir_get(r->stack[e.depth - 1]) : NULL;
	it->xattrs = e.xattrs;
	it->nxattrs = e.nxattrs;
	if (e.err) {
		it->err = -(int)e.err;
		it->why = wire_why_text(e.why);
	}
	if (e.target_len || S_ISLNK(e.sb.st_mode)) {
		it->target.p = malloc(e.target_len + 1);
		if (!it->target.p) {
			ing_item_free(it);
			return -ENOMEM;
		}
		memcpy(it->target.p, e.target, e.target_len);
		it->target.p[e.target_len] = '\0';
		it->target.len = e.target_len;
	}
	if (S_ISDIR(e.sb.st_mode) && !(e.err && e.why == WHY_OPENDIR)) {
		struct wdir *self = calloc(1, sizeof(*self));

		it->names = malloc(e.names_len ? e.names_len : 1);
		if (!self || !it->names) {
			free(self);
			ing_item_free(it);
			return -ENOMEM;
		}
		memcpy(it->names, e.names, e.names_len);
		it->names_len = e.names_len;
		it->listing_ok = e.flags & WIRE_E_LISTED;
		self->fd = -1;
		self->fs = it->fs;
		atomic_init(&self->refs, 1);
		it->self = ing_wdir_get(self);
		r->stack[r->depth] = self;
		/* its path, for its entries */
		r->path.len = pl;
		if (pl)
			dfs_buf_put_u8(&r->path, '/');
		dfs_buf_append(&r->path, e.name, e.name_len);
		if (r->path.err) {
			ing_item_free(it);
			return r->path.err;
		}
		r->plen[r->depth] = r->path.len;
		r->depth++;
	}
	if (e.flags & WIRE_E_ASK) {
		uint8_t a = decide(r, it);

		if (a) {
			if (r->pt - r->ph >= IN_RING || store_cb_new(&it->cb) < 0) {
				ing_item_free(it);
				return r->pt - r->ph >= IN_RING ?
				       fail(r, -EBADMSG, "protocol error: too many files ahead") :
				       -ENOMEM;
			}
			it->is_file_work = true;
			it->state = IT_BUSY;	/* this thread's, never a worker's */
			r->pseq[r->pt % IN_RING] = r->nentries - 1;
			r->pend[r->pt++ % IN_RING] = it;
			pended = true;
		}
		dfs_buf_put_u8(&r->answers, a);
		if (r->answers.err)
			return r->answers.err;
	} else if (S_ISREG(e.sb.st_mode) && !e.err) {
		ing_item_free(it);
		return fail(r, -EBADMSG, "protocol error: a file not asked about");
	}
	if (!ing_ring_push(g, it) && pended)
		r->pt--;	/* stopping: the item is freed, and its place in pend goes */
	return 0;
}

/* The file being sent (the oldest asked), or NULL (a protocol error then). */
static struct item *cur_file(struct ing_remote *r)
{
	if (r->ph == r->pt) {
		fail(r, -EBADMSG, "protocol error: content for no file");
		return NULL;
	}
	return r->pend[r->ph % IN_RING];
}

/* Marks the file being sent done, for the committer. */
static void file_done(struct ing_remote *r, struct item *it)
{
	struct ing *g = r->g;

	r->ph++;
	r->sum = 0;
	r->inlined = false;
	pthread_mutex_lock(&g->ring_lock);
	it->state = IT_DONE;
	pthread_cond_broadcast(&g->ring_cond);
	pthread_mutex_unlock(&g->ring_lock);
}

/*
 * A dry run's chunk: its compressed size is asked for (SIZE) when it is in the sample
 * (ing_dry_sampled: one distinct id in 2^shift, so memory stays under the set's cap for
 * any drive) and neither the store nor the run has it. An id the store has is kept as
 * known, as the local dry run keeps it (one index lookup per distinct id).
 */
static bool dry_want(struct ing *g, const struct fp256 *id)
{
	struct ingest_dryset *d = g->o->dry;
	uint64_t k, v;
	bool skip;

	memcpy(&k, id->b, sizeof(k));
	k |= 1;
	pthread_mutex_lock(&d->lock);
	skip = !ing_dry_sampled(k, d->shift) || u64map_get(&d->ids, k, &v);
	pthread_mutex_unlock(&d->lock);
	if (skip)
		return false;
	if (!d->st || !store_has_chunk(d->st, id))
		return true;
	pthread_mutex_lock(&d->lock);
	if (ing_dry_sampled(k, d->shift) && !u64map_get(&d->ids, k, &v)) {
		if (u64map_put(&d->ids, k, DRY_KNOWN) < 0)
			d->err = -ENOMEM;
		while (d->ids.n >= d->cap && d->shift < 63)
			ing_dry_halve(d);
	}
	pthread_mutex_unlock(&d->lock);
	return false;
}

static int take_chunks(struct ing_remote *r, struct item *it, const uint8_t *p, size_t n)
{
	struct ing *g = r->g;
	struct u64set asked = { 0 };
	struct dfs_buf b;
	uint8_t *flags;
	int rc;

	if (r->nneed != r->needpos || r->inlined)
		return fail(r, -EBADMSG, "protocol error: chunks out of order");
	free(r->chunks);
	r->chunks = NULL;
	rc = wire_dec_chunks(p, n, g->params->cdc.max_size, &r->chunks, &r->nchunks);
	if (rc < 0)
		return rc;
	free(r->need);
	r->need = malloc(r->nchunks * sizeof(*r->need));
	flags = calloc(r->nchunks, 1);
	r->nneed = r->needpos = 0;
	if (!r->need || !flags) {
		free(flags);
		return -ENOMEM;
	}
	for (size_t i = 0; i < r->nchunks && rc == 0; i++) {
		const struct wire_chunk *c = &r->chunks[i];
		bool want;

		if (r->sum + c->len < r->sum)
			rc = -EBADMSG;
		r->sum += c->len;
		rc = rc ? rc : store_cb_add_chunk(it->cb, &c->id, c->len);
		want = g->o->dry_run ? dry_want(g, &c->id) : !store_has_chunk(g->st, &c->id);
		/* once per frame: an id met earlier in it is asked for there (a set of the
		 * ids' first 8 bytes; the exact check only when it says "met") */
		if (want) {
			uint64_t k;

			memcpy(&k, c->id.b, sizeof(k));
			k |= 1;
			if (u64set_has(&asked, k)) {
				for (size_t j = 0; want && j < r->nneed; j++)
					if (fp_equal(&r->chunks[r->need[j]].id, &c->id))
						want = false;
			} else if (u64set_add(&asked, k) < 0) {
				rc = -ENOMEM;
			}
		}
		if (want) {
			flags[i] = g->o->dry_run ? WIRE_N_SIZE : WIRE_N_DATA;
			r->need[r->nneed++] = (uint32_t)i;
		}
	}
	u64set_release(&asked);
	dfs_buf_init(&b, r->nchunks + 64);
	wire_begin(&b, WIRE_NEED);
	dfs_buf_put_bytes(&b, flags, r->nchunks);
	if (rc == 0)
		rc = wire_end(&b, 0);
	if (rc == 0)
		rc = wire_send(&r->link.c, &b, false);
	dfs_buf_release(&b);
	free(flags);
	return rc;
}

/* The next chunk asked for: DATA (checked against its id, then stored) or SIZE (dry run). */
static int take_data(struct ing_remote *r, struct item *it, uint8_t t, const uint8_t *p,
		     size_t n)
{
	struct ing *g = r->g;
	const struct wire_chunk *c;
	const uint8_t *bytes;
	size_t blen;
	uint32_t raw, stored;
	uint8_t codec;
	struct fp256 got;
	int rc;

	if (r->needpos == r->nneed || (t == WIRE_DATA) != !g->o->dry_run)
		return fail(r, -EBADMSG, "protocol error: a chunk not asked for");
	c = &r->chunks[r->need[r->needpos++]];
	if (t == WIRE_SIZE) {
		struct ingest_dryset *d = g->o->dry;
		uint64_t k, v, frame;
		unsigned shift;
		bool added = false;

		rc = wire_dec_size(p, n, &raw, &stored);
		if (rc < 0 || raw != c->len)
			return rc < 0 ? rc : fail(r, -EBADMSG, "protocol error: a chunk's size");
		/* the DATA frame it stands for: header, codec, raw length, a byte string */
		frame = WIRE_HDR + 1 + 4 + (stored < 128 ? 1 : stored < 16384 ? 2 : 3) + stored;
		memcpy(&k, c->id.b, sizeof(k));
		k |= 1;
		pthread_mutex_lock(&d->lock);
		shift = d->shift;
		/* still in the sample (it may have halved since the NEED) and not met since */
		if (ing_dry_sampled(k, shift) && !u64map_get(&d->ids, k, &v)) {
			if (u64map_put(&d->ids, k, raw | frame << 32) < 0) {
				d->err = -ENOMEM;
			} else {
				d->raw += raw;
				d->chunks++;
				d->wire += frame;
				d->comp_raw += raw;
				d->comp_stored += stored + store_chunk_table_len(raw, stored, CODEC_RAW);
				added = true;
			}
			while (d->ids.n >= d->cap && d->shift < 63)
				ing_dry_halve(d);
		}
		pthread_mutex_unlock(&d->lock);
		if (!added)
			return 0;
		/* each distinct chunk counts once, at its first meeting, weighed by the
		 * inverse of the chance it had to be in the sample then (the size alone
		 * says the codec here: a chunk no smaller than its raw bytes goes raw) */
		atomic_fetch_add(&g->new_raw, (uint64_t)raw << shift);
		atomic_fetch_add(&g->new_stored, ((uint64_t)stored + PACK_REC_HDR +
						  store_chunk_table_len(raw, stored, CODEC_RAW))
						 << shift);
		r->would += frame << shift;
		return 0;
	}
	rc = wire_dec_data(p, n, &codec, &raw, &bytes, &blen);
	if (rc < 0)
		return rc;
	if (raw != c->len)
		return fail(r, -EBADMSG, "protocol error: a chunk of the wrong length");
	rc = codec_decompress(r->codec, (enum codec_id)codec, bytes, blen, r->raw, raw);
	if (rc == 0) {
		fp_sha256(r->raw, raw, &got);
		if (!fp_equal(&got, &c->id))
			rc = -EBADMSG;
	}
	if (rc < 0)
		return fail(r, -EBADMSG, "a chunk of %.*s from the remote side does not match "
			    "its id (%s): nothing of it was stored", (int)it->path_len,
			    (const char *)it->path, rc == -EBADMSG ? "damaged" : strerror(-rc));
	rc = store_put_chunk(g->st, &c->id, raw, bytes, (uint32_t)blen, (enum codec_id)codec);
	if (rc == 1) {
		atomic_fetch_add(&g->new_raw, raw);
		atomic_fetch_add(&g->new_stored, (uint64_t)blen + PACK_REC_HDR +
				 store_chunk_table_len(raw, (uint32_t)blen, (enum codec_id)codec));
		rc = 0;
	}
	return rc;
}

static int take_fend(struct ing_remote *r, struct item *it, const uint8_t *p, size_t n)
{
	struct ing *g = r->g;
	struct wire_fend f;
	int rc;

	if (r->nneed != r->needpos)
		return fail(r, -EBADMSG, "protocol error: a file ended before its chunks");
	rc = wire_dec_fend(p, n, &f);
	if (rc < 0)
		return rc;
	r->bytes_read += f.bytes_read;
	atomic_fetch_add(&g->bytes_read, f.bytes_read);
	if (f.err) {
		it->err = -(int)f.err;
		it->why = wire_why_text(f.why);
	} else if (f.sb.st_ino != it->sb.st_ino || r->sum != (uint64_t)f.sb.st_size) {
		src_xattrs_free(f.xattrs, f.nxattrs);
		return fail(r, -EBADMSG, "protocol error: the content sent for %.*s is not its "
			    "size", (int)it->path_len, (const char *)it->path);
	} else {
		it->sb = f.sb;
		src_xattrs_free(it->xattrs, it->nxattrs);
		it->xattrs = f.xattrs;
		it->nxattrs = f.nxattrs;
		f.xattrs = NULL;
		f.nxattrs = 0;
		if (f.mime_len && !(it->mime = strndup((const char *)f.mime, f.mime_len))) {
			src_xattrs_free(f.xattrs, f.nxattrs);
			return -ENOMEM;
		}
		atomic_fetch_add(&g->bytes_done, (uint64_t)f.sb.st_size);
	}
	src_xattrs_free(f.xattrs, f.nxattrs);
	file_done(r, it);
	return 0;
}

/* A frame about the file being sent. */
static int take_content(struct ing_remote *r, uint8_t t, const uint8_t *p, size_t n)
{
	struct item *it = cur_file(r);
	const uint8_t *b;
	size_t bl;
	uint64_t v;
	int rc;

	if (!it)
		return -EBADMSG;
	if (t != WIRE_DATA && t != WIRE_SIZE && t != WIRE_FEND && r->nneed != r->needpos)
		return fail(r, -EBADMSG, "protocol error: a frame among a window's chunks");
	switch (t) {
	case WIRE_RESET:
		if (n)
			return -EBADMSG;
		store_cb_reset(it->cb);
		r->sum = 0;
		r->inlined = false;
		return 0;
	case WIRE_HOLE:
		rc = wire_dec_u64(p, n, &v);
		if (rc == 0 && (!v || r->inlined || r->sum + v < r->sum || v > INT64_MAX))
			rc = -EBADMSG;
		if (rc == 0)
			rc = store_cb_add_hole(it->cb, v);
		r->sum += v;
		return rc;
	case WIRE_INLINE: {
		uint32_t raw;
		uint8_t codec;

		rc = wire_dec_inline(p, n, &codec, &raw, &b, &bl);
		if (rc == 0 && (r->sum || r->inlined || raw > r->g->params->inline_max))
			rc = -EBADMSG;
		if (rc == 0 && raw)
			rc = codec_decompress(r->codec, (enum codec_id)codec, b, bl, r->raw, raw);
		if (rc == 0)
			rc = store_cb_set_inline(it->cb, r->raw, raw);
		r->inlined = true;
		r->sum = raw;
		return rc == -EPROTONOSUPPORT ? -EBADMSG : rc;
	}
	case WIRE_CHUNKS:
		return take_chunks(r, it, p, n);
	case WIRE_DATA:
	case WIRE_SIZE:
		return take_data(r, it, t, p, n);
	default:
		return take_fend(r, it, p, n);
	}
}

static int client(struct ing_remote *r)
{
	struct ing *g = r->g;
	int rc = 0;

	while (rc == 0 && !g->stop) {
		const uint8_t *p;
		size_t n;
		uint8_t t;

		rc = send_answers(r);
		if (rc == 0)
			rc = wire_read(&r->link.c, &t, &p, &n);
		if (rc < 0)
			break;
		switch (t) {
		case WIRE_FS:
			rc = take_fs(r, p, n);
			break;
		case WIRE_ENTRY:
			rc = take_entry(r, p, n);
			break;
		case WIRE_FAIL: {
			const uint8_t *path;
			size_t pl;
			char why[300];

			rc = wire_dec_fail(p, n, &path, &pl, why, sizeof(why));
			if (rc == 0)
				ing_add_failure(g, path, pl, "%s", why);
			break;
		}
		case WIRE_SKIPPED: {
			const uint8_t *path;
			size_t pl;
			struct ingest_failure *s;

			rc = wire_dec_bytes(p, n, &path, &pl);
			s = rc == 0 ? realloc(g->skipped, (g->nskipped + 1) * sizeof(*s)) : NULL;
			if (rc == 0 && !s)
				rc = -ENOMEM;
			if (rc == 0) {
				g->skipped = s;
				s[g->nskipped].path = malloc(pl + 1);
				if (!s[g->nskipped].path)
					return -ENOMEM;
				memcpy(s[g->nskipped].path, path, pl);
				s[g->nskipped].path[pl] = '\0';
				s[g->nskipped].len = pl;
				s[g->nskipped].why = NULL;
				g->nskipped++;
			}
			break;
		}
		case WIRE_ERROR: {
			char msg[512];

			if (wire_dec_text(p, n, msg, sizeof(msg)) < 0)
				snprintf(msg, sizeof(msg), "(a malformed message)");
			return fail(r, -EPROTO, "the remote side: %s", msg);
		}
		case WIRE_DONE:
			if (n || r->ph != r->pt || !r->root_seen)
				return fail(r, -EBADMSG, "protocol error: the walk ended early");
			return 0;
		case WIRE_RESET: case WIRE_HOLE: case WIRE_INLINE: case WIRE_CHUNKS:
		case WIRE_DATA: case WIRE_SIZE: case WIRE_FEND:
			rc = take_content(r, t, p, n);
			break;
		default:
			rc = fail(r, -EBADMSG, "protocol error: frame type %u from the remote", t);
		}
	}
	if (g->stop && rc == 0)
		rc = -EINTR;
	return rc;
}

static void *client_main(void *arg)
{
	struct ing_remote *r = arg;
	struct ing *g = r->g;

	r->rc = client(r);
	if (g->stop)	/* stopped here (an interrupt, a store failure): not the stream */
		r->rc = -EINTR;
	if (r->rc < 0 && r->rc != -EINTR) {
		fail(r, r->rc, "%s", wire_stream_error(r->rc));
		if (!g->fatal)
			g->fatal = r->rc;
	}
	/* the files never finished fail: the run stops (g->fatal), nothing of them is used */
	while (r->ph != r->pt) {
		struct item *it = r->pend[r->ph % IN_RING];

		it->err = r->rc < 0 ? r->rc : -EPIPE;
		it->why = "the remote side stopped";
		file_done(r, it);
	}
	stack_pop(r, 0);
	pthread_mutex_lock(&g->ring_lock);
	g->walk_done = true;
	pthread_cond_broadcast(&g->ring_cond);
	pthread_mutex_unlock(&g->ring_lock);
	return NULL;
}

int ing_remote_start(struct ing_remote *r)
{
	if (pthread_create(&r->tid, NULL, client_main, r) != 0)
		return -EAGAIN;
	r->started = true;
	return 0;
}

int ing_remote_join(struct ing_remote *r, char *err, size_t errlen)
{
	if (!r->started)
		return 0;
	/* a stop (interrupt, a store failure) while the thread waits for the remote: ssh
	 * is ended, so the thread's reads see the end of the stream and its writes EPIPE;
	 * the connection itself is released only after the join (ing_remote_close) */
	if ((r->g->stop || r->g->fatal) && r->link.pid > 0)
		kill(r->link.pid, SIGTERM);
	pthread_join(r->tid, NULL);
	r->started = false;
	if (r->rc < 0 && r->rc != -EINTR)
		snprintf(err, errlen, "%s", r->err);
	return r->rc == -EINTR ? 0 : r->rc;
}

void ing_remote_counts(const struct ing_remote *r, uint64_t *received, uint64_t *would)
{
	*received = r ? atomic_load(&r->link.c.bytes_in) : 0;
	*would = r ? *received + r->would : 0;
}

void ing_remote_close(struct ing_remote *r)
{
	if (!r)
		return;
	wire_link_close(&r->link, false);
	stack_pop(r, 0);
	dfs_buf_release(&r->path);
	dfs_buf_release(&r->answers);
	free(r->chunks);
	free(r->need);
	mime_free(r->w.mime);
	codec_free(r->codec);
	free(r->raw);
	free(r);
}
