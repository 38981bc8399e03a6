/*
 * compare.c - a source drive against the store's view of it, and the repair of damaged
 * chunks from it (see compare.h).
 *
 * One walk serves both passes: cmp_walk lists each source directory (srcfile.h's sorted
 * listing), cmp_entry compares one entry with the view's inode of the same name
 * (cmp_stat, then symlink target, xattrs, bytes), and the walk descends into directories
 * that match. Its levels are a stack on the heap (struct cmp_frame: the directory's fd,
 * its listing and a cursor), never the C stack, so any depth is compared; past
 * CLS_MAX_DEPTH levels a directory is a difference, not compared. In the repair pass the
 * byte comparison of a regular file is replaced by repair_file and nothing is reported.
 * Source bytes are read in 4 MiB steps (or a whole chunk, for a repair) into buffers
 * allocated once per call.
 *
 * Threads: one call at a time per store; everything here is the caller's thread.
 * Errors: 0 or -errno. A difference is reported through the caller's callback and is
 * never an error; only -ENOMEM, an unopenable source root and the repair's commit are.
 *
 * SPDX-License-Identifier: MIT
 */
#include "compare.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "classify/classify.h"
#include "exclude.h"
#include "srcfile.h"
#include "store/buf.h"
#include "store/fp.h"
#include "store/log.h"
#include "wire.h"

#define CMP_READ (4u << 20)	/* bytes compared per step (a chunk that crosses a step is
				 * read again: 4 MiB makes that a few percent) */
#define CMP_MAX_DEPTH CLS_MAX_DEPTH	/* the levels entered (ingest stores no more) */
#define CMP_WHY 1024		/* the longest difference message */

struct cmp_run {
	struct store *st;
	struct codec *codec;
	const struct cmp_opts *o;
	struct cmp_stats *out;
	struct dfs_buf path;	/* source-relative path of the entry at hand */
	uint8_t *sbuf;		/* source bytes: CMP_READ, or the store's largest chunk */
	size_t scap;
	uint8_t *rbuf;		/* store bytes: CMP_READ */
	uint8_t *cbuf;		/* the repair pass: a chunk compressed again */
	size_t ccap;
	/* hard links: each multiply-linked entry's source identity and view inode, both
	 * ways, so a link broken on either side is a difference */
	struct u64map src_to_view;	/* source key -> view inode */
	struct u64map view_to_src;	/* view inode -> source key */
};

/* The differences of one entry, gathered before they are reported. */
struct cmp_why {
	char s[CMP_WHY];	/* "; "-separated; cut short (with "...") when full */
	size_t len;
	bool changed;		/* a sign that the drive changed: newer mtime or ctime, size */
	bool damaged;		/* the store's copy failed a check */
};

static void why_add(struct cmp_why *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void why_add(struct cmp_why *w, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (w->len + 8 >= sizeof(w->s))
		return;	/* full: what is there already says "..." */
	if (w->len) {
		memcpy(w->s + w->len, "; ", 3);
		w->len += 2;
	}
	va_start(ap, fmt);
	n = vsnprintf(w->s + w->len, sizeof(w->s) - w->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(w->s) - w->len) {
		memcpy(w->s + sizeof(w->s) - 4, "...", 4);
		w->len = sizeof(w->s) - 1;
	} else {
		w->len += (size_t)n;
	}
}

static void progress(struct cmp_run *r)
{
	if (r->o->progress && !r->o->repair)
		r->o->progress(r->o->arg, r->out);
}

static void report(struct cmp_run *r, enum cmp_kind kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void report(struct cmp_run *r, enum cmp_kind kind, const char *fmt, ...)
{
	char msg[CMP_WHY];
	va_list ap;

	if (r->o->repair)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (kind == CMP_NOTE) {
		r->out->notes++;
	} else {
		r->out->problems++;
		r->out->changed += kind == CMP_CHANGED;
		r->out->damaged += kind == CMP_DAMAGED;
	}
	if (r->o->diff)
		r->o->diff(r->o->arg, kind, r->path.data ? r->path.data : (const uint8_t *)"",
			   r->path.len, msg);
}

/* Reports what @w gathered (if anything) where it happened; empties @w. */
static void report_why(struct cmp_run *r, struct cmp_why *w)
{
	if (w->len)
		report(r, w->damaged ? CMP_DAMAGED : w->changed ? CMP_CHANGED : CMP_DIFFERS, "%s",
		       w->s);
	*w = (struct cmp_why){ 0 };
}

static bool accepted(const struct cmp_opts *o, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < o->naccept; i++) {
		const char *x = o->accept[i];

		while (*x == '/')
			x++;
		if (strlen(x) == n && !memcmp(x, p, n))
			return true;
	}
	return false;
}

static bool time_after(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec > b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec > b->tv_nsec);
}

/* @t as "2026-12-06 08:01:01.123456789 UTC" */
static const char *fmt_time(const struct timespec *t, char *buf, size_t len)
{
	struct tm tm;
	time_t s = t->tv_sec;
	size_t n;

	if (!gmtime_r(&s, &tm) || !(n = strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm)))
		snprintf(buf, len, "%lld s", (long long)t->tv_sec);
	else
		snprintf(buf + n, len - n, ".%09ld UTC", t->tv_nsec);
	return buf;
}

/*
 * The inode's own fields against lstat's: every difference into @w (a different type
 * ends the list), and whether the drive changed since (@w->changed).
 */
static void cmp_stat(const struct store_inode *in, const struct stat *sb, struct cmp_why *w)
{
	bool sized = S_ISREG(sb->st_mode) || S_ISLNK(sb->st_mode);
	char a[48], b[48];

	if (time_after(&sb->st_mtim, &in->mtime) || time_after(&sb->st_ctim, &in->ctime) ||
	    ((in->mode & S_IFMT) == (sb->st_mode & S_IFMT) && sized &&
	     in->size != (uint64_t)sb->st_size))
		w->changed = true;
	if ((in->mode & S_IFMT) != (sb->st_mode & S_IFMT)) {
		why_add(w, "type differs");
		return;
	}
	if (in->mode != sb->st_mode)
		why_add(w, "mode %o in the store, %o in the source", in->mode & 07777,
			sb->st_mode & 07777);
	if (in->uid != sb->st_uid || in->gid != sb->st_gid)
		why_add(w, "owner differs (%u:%u in the store, %u:%u in the source)", in->uid,
			in->gid, (unsigned)sb->st_uid, (unsigned)sb->st_gid);
	if (!src_same_time(&in->mtime, &sb->st_mtim))
		why_add(w, "mtime differs (%s in the store, %s in the source)",
			fmt_time(&in->mtime, a, sizeof(a)), fmt_time(&sb->st_mtim, b, sizeof(b)));
	if (!S_ISDIR(sb->st_mode) && in->nlink != (uint32_t)sb->st_nlink)
		why_add(w, "%u links in the store, %lu in the source", in->nlink,
			(unsigned long)sb->st_nlink);
	if (sized && in->size != (uint64_t)sb->st_size)
		why_add(w, "size %" PRIu64 " in the store, %lld in the source", in->size,
			(long long)sb->st_size);
	if ((S_ISCHR(sb->st_mode) || S_ISBLK(sb->st_mode)) && in->rdev != sb->st_rdev)
		why_add(w, "device number differs");
}

static bool has_xattr(const struct store_xattr *x, const struct store_xattr *v, size_t n,
		      bool *same)
{
	for (size_t j = 0; j < n; j++) {
		if (!src_xattr_cmp(x, &v[j])) {
			*same = v[j].value.len == x->value.len &&
				!memcmp(v[j].value.p, x->value.p, x->value.len);
			return true;
		}
	}
	*same = false;
	return false;
}

/* The source entry's xattrs @xs (@nx) against the inode's, into @w. */
static void cmp_xattr_sets(const struct store_xattr *xs, size_t nx, const struct store_inode *in,
			   struct cmp_why *w)
{
	bool same;

