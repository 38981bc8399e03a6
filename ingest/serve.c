/*
 * serve.c - ingest_serve(): the remote side of a remote source (`defrag-ingest --serve`,
 * started by the local defrag-ingest through ssh). It walks the tree named in the
 * handshake as the local walker does (sorted listings, excludes, --one-file-system,
 * defragfs mounts skipped), sends each entry's metadata, and for each regular file the
 * local side asks for, reads it once, cuts it with the store's chunking, sends the chunk
 * ids and then the bytes of the chunks the local side lacks, compressed at the store's
 * level. The protocol: wire.h and docs/ARCHITECTURE.md ("Remote sources").
 *
 * Threads: the walker (sends entries, at most WIRE_AHEAD past the oldest file not yet
 * sent) and the caller's thread (reads answers, sends files); files_lock protects the
 * queue of asked files. Errors: -errno and a message; nothing is printed.
 *
 * SPDX-License-Identifier: MIT
 */
#include "ingest.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "classify/mime.h"
#include "exclude.h"
#include "ingest_int.h"
#include "srcfile.h"
#include "store/codec.h"
#include "wire.h"

struct sdir {
	int fd;
	atomic_int refs;
};

static void sdir_put(struct sdir *d)
{
	if (d && atomic_fetch_sub(&d->refs, 1) == 1) {
		close(d->fd);
		free(d);
	}
}

/* A regular file sent as an entry, waiting for its answer and then to be sent. */
struct sfile {
	struct sdir *dir;	/* one reference */
	char *name;
	struct stat sb;
	uint64_t seq;		/* its entry's number */
	int answer;		/* -1: not yet */
	struct sfile *next;
};

struct serve {
	struct wire_conn c;
	struct wire_hello h;
	const char **excl;
	int rootfd;
	struct stat rootsb;
	struct ing *g;		/* skip_devs only (ing_collect_skip_devs) */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct sfile *head, *tail, *unanswered;
	uint64_t seq;		/* entries sent */
	bool walk_done;
	bool stop;
	int fatal;
	dev_t devs[ING_MAX_FS];
	unsigned ndevs;
	/* the sender */
	struct codec *codec;
	struct mime *mime;
	uint8_t *win, *cbuf;
	size_t cbuf_cap;
	struct cdc_params cdc;
	char err[512];
};

static int send_error(struct wire_conn *c, const char *msg)
{
	struct dfs_buf b;
	int rc;

	dfs_buf_init(&b, 1u << 16);
	wire_begin(&b, WIRE_ERROR);
	dfs_buf_put_bytes(&b, msg, strlen(msg));
	rc = wire_end(&b, 0);
	if (rc == 0)
		rc = wire_send(c, &b, true);
	dfs_buf_release(&b);
	return rc;
}

/* ---- the walker ---------------------------------------------------------------------------- */

/* Waits until the entry about to be sent is at most WIRE_AHEAD past the oldest file not
 * yet sent. False: stop. */