	for (size_t i = 0; i < nx; i++) {
		if (!has_xattr(&xs[i], in->xattrs, in->nxattrs, &same) || !same)
			why_add(w, "extended attribute %.*s differs or is missing",
				(int)xs[i].name.len, (const char *)xs[i].name.p);
	}
	for (size_t j = 0; j < in->nxattrs; j++) {
		if (!has_xattr(&in->xattrs[j], xs, nx, &same))
			why_add(w, "extended attribute %.*s is in the store, not in the source",
				(int)in->xattrs[j].name.len, (const char *)in->xattrs[j].name.p);
	}
}

/*
 * The source entry's xattrs (through @fd, else @name in @dfd) against the inode's: each
 * that differs, is missing or is extra goes into @w. 0, or -ENOMEM. A filesystem without
 * xattrs (ENOTSUP) has none, as at ingest.
 */
static int cmp_xattrs(int fd, int dfd, const char *name, const struct store_inode *in,
		      struct cmp_why *w)
{
	struct store_xattr *xs;
	size_t nx;
	int rc = src_read_xattrs(fd, dfd, name, &xs, &nx);

	if (rc == -ENOMEM)
		return rc;
	if (rc < 0) {
		why_add(w, "cannot read the extended attributes: %s", strerror(-rc));
		return 0;
	}
	cmp_xattr_sets(xs, nx, in, w);
	src_xattrs_free(xs, nx);
	return 0;
}

/*
 * The hole map of source file @fd (SEEK_DATA/SEEK_HOLE) against the content's: a hole
 * filled with zeros on the drive, or zeros stored where the drive has a hole, differ
 * although the bytes read the same. A filesystem without SEEK_DATA reports all data, as
 * it did at ingest. True if they differ (said in @w).
 */
static bool cmp_holes(int fd, struct store_content *c, uint64_t size, struct cmp_why *w)
{
	uint64_t off = 0;

	while (off < size) {
		off_t sd = lseek(fd, (off_t)off, SEEK_DATA), sh;
		uint64_t cd, ch;
		int rc;

		if (sd < 0 && errno != ENXIO) {
			if (errno == EINVAL) {	/* no SEEK_DATA: all data */
				sd = (off_t)off;
			} else {
				why_add(w, "cannot map the holes: %s", strerror(errno));
				return true;
			}
		}
		if (sd < 0)
			sd = (off_t)size;	/* ENXIO: a hole to the end */
		sh = sd < (off_t)size ? lseek(fd, sd, SEEK_HOLE) : (off_t)size;
		if (sh < 0 || sh > (off_t)size)
			sh = (off_t)size;
		rc = store_content_seek(c, off, SEEK_DATA, &cd);
		if (rc == -ENXIO) {
			cd = size;
		} else if (rc < 0) {
			why_add(w, "store hole map unreadable: %s", dfs_strerror(rc));
			w->damaged = true;
			return true;
		}
		ch = size;
		if (cd < size && store_content_seek(c, cd, SEEK_HOLE, &ch) < 0)
			ch = size;
		if ((uint64_t)sd != cd || (cd < size && (uint64_t)sh != ch)) {
			why_add(w, "holes differ from offset %" PRIu64 " (data at %" PRIu64
				" in the store, at %" PRIu64 " in the source)", off, cd,
				(uint64_t)sd);
			return true;
		}
		off = (uint64_t)sh;
	}
	return false;
}

/*
 * Bytes [@from, @to) of source file @fd against content @c. Returns the offset up to
 * which the store's bytes were read (and so checked): @to when all is equal; where the
 * first difference was found (said in @w) or the source could not be read; UINT64_MAX
 * when the store's bytes could not be read (@w->damaged set).
 */
static uint64_t cmp_range(struct cmp_run *r, int fd, struct store_content *c, uint64_t from,
			  uint64_t to, struct cmp_why *w)
{
	for (uint64_t off = from; off < to;) {
		size_t want = to - off < CMP_READ ? (size_t)(to - off) : CMP_READ;
		ssize_t n = pread(fd, r->sbuf, want, (off_t)off), m;

		if (n < 0) {
			why_add(w, "cannot read the source: %s", strerror(errno));
			return off;
		}
		if (n == 0) {
			why_add(w, "the source ended at %" PRIu64 " while being read", off);
			return off;
		}
		m = store_content_pread(r->st, r->codec, c, r->rbuf, (size_t)n, off);
		if (m < 0) {
			why_add(w, "store data unreadable at %" PRIu64 ": %s", off,
				dfs_strerror((int)m));
			w->damaged = true;
			return UINT64_MAX;
		}
		r->out->bytes += (uint64_t)n;
		if (m != n || memcmp(r->sbuf, r->rbuf, (size_t)n)) {
			size_t i = 0, k = (size_t)(m < n ? m : n);

			while (i < k && r->sbuf[i] == r->rbuf[i])
				i++;	/* the first byte that differs */
			why_add(w, "bytes differ at offset %" PRIu64, off + i);
			return off + (uint64_t)m;
		}
		off += (uint64_t)n;
		progress(r);
	}
	return to;
}

/*
 * The store's bytes of @c from @from to its end (its data regions) are read, which checks
 * every chunk they use: a store copy that fails is damage (@w->damaged), whatever the
 * drive says.
 */
static void check_rest(struct cmp_run *r, struct store_content *c, uint64_t from,
		       uint64_t size, struct cmp_why *w)
{
	uint64_t off = from;

	while (off < size) {
		uint64_t d, h = size;
		ssize_t m;
		int rc = store_content_seek(c, off, SEEK_DATA, &d);

		if (rc == -ENXIO)
			return;
		if (rc < 0) {
			why_add(w, "store hole map unreadable: %s", dfs_strerror(rc));
			w->damaged = true;
			return;
		}
		if (store_content_seek(c, d, SEEK_HOLE, &h) < 0 || h > size)
			h = size;
		for (off = d; off < h; off += (uint64_t)m) {
			size_t want = h - off < CMP_READ ? (size_t)(h - off) : CMP_READ;

			m = store_content_pread(r->st, r->codec, c, r->rbuf, want, off);
			if (m <= 0) {
				why_add(w, "store data unreadable at %" PRIu64 ": %s", off,
					m < 0 ? dfs_strerror((int)m) : "it ends early");
				w->damaged = true;
				return;
			}
		}
	}
}

/*
 * Every byte of source file @fd against the inode's content; differences into @w, the
 * first differing byte named. When the hole maps agree only the data regions are read (a
 * hole both maps agree on reads as zeros on both sides), so a sparse 300 GiB file costs
 * its data; the map is compared again afterwards (a file that changed meanwhile
 * differs). Otherwise (another size, other holes) the bytes are compared up to the
 * shorter end. Whatever differs, the rest of the store's copy is read (check_rest), so
 * a store that fails its checks is told from a drive that changed.
 */
static void cmp_data(struct cmp_run *r, int fd, const struct store_inode *in,
		     struct cmp_why *w)
{
	struct store_content *c;
	struct stat sb;
	uint64_t size, ssize, done = 0;
	bool holes, plain = false;
	int rc;

	if (!in->has_content) {
		why_add(w, "no content in the store");
		w->damaged = true;
		return;
	}
	rc = store_content_open(r->st, &in->content, &c);
	if (rc < 0) {
		why_add(w, "content object unreadable: %s", dfs_strerror(rc));
		w->damaged = true;
		return;
	}
	size = store_content_size(c);
	/* a file stored inline was read whole at ingest: it has no hole map */
	holes = in->size > store_params(r->st)->inline_max;
	if (size != in->size) {
		why_add(w, "the content has %" PRIu64 " bytes, the inode %" PRIu64, size,
			in->size);
		w->damaged = true;
	}
	if (fstat(fd, &sb) < 0) {
		why_add(w, "cannot stat the source: %s", strerror(errno));
		goto rest;
	}
	ssize = (uint64_t)sb.st_size;
	if (ssize != size) {
		if (ssize == in->size)	/* else cmp_stat said so */
			why_add(w, "the store has %" PRIu64 " bytes, the source %" PRIu64, size,
				ssize);
		plain = true;
	} else if (holes && cmp_holes(fd, c, size, w)) {
		plain = true;
	}
	if (plain) {
		done = cmp_range(r, fd, c, 0, ssize < size ? ssize : size, w);
		goto rest;
	}
	while (done < size) {
		off_t sd = holes ? lseek(fd, (off_t)done, SEEK_DATA) : (off_t)done, sh;
		uint64_t to;

		if (sd < 0 && errno == ENXIO) {
			done = size;	/* a hole to the end, as the store has it (cmp_holes) */
			break;
		}
		if (sd < 0)
			sd = (off_t)done;	/* no SEEK_DATA here: all data, as at ingest */
		sh = holes ? lseek(fd, sd, SEEK_HOLE) : (off_t)size;
		if (sh < 0 || (uint64_t)sh > size)
			sh = (off_t)size;
		to = cmp_range(r, fd, c, (uint64_t)sd, (uint64_t)sh, w);
		if (to != (uint64_t)sh) {
			done = to;
			break;
		}
		done = (uint64_t)sh;
	}
	if (done == size && holes)
		cmp_holes(fd, c, size, w);
rest:
	if (done < size)
		check_rest(r, c, done, size, w);
	store_content_close(c);
}

/*
 * Re-reads from source file @fd the extents of @in's content that use a damaged chunk; an
 * extent whose bytes still hash to the chunk's id is appended again (store_repair_chunk).
 */
static int repair_file(struct cmp_run *r, int fd, const struct store_inode *in)
{
	struct cmp_repair *rp = r->o->repair;
	struct store_content *c;
	struct store_extent e;
	uint64_t off = 0;
	int rc;

	if (!in->has_content || !fpset_has(rp->bad_contents, &in->content))
		return 0;
	rc = store_content_open(r->st, &in->content, &c);
	if (rc < 0)
		return 0;	/* a damaged content record cannot be rebuilt from here */
	while ((rc = store_content_extent(c, off, &e)) == 0) {
		struct fp256 id;
		enum codec_id cid;
		ssize_t n, sn;

		off = e.off + e.len;
		if (e.hole || !fpset_has(rp->bad_chunks, &e.chunk) ||
		    fpset_has(rp->fixed, &e.chunk) || e.len > r->scap)
			continue;
		n = pread(fd, r->sbuf, e.len, (off_t)e.off);
		if (n != (ssize_t)e.len)
			continue;
		fp_sha256(r->sbuf, e.len, &id);
		if (!fp_equal(&id, &e.chunk))
			continue;
		sn = codec_compress(r->codec, r->sbuf, e.len, r->cbuf, r->ccap, &cid);
		if (sn < 0) {
			rc = (int)sn;
			break;
		}
		rc = store_repair_chunk(r->st, &id, e.len, r->cbuf, (uint32_t)sn, cid);
		if (rc < 0)
			break;
		rc = fpset_add(rp->fixed, &id);
		if (rc < 0)
			break;
		r->out->repaired++;
		if (rp->repaired)
			rp->repaired(r->o->arg, &id, r->path.data, r->path.len, e.off);
	}
	store_content_close(c);
	return rc == -ENXIO ? 0 : rc;
}

/* The regular file @name of @dfd: its xattrs and bytes, or the repair pass. */
static int cmp_file(struct cmp_run *r, int dfd, const char *name, const struct store_inode *in,
		    struct cmp_why *w)
{
	struct stat fsb;
	int fd = src_open_file(dfd, name), rc = 0;

	if (fd < 0) {
		why_add(w, "cannot open the source: %s", strerror(-fd));
		return 0;
	}
	if (fstat(fd, &fsb) == 0 && !S_ISREG(fsb.st_mode)) {
		/* swapped since the lstat (O_NONBLOCK let a FIFO's open return) */
		why_add(w, "type differs");
	} else if (r->o->repair) {
		int rr = repair_file(r, fd, in);

		if (rr < 0)
			dfs_err("repair from %s failed: %s", name, dfs_strerror(rr));
	} else {
		rc = cmp_xattrs(fd, dfd, name, in, w);
		if (rc == 0)
			cmp_data(r, fd, in, w);
	}
	close(fd);
	return rc;
}

/*
 * A source directory being compared, one per level of the walk: what the recursive walk
 * kept on the C stack.
 */
struct cmp_frame {
	int fd;				/* the source directory (owned, but for the root's) */
	uint64_t dir;			/* its view directory */
	struct src_listing names;	/* sorted */
	bool listed;			/* its listing is whole: compare the view's names too */
	size_t next;			/* the next name to compare */
	size_t base;			/* its path: the first base bytes of r->path */
	bool note;			/* its own entry differs in atime or ctime only: noted
					 * once the inside is compared */
};

/*
 * Hard links: a multiply-linked entry's names must be the same set on both sides. The
 * first name seen of a source inode (or of a view inode) fixes its partner; a later name
 * with another partner is a difference.
 */
static int cmp_links(struct cmp_run *r, const struct stat *sb, uint64_t view_ino,
		     struct cmp_why *w)
{
	/* the key of a source inode: its number and filesystem, mixed, never 0 */
	uint64_t key = hset_mix64(hset_mix64((uint64_t)sb->st_dev) ^ (uint64_t)sb->st_ino);
	uint64_t seen;
	int rc;

	if (!key)
		key = 1;
	if (u64map_get(&r->src_to_view, key, &seen) && seen != view_ino) {
		why_add(w, "hard link broken: another name of this file in the source is "
			"another file in the store");
		return 0;
	}
	if (u64map_get(&r->view_to_src, view_ino, &seen) && seen != key) {
		why_add(w, "hard link broken: another name of this file in the store is "
			"another file in the source");
		return 0;
	}
	rc = u64map_put(&r->src_to_view, key, view_ino);
	if (rc == 0)
		rc = u64map_put(&r->view_to_src, view_ino, key);
	return rc;
}

/*
 * Is the entry at hand (r->path, named @name) left out by the ingest's --exclude? It is
 * then not compared (nor what is below it) and counted; it is not in the store, so it
 * fails the gate (DESIGN.md, "Trust") unless --accept-missing lists it: one line, saying
 * why it is not there, never "missing from the store".
 */
static bool cmp_excluded(struct cmp_run *r, const char *name, const struct stat *sb)
{
	bool x;

	if (!r->o->nexcludes)
		return false;
	dfs_buf_put_u8(&r->path, '\0');	/* a NUL-terminated path, the length kept */
	if (r->path.err)
		return false;
	r->path.len--;
	x = excl_match(r->o->excludes, r->o->nexcludes, (const char *)r->path.data, name,
		       S_ISDIR(sb->st_mode));
	if (x) {
		r->out->excluded++;
		if (!accepted(r->o, r->path.data, r->path.len)) {
			r->out->excluded_unaccepted++;
			report(r, CMP_DIFFERS, "excluded at ingest (--exclude): not in the store%s",
			       S_ISDIR(sb->st_mode) ? ", nor anything below it" : "");
		}
	}
	return x;
}

/* The symlink @name of @dfd against the stored target. 0 or -ENOMEM. */
static int cmp_target(int dfd, const char *name, const struct store_inode *in,
		      struct cmp_why *w)
{
	/* one byte more than the stored target: a longer one differs */
	char *tgt = malloc(in->target.len + 1);
	ssize_t n;

	if (!tgt)
		return -ENOMEM;
	n = readlinkat(dfd, name, tgt, in->target.len + 1);
	if (n < 0)
		why_add(w, "cannot read the symlink: %s", strerror(errno));
	else if ((size_t)n != in->target.len || memcmp(tgt, in->target.p, (size_t)n))
		why_add(w, "symlink target differs");
	free(tgt);
	return 0;
}

/*
 * The view's entry @name of @dir for the source entry at hand (r->path, lstat @sb): 1 and
 * its inode number and record (@in, released by the caller); 0 when it has none, which
 * is reported (missing from the store, or its record unreadable); -ENOMEM.
 */