static bool ahead_wait(struct serve *s)
{
	bool flushed = false;

	pthread_mutex_lock(&s->lock);
	while (!s->stop && s->head && s->seq - s->head->seq >= WIRE_AHEAD) {
		if (!flushed) {
			pthread_mutex_unlock(&s->lock);
			wire_flush(&s->c);
			flushed = true;
			pthread_mutex_lock(&s->lock);
			continue;
		}
		pthread_cond_wait(&s->cond, &s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return !s->stop;
}

static int send_frame(struct serve *s, struct dfs_buf *b)
{
	int rc = wire_end(b, 0);

	if (rc == 0)
		rc = wire_send(&s->c, b, false);
	dfs_buf_clear(b);
	return rc;
}

static int send_fail(struct serve *s, struct dfs_buf *b, const char *path, const char *fmt,
		     int err)
{
	char why[300];

	snprintf(why, sizeof(why), fmt, strerror(err));
	wire_begin(b, WIRE_FAIL);
	dfs_buf_put_bytes(b, path, strlen(path));
	dfs_buf_put_bytes(b, why, strlen(why));
	return send_frame(s, b);
}

/* A filesystem met for the first time: its identity goes before its first entry. */
static int note_dev(struct serve *s, struct dfs_buf *b, int dirfd, const char *name,
		    const struct stat *sb)
{
	uint64_t id;
	int fd;

	for (unsigned i = 0; i < s->ndevs; i++)
		if (s->devs[i] == sb->st_dev)
			return 0;
	if (s->ndevs == ING_MAX_FS)
		return 0;	/* the local side refuses entries of it */
	fd = name ? openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC) : dup(dirfd);
	if (fd < 0)
		return -errno;
	id = ing_fs_id(fd, sb);
	close(fd);
	s->devs[s->ndevs++] = sb->st_dev;
	wire_begin(b, WIRE_FS);
	dfs_buf_put_u64(b, (uint64_t)sb->st_dev);
	dfs_buf_put_u64(b, id);
	return send_frame(s, b);
}

struct sframe {
	struct sdir *dir;
	struct src_listing names;
	size_t next;
	size_t plen;
};

/* Sends entry @name (NULL: the root) of @dirfd; a directory to walk is returned open. */
static int send_entry(struct serve *s, struct dfs_buf *b, struct sdir *parent, const char *name,
		      const char *path, uint32_t depth, int *dfd)
{
	struct store_xattr *x = NULL;
	struct src_listing l = { 0 };
	char target[PATH_MAX + 1];
	size_t nx = 0, tl = 0;
	struct stat sb;
	uint32_t err = 0;
	uint8_t why = WHY_NONE, flags = 0;
	int rc, fd = -1;

	*dfd = -1;
	if (name) {
		if (strlen(name) > NAME_MAX)
			return send_fail(s, b, path, "a name longer than 255 bytes: not stored%s",
					 0);
		if (fstatat(parent->fd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
			return errno == ENOENT ? 0 : send_fail(s, b, path, "cannot stat: %s",
							       errno);
		if (s->h.nexcl && excl_match(s->excl, s->h.nexcl, path, name, S_ISDIR(sb.st_mode)))
			return 0;
		if (S_ISDIR(sb.st_mode)) {
			for (size_t i = 0; i < s->g->nskip_devs; i++)
				if (sb.st_dev == s->g->skip_devs[i])
					return 0;	/* a defragfs mount */
			if ((s->h.flags & WIRE_H_ONE_FS) && sb.st_dev != s->rootsb.st_dev) {
				wire_begin(b, WIRE_SKIPPED);
				dfs_buf_put_bytes(b, path, strlen(path));
				return send_frame(s, b);
			}
			if (depth > ING_MAX_DEPTH)
				return send_fail(s, b, path, "a directory deeper than the deepest "
						 "level stored: not stored%s", 0);
		}
		rc = note_dev(s, b, parent->fd, name, &sb);
		if (rc < 0)
			return send_fail(s, b, path, "%s", -rc);
	} else {
		sb = s->rootsb;
		rc = note_dev(s, b, s->rootfd, NULL, &sb);
		if (rc < 0)
			return rc;
	}
	if (S_ISDIR(sb.st_mode)) {
		fd = name ? src_open_dir(parent->fd, name) : dup(s->rootfd);
		if (fd < 0) {
			err = (uint32_t)(name ? -fd : errno);
			why = WHY_OPENDIR;
		} else {
			rc = src_read_xattrs(fd, -1, NULL, &x, &nx);
			if (rc < 0) {
				err = (uint32_t)-rc;
				why = WHY_XATTRS;
			}
			rc = src_list_dir(fd, &l);
			if (rc < 0 || l.err)
				send_fail(s, b, path[0] ? path : ".", "cannot list directory: %s",
					  rc < 0 ? -rc : -l.err);
			if (rc == 0 && !l.err && l.len > WIRE_LIST_MAX) {
				/* larger than the local side takes in one frame: not listed */
				send_fail(s, b, path[0] ? path : ".", "cannot list directory: %s",
					  EFBIG);
				src_listing_release(&l);
				memset(&l, 0, sizeof(l));
				rc = -EFBIG;
			}
			if (rc == 0 && !l.err)
				flags |= WIRE_E_LISTED;
		}
	} else if (S_ISREG(sb.st_mode)) {
		flags |= WIRE_E_ASK;
	} else {
		if (S_ISLNK(sb.st_mode)) {
			ssize_t n = readlinkat(parent->fd, name, target, sizeof(target));

			if (n < 0 || (size_t)n >= sizeof(target)) {
				err = n < 0 ? (uint32_t)errno : ESTALE;
				why = n < 0 ? WHY_READLINK : WHY_LINKCHANGED;
			} else {
				tl = (size_t)n;
			}
		}
		rc = src_read_xattrs(-1, parent->fd, name, &x, &nx);
		if (rc < 0 && !err) {
			err = (uint32_t)-rc;
			why = WHY_XATTRS;
		}
	}
	wire_begin(b, WIRE_ENTRY);
	dfs_buf_put_u32(b, depth);
	dfs_buf_put_u8(b, flags);
	dfs_buf_put_u32(b, err);
	dfs_buf_put_u8(b, why);
	dfs_buf_put_bytes(b, name ? name : "", name ? strlen(name) : 0);
	wire_put_stat(b, &sb);
	dfs_buf_put_bytes(b, target, tl);
	wire_put_xattrs(b, x, nx);
	dfs_buf_put_varint(b, l.len);
	for (size_t i = 0; i < l.n; i++)
		dfs_buf_append(b, l.v[i].p, l.v[i].len + 1);
	src_xattrs_free(x, nx);
	src_listing_release(&l);
	if (!ahead_wait(s)) {
		if (fd >= 0)
			close(fd);
		return -EINTR;
	}
	if (flags & WIRE_E_ASK) {
		struct sfile *f = calloc(1, sizeof(*f));

		if (!f || !(f->name = strdup(name))) {
			free(f);
			return -ENOMEM;
		}
		f->sb = sb;
		f->answer = -1;
		f->dir = parent;
		atomic_fetch_add(&parent->refs, 1);
		/* queued before it is sent: its answer may come back at once */
		pthread_mutex_lock(&s->lock);
		f->seq = s->seq++;
		if (s->tail)
			s->tail->next = f;
		else
			s->head = f;
		s->tail = f;
		if (!s->unanswered)
			s->unanswered = f;
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->lock);
		return send_frame(s, b);
	}
	rc = send_frame(s, b);
	pthread_mutex_lock(&s->lock);
	s->seq++;
	pthread_mutex_unlock(&s->lock);
	if (rc == 0 && fd >= 0 && (flags & WIRE_E_LISTED))
		*dfd = fd;
	else if (fd >= 0)
		close(fd);
	return rc;
}

static int walk(struct serve *s)
{
	struct sframe *v = NULL;
	size_t n = 0, cap = 0;
	struct dfs_buf b, path;
	int fd = -1, rc;

	dfs_buf_init(&b, 1ull << 33);
	dfs_buf_init(&path, (size_t)(ING_MAX_DEPTH + 1) * (NAME_MAX + 1));
	dfs_buf_put_u8(&path, 0);
	rc = send_entry(s, &b, NULL, NULL, "", 0, &fd);
	for (;;) {
		if (rc == 0 && fd >= 0) {	/* enter the directory just sent */
			struct sdir *d = calloc(1, sizeof(*d));
			struct sframe *f;

			if (n == cap) {
				struct sframe *x = realloc(v, (cap ? cap * 2 : 64) * sizeof(*x));

				if (x) {
					v = x;
					cap = cap ? cap * 2 : 64;
				}
			}
			if (!d || n == cap) {
				free(d);
				close(fd);
				rc = -ENOMEM;
				break;
			}
			d->fd = fd;
			atomic_init(&d->refs, 1);
			f = &v[n++];
			memset(f, 0, sizeof(*f));
			f->dir = d;
			f->plen = path.len - 1;
			rc = src_list_dir(fd, &f->names);
			fd = -1;
		}
		if (rc < 0 || !n || s->stop)
			break;
		if (v[n - 1].next == v[n - 1].names.n) {
			src_listing_release(&v[n - 1].names);
			sdir_put(v[n - 1].dir);
			n--;
			continue;
		}
		{
			struct sframe *f = &v[n - 1];
			const struct src_name *nm = &f->names.v[f->next++];

			path.len = f->plen;
			if (f->plen)
				dfs_buf_put_u8(&path, '/');
			dfs_buf_append(&path, nm->p, nm->len + 1);
			if (path.err) {
				rc = path.err;
				break;
			}
			rc = send_entry(s, &b, f->dir, nm->p, (const char *)path.data,
					(uint32_t)n, &fd);
		}
	}
	while (n) {
		src_listing_release(&v[n - 1].names);
		sdir_put(v[--n].dir);
	}
	free(v);
	dfs_buf_release(&b);
	dfs_buf_release(&path);
	return rc;
}

static void *walker_main(void *arg)
{
	struct serve *s = arg;
	int rc = walk(s);

	wire_flush(&s->c);
	pthread_mutex_lock(&s->lock);
	if (rc < 0 && rc != -EINTR && !s->fatal)
		s->fatal = rc;
	s->walk_done = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* ---- the sender ---------------------------------------------------------------------------- */

/* Gives the flags of an ANSWER (@p, @n) to the files waiting for one. */
static int give_answers(struct serve *s, const uint8_t *p, size_t n)
{
	const uint8_t *flags;
	size_t nf;
	int rc = wire_dec_flags(p, n, &flags, &nf);

	if (rc < 0)
		return rc;
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < nf; i++) {
		if (!s->unanswered) {
			rc = -EBADMSG;
			snprintf(s->err, sizeof(s->err), "protocol error: an answer for no file");
			break;
		}
		s->unanswered->answer = flags[i];
		s->unanswered = s->unanswered->next;
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

/*
 * The next frame, which must be of type @want; ANSWERs met before it (the local side
 * answers entries as they come) are taken on the way.
 */
static int expect(struct serve *s, uint8_t want, const uint8_t **p, size_t *n)
{
	for (;;) {
		uint8_t t;
		int rc = wire_read(&s->c, &t, p, n);

		if (rc < 0)
			return rc;
		if (t == want)
			return 0;
		if (t != WIRE_ANSWER) {
			snprintf(s->err, sizeof(s->err), "protocol error: frame %u where %u was "
				 "due", t, want);
			return -EBADMSG;
		}
		rc = give_answers(s, *p, *n);
		if (rc < 0)
			return rc;
	}
}

/* Reads an ANSWER. */
static int take_answers(struct serve *s)
{
	const uint8_t *p;
	size_t n;
	int rc = expect(s, WIRE_ANSWER, &p, &n);

	return rc < 0 ? rc : give_answers(s, p, n);
}

/* The MIME type of the first bytes @p, @n, as read.c's note_mime finds it. */
static void mime_head(struct serve *s, int flags, const uint8_t *p, size_t n, char *out,
		      size_t outlen)
{
	bool exact = flags & WIRE_A_EXACT;
	const char *m;

	if (!(flags & WIRE_A_MIME) || out[0])
		return;
	if (n > MIME_HEAD)
		n = MIME_HEAD;
	if (!exact && mime_quick_known(p, n)) {
		snprintf(out, outlen, "%s", MIME_NOT_BINARY);
		return;
	}
	if (!s->mime && mime_new(&s->mime) < 0)
		return;		/* the local organizer computes it then */
	m = mime_of(s->mime, p, n, exact);
	if (m && strlen(m) < outlen)
		snprintf(out, outlen, "%s", m);
}

/* Sends the chunks of the window and the bytes of those the local side needs. */
static int send_chunks(struct serve *s, struct cjob *jobs, size_t nj, struct dfs_buf *b)
{
	const uint8_t *p, *flags;
	size_t n, nf;
	int rc;

	wire_begin(b, WIRE_CHUNKS);
	dfs_buf_put_varint(b, nj);
	for (size_t i = 0; i < nj; i++) {
		fp_sha256(jobs[i].p, jobs[i].len, &jobs[i].id);
		dfs_buf_put_u32(b, jobs[i].len);
		dfs_buf_append(b, jobs[i].id.b, sizeof(jobs[i].id.b));
	}
	rc = send_frame(s, b);
	if (rc == 0)
		rc = expect(s, WIRE_NEED, &p, &n);
	if (rc == 0)
		rc = wire_dec_flags(p, n, &flags, &nf);
	if (rc == 0 && nf != nj)
		rc = -EBADMSG;
	for (size_t i = 0; i < nj && rc == 0; i++) {
		enum codec_id cid;
		ssize_t sl;

		if (!(flags[i] & (WIRE_N_DATA | WIRE_N_SIZE)))
			continue;
		sl = codec_compress(s->codec, jobs[i].p, jobs[i].len, s->cbuf, s->cbuf_cap, &cid);
		if (sl < 0)
			return (int)sl;
		if (flags[i] & WIRE_N_DATA) {
			wire_begin(b, WIRE_DATA);
			dfs_buf_put_u8(b, (uint8_t)cid);
			dfs_buf_put_u32(b, jobs[i].len);
			dfs_buf_put_bytes(b, s->cbuf, (size_t)sl);
		} else {	/* a dry run: what the bytes would cost */
			wire_begin(b, WIRE_SIZE);
			dfs_buf_put_u32(b, jobs[i].len);
			dfs_buf_put_u32(b, (uint32_t)sl);
		}
		rc = send_frame(s, b);
	}
	return rc;
}

/* One pass over the file open at @fd: 0, -ESTALE (changed), -errno. */
static int send_content(struct serve *s, int fd, const struct stat *sb, int flags,
			struct cjob *jobs, struct dfs_buf *b, uint64_t *bytes_read, char *mime,
			size_t mlen)
{
	off_t size = sb->st_size, off = 0;
	int rc = 0;

	if (size <= (off_t)s->h.inline_max) {
		ssize_t n = size ? pread(fd, s->win, (size_t)size + 1, 0) : 0;

		if (n < 0)
			return -errno;
		if (n != size)
			return -ESTALE;
		*bytes_read += (uint64_t)n;
		mime_head(s, flags, s->win, (size_t)n, mime, mlen);
		if ((flags & WIRE_A_HASH) && n) {	/* the gate: its hash, not its bytes */
			jobs[0].p = s->win;
			jobs[0].len = (uint32_t)n;
			return send_chunks(s, jobs, 1, b);
		}
		wire_begin(b, WIRE_INLINE);	/* compressed as a chunk is (DATA) */
		if (n) {
			enum codec_id cid;
			ssize_t sl = codec_compress(s->codec, s->win, (size_t)n, s->cbuf,
						    s->cbuf_cap, &cid);

			if (sl < 0)
				return (int)sl;
			dfs_buf_put_u8(b, (uint8_t)cid);
			dfs_buf_put_u32(b, (uint32_t)n);
			dfs_buf_put_bytes(b, s->cbuf, (size_t)sl);
		} else {
			dfs_buf_put_u8(b, CODEC_RAW);
			dfs_buf_put_u32(b, 0);
			dfs_buf_put_bytes(b, "", 0);
		}
		return send_frame(s, b);
	}
	while (off < size && rc == 0) {
		off_t data, hole;

		src_next_data(fd, off, size, &data, &hole);
		if (data > off) {
			wire_begin(b, WIRE_HOLE);
			dfs_buf_put_u64(b, (uint64_t)(data - off));
			rc = send_frame(s, b);
		}
		if (rc == 0 && hole > data) {
			bool first = data == 0 &&
				     hole >= (size < MIME_HEAD ? size : (off_t)MIME_HEAD);
			struct src_window sw;

			src_window_init(&sw, s->win, ing_window_cap(&s->cdc), data, hole);
			while (rc == 0 && src_window_more(&sw)) {
				ssize_t got = src_window_fill(&sw, fd);
				size_t k, nj = 0;

				if (got < 0)
					return (int)got;
				*bytes_read += (uint64_t)got;
				if (first) {
					mime_head(s, flags, s->win, sw.have, mime, mlen);
					first = false;
				}
				while ((k = src_window_cut(&sw, &s->cdc))) {
					jobs[nj].p = sw.buf + sw.pos - k;
					jobs[nj].len = (uint32_t)k;
					nj++;
				}
				if (nj)
					rc = send_chunks(s, jobs, nj, b);
			}
		}
		off = hole;
	}
	return rc;
}

/* Sends file @f as asked (@flags): its content, then FEND. 0, or -errno of the stream. */
static int send_file(struct serve *s, struct sfile *f, int flags, struct cjob *jobs,
		     struct dfs_buf *b)
{
	struct store_xattr *x = NULL;
	struct stat before, after = f->sb;
	uint64_t bytes_read = 0;
	char mime[96] = "";
	size_t nx = 0;
	uint8_t why = WHY_NONE;
	int rc = 0;

	for (int attempt = 0; attempt <= CHANGE_RETRIES; attempt++) {
		int fd = src_reopen_file(f->dir->fd, f->name, f->sb.st_ino, &before);

		if (attempt) {	/* the file starts again */
			wire_begin(b, WIRE_RESET);
			rc = send_frame(s, b);
			if (rc < 0)
				return rc;
		}
		mime[0] = '\0';
		if (fd < 0) {
			rc = fd;
			why = rc == -ENOENT ? WHY_VANISHED : rc == -ESTALE ? WHY_REPLACED : WHY_NONE;
			break;
		}
		rc = send_content(s, fd, &before, flags, jobs, b, &bytes_read, mime, sizeof(mime));
		if (rc == -EPIPE || rc == -EBADMSG) {	/* the stream, not the file */
			close(fd);
			return rc;
		}
		if (rc == 0) {
			src_xattrs_free(x, nx);
			x = NULL;
			nx = 0;
			rc = src_read_xattrs(fd, -1, NULL, &x, &nx);
			if (rc < 0)
				why = WHY_XATTRS;
		}
		if (rc == 0 && fstat(fd, &after) < 0)
			rc = -errno;
		close(fd);
		if (rc == 0 && (after.st_size != before.st_size ||
				!src_same_time(&after.st_mtim, &before.st_mtim) ||
				!src_same_time(&after.st_ctim, &before.st_ctim)))
			rc = -ESTALE;
		if (rc == -ESTALE || rc == -EAGAIN) {
			why = WHY_RETRIED;
			continue;
		}
		break;
	}
	if (rc == -ESTALE && why == WHY_RETRIED)
		why = WHY_CHANGED;
	if (rc == 0)
		why = WHY_NONE;
	wire_begin(b, WIRE_FEND);
	dfs_buf_put_u32(b, rc < 0 ? (uint32_t)-rc : 0);
	dfs_buf_put_u8(b, why);
	dfs_buf_put_u64(b, bytes_read);
	dfs_buf_put_bytes(b, mime, strlen(mime));
	wire_put_stat(b, rc == 0 ? &after : &f->sb);
	wire_put_xattrs(b, rc == 0 ? x : NULL, rc == 0 ? nx : 0);
	src_xattrs_free(x, nx);
	return send_frame(s, b);
}

static int send_loop(struct serve *s)
{
	struct cjob *jobs = calloc(src_window_max_cuts(ing_window_cap(&s->cdc), &s->cdc),
				   sizeof(*jobs));
	struct dfs_buf b;
	int rc = 0;

	dfs_buf_init(&b, 1ull << 33);
	if (!jobs)
		rc = -ENOMEM;
	pthread_mutex_lock(&s->lock);
	while (rc == 0) {
		struct sfile *f = s->head;

		if (f && f->answer >= 0) {
			pthread_mutex_unlock(&s->lock);
			if (f->answer & WIRE_A_READ)
				rc = send_file(s, f, f->answer, jobs, &b);
			pthread_mutex_lock(&s->lock);
			s->head = f->next;
			if (!s->head)
				s->tail = NULL;
			pthread_cond_broadcast(&s->cond);
			sdir_put(f->dir);
			free(f->name);
			free(f);
			continue;
		}
		if (f) {
			pthread_mutex_unlock(&s->lock);
			rc = take_answers(s);
			pthread_mutex_lock(&s->lock);
			continue;
		}
		if (s->walk_done)
			break;
		pthread_cond_wait(&s->cond, &s->lock);
	}
	if (rc < 0)
		s->stop = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	dfs_buf_release(&b);
	free(jobs);
	return rc;
}

/* ---- the repair: FETCH requests (WIRE_H_FETCH) ---------------------------------------------- */

/*
 * Opens the regular file @path (@len bytes, checked by wire_dec_fetch: names only) below
 * the root, one component at a time and never through a symlink, as the walk opened it.
 * An fd or -errno.
 */
static int fetch_open(struct serve *s, const uint8_t *path, size_t len)
{
	char name[NAME_MAX + 1];
	int dfd = -1, fd = -1;

	for (size_t a = 0, e; a < len; a = e + 1) {
		const uint8_t *slash = memchr(path + a, '/', len - a);

		e = slash ? (size_t)(slash - path) : len;
		memcpy(name, path + a, e - a);
		name[e - a] = '\0';
		if (e == len) {
			fd = src_open_file(dfd >= 0 ? dfd : s->rootfd, name);
		} else {
			int nd = src_open_dir(dfd >= 0 ? dfd : s->rootfd, name);

			if (dfd >= 0)
				close(dfd);
			dfd = nd;
			if (dfd < 0)
				return dfd;
		}
	}
	if (dfd >= 0)
		close(dfd);
	return fd;
}

/* One FETCH: DATA when the bytes there still hash to the id, else MISS with why. */
static int serve_one(struct serve *s, const struct wire_fetch *f, struct dfs_buf *b)
{
	struct fp256 got;
	enum codec_id cid;
	ssize_t n = 0, sl = 0;
	int fd = fetch_open(s, f->path, f->path_len), rc = 0;

	if (fd >= 0 && f->len > ing_window_cap(&s->cdc)) {	/* larger than any chunk cut here */
		close(fd);
		fd = -EFBIG;
	}
	if (fd < 0)
		rc = fd;
	else
		n = pread(fd, s->win, f->len, (off_t)f->off);
	if (fd >= 0 && n < 0)
		rc = -errno;
	else if (fd >= 0 && (size_t)n != f->len)
		rc = -ESTALE;	/* the file is shorter now */
	if (fd >= 0)
		close(fd);
	if (rc == 0) {
		fp_sha256(s->win, f->len, &got);
		if (!fp_equal(&got, &f->id))
			rc = -ESTALE;
	}
	if (rc == 0) {
		sl = codec_compress(s->codec, s->win, f->len, s->cbuf, s->cbuf_cap, &cid);
		if (sl < 0)
			return (int)sl;
		wire_begin(b, WIRE_DATA);
		dfs_buf_put_u8(b, (uint8_t)cid);
		dfs_buf_put_u32(b, f->len);
		dfs_buf_put_bytes(b, s->cbuf, (size_t)sl);
	} else {
		wire_begin(b, WIRE_MISS);
		dfs_buf_put_u32(b, (uint32_t)-rc);
	}
	return send_frame(s, b);
}

/* Answers FETCH requests, in order, until DONE (then 0) or the end of the stream. */
static int serve_fetch(struct serve *s)
{
	struct dfs_buf b;
	int rc = 0;

	dfs_buf_init(&b, codec_bound(s->cdc.max_size) + 64);
	s->c.max_payload = WIRE_HELLO_MAX;	/* a FETCH is a path and a few numbers */
	while (rc == 0) {
		struct wire_fetch f;
		const uint8_t *p;
		size_t n;
		uint8_t t;

		rc = wire_read(&s->c, &t, &p, &n);
		if (rc < 0)
			break;
		if (t == WIRE_DONE && !n)
			break;
		if (t != WIRE_FETCH) {
			snprintf(s->err, sizeof(s->err), "protocol error: frame %u where a "
				 "request was due", t);
			rc = -EBADMSG;
			break;
		}
		rc = wire_dec_fetch(p, n, s->cdc.max_size, &f);
		if (rc == 0)
			rc = serve_one(s, &f, &b);
		if (rc == -EBADMSG && !s->err[0])
			snprintf(s->err, sizeof(s->err), "protocol error: a malformed request");
	}
	if (rc == 0)
		rc = wire_flush(&s->c);
	dfs_buf_release(&b);
	return rc;
}

/* ---- the handshake ------------------------------------------------------------------------- */

static int welcome(struct serve *s)
{
	char fsid[256];
	struct dfs_buf b;
	int rc;

	src_fsid(s->rootfd, &s->rootsb, fsid, sizeof(fsid));
	dfs_buf_init(&b, WIRE_HELLO_MAX);
	wire_begin(&b, WIRE_WELCOME);
	dfs_buf_put_bytes(&b, WIRE_MAGIC, strlen(WIRE_MAGIC));
	dfs_buf_put_u32(&b, WIRE_VERSION);
	dfs_buf_put_bytes(&b, DFS_VERSION, strlen(DFS_VERSION));
	dfs_buf_put_bytes(&b, fsid, strlen(fsid));
	dfs_buf_put_u64(&b, ing_fs_id(s->rootfd, &s->rootsb));
	wire_put_stat(&b, &s->rootsb);
	rc = wire_end(&b, 0);
	if (rc == 0)
		rc = wire_send(&s->c, &b, true);
	dfs_buf_release(&b);
	return rc;
}

/* Reads HELLO and opens the tree it names. 0 or -errno (ERROR sent, @s->err set). */
static int hello(struct serve *s)
{
	const uint8_t *p;
	size_t n;
	char path[PATH_MAX];
	int rc = expect(s, WIRE_HELLO, &p, &n);

	unsigned mine = WIRE_VERSION;

#ifdef DFS_TEST_FAULTS
	/* DFS_FAULT_WIRE_VERSION=N: this side speaks protocol N (t_remote's mismatch) */
	if (getenv("DFS_FAULT_WIRE_VERSION"))
		mine = (unsigned)strtoul(getenv("DFS_FAULT_WIRE_VERSION"), NULL, 10);
#endif
	if (rc == 0)
		rc = wire_dec_hello(p, n, &s->h);
	if (rc == 0 && mine != WIRE_VERSION)
		rc = -EPROTONOSUPPORT;
	if (rc == -EPROTONOSUPPORT)
		snprintf(s->err, sizeof(s->err), "protocol version mismatch: the remote "
			 "defrag-ingest %s speaks protocol %u, the local one (%.*s) protocol %u;"
			 " install the same defragfs version on both machines", DFS_VERSION,
			 mine, (int)(s->h.pkg_len > 40 ? 40 : s->h.pkg_len),
			 s->h.pkg ? (const char *)s->h.pkg : "?", s->h.version);
	else if (rc < 0 && !s->err[0])
		snprintf(s->err, sizeof(s->err), "the local side's handshake is not one this "
			 "defrag-ingest %s understands (%s)", DFS_VERSION, strerror(-rc));
	if (rc < 0)
		return rc;
	memcpy(path, s->h.path, s->h.path_len);
	path[s->h.path_len] = '\0';
	s->cdc = s->h.cdc;
	s->excl = calloc(s->h.nexcl + 1, sizeof(*s->excl));
	if (!s->excl)
		return -ENOMEM;
	for (size_t i = 0, pos = 0; i < s->h.nexcl; i++) {
		s->excl[i] = (const char *)s->h.excl.data + pos;
		pos += strlen(s->excl[i]) + 1;
	}
	s->rootfd = src_open_root(path);
	if (s->rootfd >= 0 && fstat(s->rootfd, &s->rootsb) < 0) {
		close(s->rootfd);
		s->rootfd = -errno;
	}
	if (s->rootfd < 0) {
		snprintf(s->err, sizeof(s->err), "%.400s: %s", path, strerror(-s->rootfd));
		return s->rootfd;
	}
	s->cbuf_cap = codec_bound(s->cdc.max_size);
	s->win = malloc(ing_window_cap(&s->cdc) + 1);
	s->cbuf = malloc(s->cbuf_cap);
	if (!s->win || !s->cbuf)
		return -ENOMEM;
	rc = codec_new((int)s->h.zstd_level, &s->codec);
	return rc;
}

int ingest_serve(int in, int out, char *err, size_t errlen)
{
	struct serve s = { .rootfd = -1 };
	struct rlimit rl;
	pthread_t walker;
	bool started = false, fetched = false;
	int rc;

	signal(SIGPIPE, SIG_IGN);
	/* directories of asked files stay open until sent (at most WIRE_AHEAD) */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max > 65536 ? 65536 : rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	pthread_mutex_init(&s.lock, NULL);
	pthread_cond_init(&s.cond, NULL);
	rc = wire_conn_init(&s.c, in, out);
	if (rc == 0)
		rc = hello(&s);
	if (rc == 0) {
		s.g = calloc(1, sizeof(*s.g));
		if (s.g)
			ing_collect_skip_devs(s.g);
		rc = s.g ? welcome(&s) : -ENOMEM;
	}
	if (rc == 0 && (s.h.flags & WIRE_H_FETCH)) {
		rc = serve_fetch(&s);	/* a repair: no walk, and no DONE back */
		fetched = true;
	}
	if (rc == 0 && !fetched && pthread_create(&walker, NULL, walker_main, &s) != 0)
		rc = -EAGAIN;
	if (rc == 0 && !fetched) {
		started = true;
		rc = send_loop(&s);
	}
	if (started)
		pthread_join(walker, NULL);
	if (rc == 0 && s.fatal)
		rc = s.fatal;
	if (rc == 0 && !fetched) {
		struct dfs_buf b;

		dfs_buf_init(&b, 64);
		wire_begin(&b, WIRE_DONE);
		rc = wire_end(&b, 0);
		if (rc == 0)
			rc = wire_send(&s.c, &b, true);
		dfs_buf_release(&b);
	} else if (rc < 0 && rc != -EPIPE) {
		if (!s.err[0])
			snprintf(s.err, sizeof(s.err), "%s", strerror(-rc));
		send_error(&s.c, s.err);
	}
	if (rc < 0)
		snprintf(err, errlen, "%s", s.err[0] ? s.err : strerror(-rc));
	if (s.rootfd >= 0)
		close(s.rootfd);
	while (s.head) {
		struct sfile *f = s.head;

		s.head = f->next;
		sdir_put(f->dir);
		free(f->name);
		free(f);
	}
	if (s.g) {
		free(s.g->skip_devs);
		free(s.g);
	}
	free(s.excl);
	dfs_buf_release(&s.h.excl);
	codec_free(s.codec);
	mime_free(s.mime);
	free(s.win);
	free(s.cbuf);
	wire_conn_release(&s.c);
	pthread_mutex_destroy(&s.lock);
	pthread_cond_destroy(&s.cond);
	return rc;
}