static int view_entry(struct cmp_run *r, uint64_t dir, const char *name, size_t nlen,
		      const struct stat *sb, uint64_t *child, struct store_inode *in)
{
	uint8_t t;
	int grc = store_lookup(r->st, dir, name, nlen, child, &t);
	/* changed in or after the second the last ingest ended (it may have been walked
	 * past during the run): new on the drive since that ingest */
	bool fresh = r->o->last_ingest && sb->st_ctim.tv_sec >= r->o->last_ingest;

	if (grc == -ENAMETOOLONG)
		grc = -ENOENT;	/* a name no store holds (the ingest listed it as failed) */
	if (grc == 0 && (grc = store_get_inode(r->st, *child, in)) < 0)
		grc = grc == -ENOMEM ? grc : -EBADMSG;	/* named, but its record is gone */
	if (grc == -ENOMEM)
		return grc;
	if (grc == 0)
		return 1;
	if (grc != -ENOENT)	/* the store's records cannot be read there */
		report(r, CMP_DAMAGED, "the store's record cannot be read: %s",
		       dfs_strerror(grc));
	else if (!accepted(r->o, r->path.data, r->path.len))
		report(r, fresh ? CMP_CHANGED : CMP_DIFFERS, "missing from the store%s",
		       fresh ? " (new on the drive since the last ingest)" : "");
	progress(r);
	return 0;
}

/*
 * The entry @name of source directory @dfd against the entry of the same name in @dir;
 * r->path holds its relative path, @level its depth (1 for the root's entries). Every
 * difference of the entry is reported at once, where it happened. A directory to
 * compare the inside of is handed to the walk in @sub (fd, dir, note set; sub->fd stays
 * -1 otherwise).
 */
static int cmp_entry(struct cmp_run *r, int dfd, const char *name, uint64_t dir, size_t level,
		     struct cmp_frame *sub)
{
	struct store_inode in;
	struct stat sb;
	struct cmp_why w = { 0 };
	uint64_t child;
	int rc = 0, grc;

	if (fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
		/* listed a moment ago: the drive is changing, or failing */
		r->out->entries++;
		report(r, CMP_DIFFERS, "cannot stat the source: %s", strerror(errno));
		return 0;
	}
	if (cmp_excluded(r, name, &sb))
		return 0;
	r->out->entries++;
	r->out->files += S_ISREG(sb.st_mode);
	grc = view_entry(r, dir, name, strlen(name), &sb, &child, &in);
	if (grc < 0)
		return grc;
	if (grc == 0)
		return 0;
	cmp_stat(&in, &sb, &w);
	if ((in.mode & S_IFMT) != (sb.st_mode & S_IFMT))
		goto out_report;
	if (!S_ISDIR(sb.st_mode) && (sb.st_nlink > 1 || in.nlink > 1))
		rc = cmp_links(r, &sb, child, &w);
	if (rc == 0 && S_ISLNK(sb.st_mode))
		rc = cmp_target(dfd, name, &in, &w);
	if (rc == 0 && S_ISREG(sb.st_mode)) {
		rc = cmp_file(r, dfd, name, &in, &w);
	} else if (rc == 0 && S_ISDIR(sb.st_mode)) {
		/* a directory's own differences are reported, and what is inside compared */
		int fd = src_open_dir(dfd, name);

		if (fd < 0) {
			why_add(&w, "cannot open the directory: %s", strerror(-fd));
		} else {
			rc = cmp_xattrs(fd, dfd, name, &in, &w);
			if (rc == 0 && level > CMP_MAX_DEPTH) {
				why_add(&w, "a directory deeper than %u levels: not compared",
					CMP_MAX_DEPTH);
			} else if (rc == 0) {
				sub->fd = fd;
				sub->dir = child;
				fd = -1;
			}
			if (fd >= 0)
				close(fd);
		}
	} else if (rc == 0) {
		rc = cmp_xattrs(-1, dfd, name, &in, &w);
	}
out_report:
	if (rc == 0 && w.len) {
		report_why(r, &w);
	} else if (rc == 0 && (in.atime.tv_sec != sb.st_atim.tv_sec ||
			       !src_same_time(&in.ctime, &sb.st_ctim))) {
		if (sub->fd >= 0)
			sub->note = true;	/* after what is inside, as it always came */
		else
			report(r, CMP_NOTE, "atime or ctime differ (not a failure)");
	}
	store_inode_release(&in);
	progress(r);
	return rc < 0 ? rc : 0;
}

/* srcfile.h's order (bytes, a prefix first), for names that need not end in a NUL */
static int name_cmp(const void *a, const void *b)
{
	const struct src_name *x = a, *y = b;
	int c = memcmp(x->p, y->p, x->len < y->len ? x->len : y->len);

	return c ? c : (x->len > y->len) - (x->len < y->len);
}

/*
 * The entries of @names (sorted) against view directory @dir the other way round: every
 * name in the view must be on the drive. A name missing from the drive is a difference
 * (the drive changed since its last ingest, or this is not the drive), unless accepted.
 */
static int cmp_view_names(struct cmp_run *r, uint64_t dir, const struct src_name *names,
			  size_t n)
{
	size_t base = r->path.len;
	struct store_dir_iter *di;
	const uint8_t *nm;
	size_t nl;
	uint64_t c;
	uint8_t t;
	int rc = store_dir_open(r->st, dir, NULL, 0, &di);

	if (rc < 0) {
		report(r, CMP_DAMAGED, "the store's directory cannot be listed: %s",
		       dfs_strerror(rc));
		return rc == -ENOMEM ? rc : 0;
	}
	while ((rc = store_dir_next(di, &nm, &nl, &c, &t)) == 1) {
		struct src_name key = { (const char *)nm, nl };

		if (n && bsearch(&key, names, n, sizeof(*names), name_cmp))
			continue;
		r->path.len = base;
		if (base)
			dfs_buf_put_u8(&r->path, '/');
		dfs_buf_append(&r->path, nm, nl);
		if (!accepted(r->o, r->path.data, r->path.len))
			report(r, CMP_CHANGED, "missing from the drive (in the store since "
			       "the last ingest)");
	}
	store_dir_close(di);
	r->path.len = base;
	if (rc < 0)
		report(r, CMP_DAMAGED, "the store's directory cannot be listed: %s",
		       dfs_strerror(rc));
	return rc == -ENOMEM ? rc : 0;
}

/*
 * Makes the source directory open at @fd (@f->fd, @f->dir and @f->note set by the caller)
 * the top of the walk, listed; r->path holds its path. 0 or -ENOMEM.
 */
static int frame_enter(struct cmp_run *r, struct cmp_frame *f)
{
	int rc = src_list_dir(f->fd, &f->names);

	f->base = r->path.len;
	f->next = 0;
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0) {
		report(r, CMP_DIFFERS, "cannot list the source: %s", strerror(-rc));
		return 0;
	}
	/* a listing that ended in an error may have left names out */
	if (f->names.err)
		report(r, CMP_DIFFERS, "the listing of the source failed: %s",
		       strerror(-f->names.err));
	f->listed = !f->names.err;
	return 0;
}

static void frame_release(struct cmp_frame *f, bool own_fd)
{
	src_listing_release(&f->names);
	if (own_fd && f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

/*
 * Every entry below source directory @dfd (the caller's) against view directory @dir,
 * both ways: each directory's entries in sorted order, each subdirectory's inside right
 * after its own entry, then the names of the view missing from the source directory.
 */
static int cmp_walk(struct cmp_run *r, int dfd, uint64_t dir)
{
	struct cmp_frame *v = malloc(64 * sizeof(*v));
	size_t n = 0, cap = 64;
	int rc;

	if (!v)
		return -ENOMEM;
	v[0] = (struct cmp_frame){ .fd = dfd, .dir = dir };
	rc = frame_enter(r, &v[0]);
	n = 1;
	while (n && rc == 0) {
		struct cmp_frame *f = &v[n - 1], sub = { .fd = -1 };
		const struct src_name *nm;

		if (f->next == f->names.n) {
			bool note = f->note;

			r->path.len = f->base;
			if (f->listed && !r->o->repair)
				rc = cmp_view_names(r, f->dir, f->names.v, f->names.n);
			frame_release(f, n > 1);
			n--;
			/* the directory's own note, at its path */
			if (rc == 0 && note)
				report(r, CMP_NOTE, "atime or ctime differ (not a failure)");
			continue;
		}
		nm = &f->names.v[f->next++];
		r->path.len = f->base;
		if (f->base)
			dfs_buf_put_u8(&r->path, '/');
		dfs_buf_append(&r->path, nm->p, nm->len);
		if (r->path.err) {
			rc = r->path.err;
			break;
		}
		rc = cmp_entry(r, f->fd, nm->p, f->dir, n, &sub);
		if (rc < 0 || sub.fd < 0) {
			if (sub.fd >= 0)
				close(sub.fd);
			continue;
		}
		if (n == cap) {
			struct cmp_frame *x = realloc(v, cap * 2 * sizeof(*x));

			if (!x) {
				close(sub.fd);
				rc = -ENOMEM;
				break;
			}
			v = x;
			cap *= 2;
		}
		v[n] = sub;
		rc = frame_enter(r, &v[n]);
		n++;
	}
	while (n) {
		frame_release(&v[n - 1], n > 1);
		n--;
	}
	free(v);
	return rc;
}

static int identity_check(struct store *st, const struct store_source *src, const char *path,
			  const char *fsid, const struct stat *sb, char *msg, size_t mlen);

int cmp_identity(struct store *st, const struct store_source *src, const char *path,
		 char *msg, size_t mlen)
{
	struct stat sb;
	char fsid[256];
	int fd, rc;

	fd = src_open_root(path);
	if (fd >= 0 && fstat(fd, &sb) < 0) {
		rc = -errno;
		close(fd);
		fd = rc;
	}
	if (fd < 0) {
		snprintf(msg, mlen, "%s: %s", path, strerror(-fd));
		return fd;
	}
	src_fsid(fd, &sb, fsid, sizeof(fsid));
	close(fd);
	return identity_check(st, src, path, fsid, &sb, msg, mlen);
}

/* The identity @fsid and root @sb of the drive at @path against source @src's. */
static int identity_check(struct store *st, const struct store_source *src, const char *path,
			  const char *fsid, const struct stat *sb, char *msg, size_t mlen)
{
	struct store_inode root;
	int rc;

	if (src->fsid.len != strlen(fsid) || memcmp(src->fsid.p, fsid, src->fsid.len)) {
		const char *colon = strrchr(fsid, ':');
		size_t fl = colon ? (size_t)(colon - fsid) : 0;

		/* "fsid:<f_fsid>:<root inode>": the same filesystem, another directory */
		if (!strncmp(fsid, "fsid:", 5) && fl && src->fsid.len > fl &&
		    !memcmp(src->fsid.p, fsid, fl) && src->fsid.p[fl] == ':') {
			snprintf(msg, mlen, "%s is not the source '%.*s': it is another directory "
				 "of the same filesystem (%s, the source was %.*s)", path,
				 (int)src->name.len, (const char *)src->name.p, fsid,
				 (int)src->fsid.len, (const char *)src->fsid.p);
			return -EXDEV;
		}
		snprintf(msg, mlen, "%s is not the source '%.*s': it is on filesystem %s, the "
			 "source was ingested from filesystem %.*s (nothing mounted there, or "
			 "another drive?)", path, (int)src->name.len, (const char *)src->name.p,
			 fsid, (int)src->fsid.len, (const char *)src->fsid.p);
		return -EXDEV;
	}
	rc = store_get_inode(st, src->root_ino, &root);
	if (rc < 0) {
		snprintf(msg, mlen, "the view of source '%.*s' has no root: %s",
			 (int)src->name.len, (const char *)src->name.p, dfs_strerror(rc));
		return rc;
	}
	if (root.src_ino != (uint64_t)sb->st_ino) {
		snprintf(msg, mlen, "%s is not the source '%.*s': it is directory %llu of "
			 "filesystem %s, the source was directory %llu of it (another directory "
			 "of the same drive?)", path, (int)src->name.len, (const char *)src->name.p,
			 (unsigned long long)sb->st_ino, fsid, (unsigned long long)root.src_ino);
		rc = -EXDEV;
	}
	store_inode_release(&root);
	return rc;
}

static int commit_repairs(struct store *st)
{
	struct store_txn *tx;
	int rc = store_txn_begin(st, &tx);

	if (rc == 0)
		rc = store_txn_commit(tx);
	if (rc < 0)
		dfs_err("the repairs could not be committed: %s", dfs_strerror(rc));
	return rc;
}

int cmp_source(struct store *st, struct codec *codec, uint64_t root_ino, const char *path,
	       const struct cmp_opts *o, struct cmp_stats *out)
{
	struct cmp_run r = { .st = st, .codec = codec, .o = o, .out = out };
	int dfd, rc;

	memset(out, 0, sizeof(*out));
	if (o->repair && (!o->repair->bad_chunks || !o->repair->bad_contents ||
			  !o->repair->fixed))
		return -EINVAL;
	dfd = src_open_root(path);
	if (dfd < 0)
		return dfd;
	r.scap = store_params(st)->cdc.max_size;
	if (r.scap < CMP_READ)
		r.scap = CMP_READ;
	r.sbuf = malloc(r.scap);
	r.rbuf = malloc(CMP_READ);
	if (o->repair) {
		r.ccap = codec_bound(r.scap);
		r.cbuf = malloc(r.ccap);
	}
	if (!r.sbuf || !r.rbuf || (o->repair && !r.cbuf)) {
		rc = -ENOMEM;
		goto out;
	}
	/* the path of an entry one level below the deepest directory entered */
	dfs_buf_init(&r.path, (size_t)(CMP_MAX_DEPTH + 2) * (NAME_MAX + 1));
	rc = cmp_walk(&r, dfd, root_ino);
	dfs_buf_release(&r.path);
	if (rc == 0 && o->repair && out->repaired)
		rc = commit_repairs(st);
out:
	u64map_release(&r.src_to_view);
	u64map_release(&r.view_to_src);
	free(r.cbuf);
	free(r.rbuf);
	free(r.sbuf);
	close(dfd);
	return rc;
}

/* ---- the gate for a remote drive: the same comparison, fed by defrag-ingest --serve ---- */

/* A directory of the remote walk being compared (cmp_frame without an fd). */
struct rframe {
	uint64_t dir;			/* its view directory; 0: not compared (skipped) */
	struct src_name *names;		/* its sorted listing, into @buf */
	size_t n;
	uint8_t *buf;
	bool listed;
	bool note;
	size_t base;			/* its path: the first base bytes of r->path */
};

/* A file whose content the remote is sending. */
struct rfile {
	uint8_t *path;
	size_t len;
	struct store_inode in;
	struct cmp_why w;
	struct store_content_builder *cb;
	struct fp256 small;		/* a file stored inline: the SHA-256 of its bytes */
	bool has_small;
	bool note;
	struct rfile *next;
};

struct rcmp {
	struct cmp_run *r;
	struct wire_link link;
	struct rframe *v;
	size_t n, cap;
	struct rfile *head, *tail;
	struct dfs_buf answers;
	struct wire_chunk *chunks;
	size_t nchunks;
	uint64_t inline_max;
	char *msg;
	size_t mlen;
};

static void rframe_release(struct rframe *f)
{
	free(f->names);
	free(f->buf);
	memset(f, 0, sizeof(*f));
}

static void rfile_free(struct rfile *f)
{
	free(f->path);
	store_inode_release(&f->in);
	store_cb_free(f->cb);
	free(f);
}

/* Ends the frames deeper than @depth: each one's view names against its listing. */
static int rframes_pop(struct rcmp *c, size_t depth)
{
	struct cmp_run *r = c->r;
	int rc = 0;

	while (c->n > depth && rc == 0) {
		struct rframe *f = &c->v[--c->n];

		r->path.len = f->base;
		if (f->dir && f->listed)
			rc = cmp_view_names(r, f->dir, f->names, f->n);
		if (rc == 0 && f->dir && f->note)
			report(r, CMP_NOTE, "atime or ctime differ (not a failure)");
		rframe_release(f);
	}
	return rc;
}

static int rframe_push(struct rcmp *c, uint64_t dir, const struct wire_entry *e, bool note)
{
	struct rframe *f;

	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		struct rframe *x = realloc(c->v, cap * sizeof(*x));

		if (!x)
			return -ENOMEM;
		c->v = x;
		c->cap = cap;
	}
	f = &c->v[c->n];
	memset(f, 0, sizeof(*f));
	f->dir = dir;
	f->note = note;
	f->base = c->r->path.len;
	f->listed = dir && (e->flags & WIRE_E_LISTED);
	if (dir && e->names_len) {
		size_t k = 0;

		f->buf = malloc(e->names_len);
		for (size_t pos = 0; pos < e->names_len; pos += strlen((char *)e->names + pos) + 1)
			k++;
		f->names = malloc(k * sizeof(*f->names));
		if (!f->buf || !f->names) {
			rframe_release(f);
			return -ENOMEM;
		}
		memcpy(f->buf, e->names, e->names_len);
		for (size_t pos = 0; pos < e->names_len; f->n++) {
			f->names[f->n].p = (const char *)f->buf + pos;
			f->names[f->n].len = strlen(f->names[f->n].p);
			pos += f->names[f->n].len + 1;
		}
	}
	c->n++;
	return 0;
}

/* The entry @e of the remote walk (depth >= 1) against the view; its answer if asked. */
static int rcmp_entry(struct rcmp *c, struct wire_entry *e)
{
	struct cmp_run *r = c->r;
	struct rframe *pf;
	struct store_inode in = { 0 };
	struct cmp_why w = { 0 };
	char name[NAME_MAX + 1];
	uint64_t child;
	uint8_t answer = 0;
	bool subdir = false, note = false;
	int rc = 0, grc;

	rc = rframes_pop(c, e->depth);
	if (rc < 0)
		return rc;
	pf = &c->v[c->n - 1];
	r->path.len = pf->base;
	if (!pf->dir)	/* below an entry not compared: only walked past */
		goto out;
	if (pf->base)
		dfs_buf_put_u8(&r->path, '/');
	dfs_buf_append(&r->path, e->name, e->name_len);
	if (r->path.err)
		return r->path.err;
	memcpy(name, e->name, e->name_len);
	name[e->name_len] = '\0';
	if (cmp_excluded(r, name, &e->sb))
		goto out;
	r->out->entries++;
	r->out->files += S_ISREG(e->sb.st_mode);
	grc = view_entry(r, pf->dir, name, e->name_len, &e->sb, &child, &in);
	if (grc < 0)
		return grc;
	if (grc == 0)
		goto out;
	cmp_stat(&in, &e->sb, &w);
	if ((in.mode & S_IFMT) != (e->sb.st_mode & S_IFMT))
		goto report;
	if (!S_ISDIR(e->sb.st_mode) && (e->sb.st_nlink > 1 || in.nlink > 1))
		rc = cmp_links(r, &e->sb, child, &w);
	if (rc == 0 && S_ISLNK(e->sb.st_mode) && e->err)
		why_add(&w, "cannot read the symlink: %s", strerror((int)e->err));
	else if (rc == 0 && S_ISLNK(e->sb.st_mode) && (e->target_len != in.target.len ||
						    memcmp(e->target, in.target.p, e->target_len)))
		why_add(&w, "symlink target differs");
	if (e->err && e->why == WHY_OPENDIR)
		why_add(&w, "cannot open the directory: %s", strerror((int)e->err));
	else if (e->err && e->why == WHY_XATTRS)
		why_add(&w, "cannot read the extended attributes: %s", strerror((int)e->err));
	else if (!S_ISREG(e->sb.st_mode))
		cmp_xattr_sets(e->xattrs, e->nxattrs, &in, &w);
	if (rc == 0 && S_ISDIR(e->sb.st_mode) && !(e->err && e->why == WHY_OPENDIR)) {
		if (e->depth > CMP_MAX_DEPTH)
			why_add(&w, "a directory deeper than %u levels: not compared",
				CMP_MAX_DEPTH);
		else
			subdir = true;
	}
	if (rc == 0 && S_ISREG(e->sb.st_mode) && (e->flags & WIRE_E_ASK)) {
		/* compared when its content has come (FEND) */
		struct rfile *f = calloc(1, sizeof(*f));

		if (!f || !(f->path = malloc(r->path.len + 1)) || store_cb_new(&f->cb) < 0) {
			if (f)
				rfile_free(f);
			store_inode_release(&in);
			return -ENOMEM;
		}
		memcpy(f->path, r->path.data, r->path.len);
		f->len = r->path.len;
		f->in = in;
		f->w = w;
		f->note = in.atime.tv_sec != e->sb.st_atim.tv_sec ||
			  !src_same_time(&in.ctime, &e->sb.st_ctim);
		memset(&in, 0, sizeof(in));
		if (c->tail)
			c->tail->next = f;
		else
			c->head = f;
		c->tail = f;
		answer = WIRE_A_READ | WIRE_A_HASH;
		goto out;
	}
report:
	if (rc == 0 && w.len)
		report_why(r, &w);
	else if (rc == 0 && (in.atime.tv_sec != e->sb.st_atim.tv_sec ||
			     !src_same_time(&in.ctime, &e->sb.st_ctim)))
		note = true;
	if (note && !subdir)
		report(r, CMP_NOTE, "atime or ctime differ (not a failure)");
	progress(r);
out:
	if (rc == 0 && S_ISDIR(e->sb.st_mode) && !(e->err && e->why == WHY_OPENDIR))
		rc = rframe_push(c, subdir ? child : 0, e, note);
	store_inode_release(&in);
	if (rc == 0 && (e->flags & WIRE_E_ASK))
		rc = dfs_buf_put_u8(&c->answers, answer);
	return rc;
}

/* The oldest file being sent: its content against the store's, once FEND came. */
static void rcmp_file(struct rcmp *c, struct rfile *f, const struct wire_fend *fe)
{
	struct cmp_run *r = c->r;
	struct store_content *sc = NULL;
	uint64_t size = 0, data;
	struct fp256 cid;
	int rc;

	r->path.len = 0;
	dfs_buf_append(&r->path, f->path, f->len);
	r->out->bytes += fe->bytes_read;
	if (fe->err) {
		why_add(&f->w, "cannot read the source: %s", strerror((int)fe->err));
		goto report;
	}
	cmp_xattr_sets(fe->xattrs, fe->nxattrs, &f->in, &f->w);
	if (!f->in.has_content) {
		why_add(&f->w, "no content in the store");
		f->w.damaged = true;
		goto report;
	}
	rc = store_content_open(r->st, &f->in.content, &sc);
	if (rc < 0) {
		why_add(&f->w, "content object unreadable: %s", dfs_strerror(rc));
		f->w.damaged = true;
		goto report;
	}
	size = store_content_size(sc);
	if (f->in.size <= c->inline_max && size != f->in.size) {
		/* the inode and its content disagree: never read past the buffer */
		why_add(&f->w, "content object of %" PRIu64 " bytes for a file of %" PRIu64,
			size, f->in.size);
		f->w.damaged = true;
	} else if (f->in.size <= c->inline_max) {
		/* stored inline: its bytes, hashed, against the SHA-256 the remote sent */
		ssize_t m = size ? store_content_pread(r->st, r->codec, sc, r->rbuf,
						       (size_t)size, 0) : 0;
		struct fp256 h;

		fp_sha256(r->rbuf, m > 0 ? (size_t)m : 0, &h);
		if (m < 0 || (uint64_t)m != size) {
			why_add(&f->w, "store data unreadable: %s", m < 0 ?
				dfs_strerror((int)m) : "it ends early");
			f->w.damaged = true;
		} else if ((uint64_t)fe->sb.st_size != size ||
			   (size && (!f->has_small || !fp_equal(&h, &f->small)))) {
			why_add(&f->w, "content differs");
		}
	} else if (store_cb_finish(f->cb, &cid, &size, &data) < 0 ||
		   !fp_equal(&cid, &f->in.content)) {
		why_add(&f->w, "content differs (another content id, or other holes)");
	}
	/* the store's copy read whole, as cmp_source reads it: damage is told from change */
	if (f->in.size > c->inline_max)
		check_rest(r, sc, 0, store_content_size(sc), &f->w);
report:
	store_content_close(sc);
	if (f->w.len)
		report_why(r, &f->w);
	else if (f->note)
		report(r, CMP_NOTE, "atime or ctime differ (not a failure)");
	progress(r);
}

/* A frame of the file being sent. */
static int rcmp_content(struct rcmp *c, uint8_t t, const uint8_t *p, size_t n)
{
	struct rfile *f = c->head;
	struct wire_fend fe;
	struct dfs_buf b;
	uint64_t v;
	int rc = 0;

	if (!f)
		return -EBADMSG;
	switch (t) {
	case WIRE_RESET:
		store_cb_reset(f->cb);
		f->has_small = false;
		return n ? -EBADMSG : 0;
	case WIRE_HOLE:
		rc = wire_dec_u64(p, n, &v);
		return rc ? rc : v ? store_cb_add_hole(f->cb, v) : -EBADMSG;
	case WIRE_INLINE: {	/* an empty file (any other small one comes hashed) */
		const uint8_t *bytes;
		size_t bl;
		uint32_t raw;
		uint8_t codec;

		rc = wire_dec_inline(p, n, &codec, &raw, &bytes, &bl);
		return rc ? rc : raw ? -EBADMSG : 0;
	}
	case WIRE_CHUNKS:
		free(c->chunks);
		c->chunks = NULL;
		rc = wire_dec_chunks(p, n, store_params(c->r->st)->cdc.max_size, &c->chunks,
				     &c->nchunks);
		for (size_t i = 0; i < c->nchunks && rc == 0; i++)
			rc = store_cb_add_chunk(f->cb, &c->chunks[i].id, c->chunks[i].len);
		if (rc == 0 && c->nchunks == 1 && f->in.size <= c->inline_max) {
			f->small = c->chunks[0].id;
			f->has_small = true;
		}
		/* nothing is asked for: no file data crosses */
		dfs_buf_init(&b, c->nchunks + 64);
		wire_begin(&b, WIRE_NEED);
		dfs_buf_put_varint(&b, c->nchunks);
		dfs_buf_reserve(&b, c->nchunks);
		for (size_t i = 0; i < c->nchunks; i++)
			dfs_buf_put_u8(&b, 0);
		if (rc == 0)
			rc = wire_end(&b, 0);
		if (rc == 0)
			rc = wire_send(&c->link.c, &b, false);
		dfs_buf_release(&b);
		return rc;
	case WIRE_FEND:
		rc = wire_dec_fend(p, n, &fe);
		if (rc < 0)
			return rc;
		rcmp_file(c, f, &fe);
		src_xattrs_free(fe.xattrs, fe.nxattrs);
		c->head = f->next;
		if (!c->head)
			c->tail = NULL;
		rfile_free(f);
		return 0;
	default:
		return -EBADMSG;
	}
}

static int rcmp_loop(struct rcmp *c, uint64_t root_ino)
{
	bool root = false;
	int rc = 0;

	for (;;) {
		const uint8_t *p;
		size_t n;
		uint8_t t;

		if (c->answers.len) {
			struct dfs_buf b;

			dfs_buf_init(&b, c->answers.len + 64);
			wire_begin(&b, WIRE_ANSWER);
			dfs_buf_put_bytes(&b, c->answers.data, c->answers.len);
			rc = wire_end(&b, 0);
			if (rc == 0)
				rc = wire_send(&c->link.c, &b, false);
			dfs_buf_release(&b);
			dfs_buf_clear(&c->answers);
		}
		if (rc == 0)
			rc = wire_read(&c->link.c, &t, &p, &n);
		if (rc < 0)
			return rc;
		switch (t) {
		case WIRE_FS:
		case WIRE_SKIPPED:
			break;
		case WIRE_ENTRY: {
			struct wire_entry e;

			rc = wire_dec_entry(p, n, &e);
			if (rc < 0)
				return rc;
			if (e.depth == 0 ? root : !root || e.depth > c->n) {
				rc = -EBADMSG;
			} else if (e.depth == 0) {
				root = true;
				c->r->path.len = 0;
				rc = rframe_push(c, root_ino, &e, false);
				if (rc == 0 && !(e.flags & WIRE_E_LISTED))
					report(c->r, CMP_DIFFERS, "cannot list the source");
			} else {
				rc = rcmp_entry(c, &e);
			}
			src_xattrs_free(e.xattrs, e.nxattrs);
			break;
		}
		case WIRE_FAIL: {
			const uint8_t *path;
			size_t pl;
			char why[300];

			rc = wire_dec_fail(p, n, &path, &pl, why, sizeof(why));
			if (rc == 0) {
				c->r->path.len = 0;
				dfs_buf_append(&c->r->path, path, pl);
				c->r->out->entries++;
				report(c->r, CMP_DIFFERS, "%s", why);
			}
			break;
		}
		case WIRE_ERROR: {
			char m[512];

			if (wire_dec_text(p, n, m, sizeof(m)) < 0)
				snprintf(m, sizeof(m), "(a malformed message)");
			snprintf(c->msg, c->mlen, "the remote side: %s", m);
			return -EPROTO;
		}
		case WIRE_DONE:
			if (n || c->head || !root)
				return -EBADMSG;
			return rframes_pop(c, 0);
		case WIRE_RESET: case WIRE_HOLE: case WIRE_INLINE: case WIRE_CHUNKS:
		case WIRE_FEND:
			rc = rcmp_content(c, t, p, n);
			break;
		default:
			return -EBADMSG;
		}
		if (rc < 0)
			return rc;
	}
}

/* ---- the repair from a remote drive: the damaged chunks' extents fetched (FETCH) ---- */

#define RFETCH_WINDOW 32	/* requests in flight: a round trip per 32 chunks */
#define RFETCH_TRIES 4		/* of them for one chunk (from as many extents): when the
				 * first file changed there (MISS), the next may still hold it */

struct rfetch_req {
	struct fp256 id;
	uint32_t len;
	uint64_t off;
	uint8_t *path;		/* source-relative, no leading '/' */
	size_t plen;
};

struct rfetch {
	struct cmp_run *r;
	struct wire_link *link;
	struct rfetch_req q[RFETCH_WINDOW];
	size_t nq;
	uint8_t *raw;		/* a chunk decompressed: the store's largest */
	char *msg;
	size_t mlen;
};

static bool rfetch_queued(const struct rfetch *f, const struct fp256 *id)
{
	unsigned k = 0;

	for (size_t i = 0; i < f->nq; i++)
		k += fp_equal(&f->q[i].id, id);
	return k >= RFETCH_TRIES;
}

/* The answer to request @q: DATA (checked against the id, then appended) or MISS. */
static int rfetch_take(struct rfetch *f, const struct rfetch_req *q)
{
	struct cmp_run *r = f->r;
	struct cmp_repair *rp = r->o->repair;
	const uint8_t *p, *bytes;
	struct fp256 got;
	uint32_t raw, why;
	uint8_t t, codec;
	size_t n, blen;
	int rc = wire_read(&f->link->c, &t, &p, &n);

	if (rc < 0)
		return rc;
	if (t == WIRE_MISS)
		return wire_dec_miss(p, n, &why);	/* changed there: not repaired from it */
	if (t == WIRE_ERROR) {
		char m[512];

		if (wire_dec_text(p, n, m, sizeof(m)) < 0)
			snprintf(m, sizeof(m), "(a malformed message)");
		snprintf(f->msg, f->mlen, "the remote side: %s", m);
		return -EPROTO;
	}
	if (t != WIRE_DATA)
		return -EBADMSG;
	rc = wire_dec_data(p, n, &codec, &raw, &bytes, &blen);
	if (rc < 0)
		return rc;
	if (raw != q->len)
		return -EBADMSG;
	/* never a wrong byte stored: the bytes must be the chunk's */
	rc = codec_decompress(r->codec, (enum codec_id)codec, bytes, blen, f->raw, raw);
	if (rc == 0) {
		fp_sha256(f->raw, raw, &got);
		if (!fp_equal(&got, &q->id))
			rc = -EBADMSG;
	}
	if (rc < 0) {
		snprintf(f->msg, f->mlen, "a chunk of %.*s from the remote side does not match "
			 "its id: nothing of it was stored", (int)(q->plen > 300 ? 300 : q->plen),
			 (const char *)q->path);
		return -EBADMSG;
	}
	if (fpset_has(rp->fixed, &q->id))
		return 0;
	rc = store_repair_chunk(r->st, &q->id, raw, bytes, (uint32_t)blen, (enum codec_id)codec);
	if (rc < 0)
		return rc;
	rc = fpset_add(rp->fixed, &q->id);
	if (rc < 0)
		return rc;
	r->out->repaired++;
	if (rp->repaired)
		rp->repaired(r->o->arg, &q->id, q->path, q->plen, q->off);
	return 0;
}

/* Sends the requests queued, then takes their answers in order. */
static int rfetch_flush(struct rfetch *f)
{
	struct dfs_buf b;
	int rc = 0;

	dfs_buf_init(&b, (size_t)RFETCH_WINDOW * (PATH_MAX + 64));
	for (size_t i = 0; i < f->nq && rc == 0; i++) {
		size_t start = b.len;

		wire_begin(&b, WIRE_FETCH);
		dfs_buf_put_bytes(&b, f->q[i].path, f->q[i].plen);
		dfs_buf_put_u64(&b, f->q[i].off);
		dfs_buf_put_u32(&b, f->q[i].len);
		dfs_buf_append(&b, f->q[i].id.b, sizeof(f->q[i].id.b));
		rc = wire_end(&b, start);
	}
	if (rc == 0)
		rc = wire_send(&f->link->c, &b, true);
	dfs_buf_release(&b);
	for (size_t i = 0; i < f->nq && rc == 0; i++)
		rc = rfetch_take(f, &f->q[i]);
	for (size_t i = 0; i < f->nq; i++)
		free(f->q[i].path);
	f->nq = 0;
	return rc;
}

/* A view entry: a file using a damaged chunk has each such extent fetched. */
static int rfetch_entry(void *arg, const struct dfs_buf *path, size_t depth, uint64_t child,
			uint8_t dtype)
{
	struct rfetch *f = arg;
	struct cmp_run *r = f->r;
	struct cmp_repair *rp = r->o->repair;
	struct store_inode in;
	struct store_content *c;
	struct store_extent e;
	uint64_t off = 0;
	int rc;

	(void)depth;
	if (dtype == DT_DIR)
		return 1;
	if (dtype != DT_REG || store_get_inode(r->st, child, &in) < 0)
		return 0;	/* an unreadable inode: the gate names it */
	r->out->entries++;
	if (!in.has_content || !fpset_has(rp->bad_contents, &in.content) ||
	    store_content_open(r->st, &in.content, &c) < 0) {
		store_inode_release(&in);
		return 0;	/* a damaged content record cannot be rebuilt from here */
	}
	store_inode_release(&in);
	while ((rc = store_content_extent(c, off, &e)) == 0) {
		struct rfetch_req *q;

		off = e.off + e.len;
		if (e.hole || !fpset_has(rp->bad_chunks, &e.chunk) ||
		    fpset_has(rp->fixed, &e.chunk) || rfetch_queued(f, &e.chunk) ||
		    e.len > store_params(r->st)->cdc.max_size || path->len < 2)
			continue;
		q = &f->q[f->nq];
		q->path = malloc(path->len - 1);
		if (!q->path) {
			rc = -ENOMEM;
			break;
		}
		memcpy(q->path, path->data + 1, path->len - 1);	/* without the leading '/' */
		q->plen = path->len - 1;
		q->id = e.chunk;
		q->len = e.len;
		q->off = e.off;
		if (++f->nq == RFETCH_WINDOW) {
			rc = rfetch_flush(f);
			if (rc < 0)
				break;
		}
	}
	store_content_close(c);
	return rc == -ENXIO ? 0 : rc;
}

/* cmp_remote's repair pass, on a link opened with WIRE_H_FETCH. */
static int remote_repair(struct cmp_run *r, struct wire_link *link, uint64_t root_ino,
			 char *msg, size_t mlen)
{
	struct rfetch f = { .r = r, .link = link, .msg = msg, .mlen = mlen };
	struct dfs_buf path, b;
	int rc;

	f.raw = malloc(store_params(r->st)->cdc.max_size);
	if (!f.raw)
		return -ENOMEM;
	dfs_buf_init(&path, 1u << 20);
	rc = store_walk_tree(r->st, root_ino, &path, rfetch_entry, &f);
	if (rc == 0)
		rc = rfetch_flush(&f);
	for (size_t i = 0; i < f.nq; i++)
		free(f.q[i].path);
	dfs_buf_release(&path);
	free(f.raw);
	if (rc == 0) {	/* the end of the requests: the remote side exits */
		dfs_buf_init(&b, 64);
		wire_begin(&b, WIRE_DONE);
		rc = wire_end(&b, 0);
		if (rc == 0)
			rc = wire_send(&link->c, &b, true);
		dfs_buf_release(&b);
	}
	if (rc == 0 && r->out->repaired)
		rc = commit_repairs(r->st);
	return rc;
}

int cmp_remote(struct store *st, struct codec *codec, const struct store_source *src,
	       const char *spec, const char *rsh, const char *remote_cmd,
	       const struct cmp_opts *o, struct cmp_stats *out, uint64_t *received, char *msg,
	       size_t mlen)
{
	struct cmp_run r = { .st = st, .codec = codec, .o = o, .out = out };
	struct wire_link_opts a = { .rsh = rsh, .remote_cmd = remote_cmd,
				    .params = store_params(st) };
	struct rcmp c = { .r = &r, .msg = msg, .mlen = mlen };
	struct stat rootsb;
	char fsid[256];
	uint64_t fs_id;
	int rc;

	memset(out, 0, sizeof(*out));
	*received = 0;
	msg[0] = '\0';
	if (o->repair && (!o->repair->bad_chunks || !o->repair->bad_contents ||
			  !o->repair->fixed))
		return -EINVAL;
	a.fetch = o->repair != NULL;
	c.inline_max = store_params(st)->inline_max;
	dfs_buf_init(&c.answers, 1u << 20);
	r.rbuf = malloc(CMP_READ > c.inline_max ? CMP_READ : c.inline_max);
	dfs_buf_init(&r.path, (size_t)(CMP_MAX_DEPTH + 2) * (NAME_MAX + 1));
	rc = r.rbuf ? wire_link_open(&c.link, spec, &a, &rootsb, fsid, sizeof(fsid), &fs_id, msg,
				     mlen) : -ENOMEM;
	if (rc == 0)
		rc = identity_check(st, src, spec, fsid, &rootsb, msg, mlen);
	if (rc == 0) {
		rc = o->repair ? remote_repair(&r, &c.link, src->root_ino, msg, mlen) :
				 rcmp_loop(&c, src->root_ino);
		if (rc < 0 && !msg[0])
			snprintf(msg, mlen, "%s: %s", spec, wire_stream_error(rc));
	}
	*received = atomic_load(&c.link.c.bytes_in);
	wire_link_close(&c.link, rc < 0);
	while (c.head) {
		struct rfile *f = c.head;

		c.head = f->next;
		rfile_free(f);
	}
	while (c.n)
		rframe_release(&c.v[--c.n]);
	free(c.v);
	free(c.chunks);
	dfs_buf_release(&c.answers);
	dfs_buf_release(&r.path);
	u64map_release(&r.src_to_view);
	u64map_release(&r.view_to_src);
	free(r.rbuf);
	return rc;
}
