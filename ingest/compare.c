/*
 * compare.c - a source drive against the store's view of it, and the repair of damaged
 * chunks from it (see compare.h).
 *
 * One recursive walk serves both passes: cmp_dir lists a source directory, cmp_entry
 * compares one entry with the view's inode of the same name (cmp_stat, then symlink
 * target, xattrs, bytes) and descends into directories that match. In the repair pass the
 * byte comparison of a regular file is replaced by repair_file and nothing is reported.
 * Source bytes are read in 1 MiB steps (or a whole chunk, for a repair) into buffers
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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "srcfile.h"
#include "store/buf.h"
#include "store/log.h"

#define CMP_READ (1u << 20)	/* bytes compared per step */
#define CMP_MAX_DEPTH 8192
#define CMP_WHY 600		/* the longest difference message */

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
};

static void report(struct cmp_run *r, bool problem, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void report(struct cmp_run *r, bool problem, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (r->o->repair)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (problem)
		r->out->problems++;
	else
		r->out->notes++;
	if (r->o->diff)
		r->o->diff(r->o->arg, problem, r->path.data ? r->path.data : (const uint8_t *)"",
			   r->path.len, msg);
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

/* The inode's own fields against lstat's: the first difference into @why. */
static void cmp_stat(const struct store_inode *in, const struct stat *sb, char *why, size_t wl)
{
	if ((in->mode & S_IFMT) != (sb->st_mode & S_IFMT))
		snprintf(why, wl, "type differs");
	else if (in->mode != sb->st_mode)
		snprintf(why, wl, "mode %o in the store, %o in the source", in->mode & 07777,
			 sb->st_mode & 07777);
	else if (in->uid != sb->st_uid || in->gid != sb->st_gid)
		snprintf(why, wl, "owner differs");
	else if (!S_ISDIR(sb->st_mode) && !src_same_time(&in->mtime, &sb->st_mtim))
		snprintf(why, wl, "mtime differs");
	else if ((S_ISREG(sb->st_mode) || S_ISLNK(sb->st_mode)) &&
		 in->size != (uint64_t)sb->st_size)
		snprintf(why, wl, "size %" PRIu64 " in the store, %lld in the source", in->size,
			 (long long)sb->st_size);
	else if ((S_ISCHR(sb->st_mode) || S_ISBLK(sb->st_mode)) && in->rdev != sb->st_rdev)
		snprintf(why, wl, "device number differs");
}

/*
 * The source entry's xattrs (through @fd, else @name in @dfd) against the inode's.
 * 1 with @why set if they differ, 0 if not, -ENOMEM. A source whose xattrs cannot be read
 * counts as having none (as the ingest does when the filesystem has none).
 */
static int cmp_xattrs(int fd, int dfd, const char *name, const struct store_inode *in,
		      char *why, size_t wl)
{
	struct store_xattr *xs;
	size_t nx;
	int rc = src_read_xattrs(fd, dfd, name, &xs, &nx);

	if (rc == -ENOMEM)
		return rc;
	rc = 0;
	for (size_t i = 0; i < nx && !rc; i++) {
		const struct store_xattr *x = &xs[i];
		bool found = false;

		for (size_t j = 0; j < in->nxattrs; j++) {
			const struct store_xattr *y = &in->xattrs[j];

			if (!src_xattr_cmp(x, y)) {
				found = y->value.len == x->value.len &&
					!memcmp(y->value.p, x->value.p, x->value.len);
				break;
			}
		}
		if (!found) {
			snprintf(why, wl, "extended attribute %.*s differs or is missing",
				 (int)x->name.len, (const char *)x->name.p);
			rc = 1;
		}
	}
	if (!rc && nx != in->nxattrs) {
		snprintf(why, wl, "the store has %zu extended attributes, the source %zu",
			 in->nxattrs, nx);
		rc = 1;
	}
	src_xattrs_free(xs, nx);
	return rc;
}

/* Every byte of source file @fd against the inode's content; @why set if they differ. */
static void cmp_data(struct cmp_run *r, int fd, const struct store_inode *in, char *why,
		     size_t wl)
{
	struct store_content *c;
	uint64_t off = 0;
	int rc;

	if (!in->has_content) {
		snprintf(why, wl, "no content in the store");
		return;
	}
	rc = store_content_open(r->st, &in->content, &c);
	if (rc < 0) {
		snprintf(why, wl, "content object unreadable: %s", dfs_strerror(rc));
		return;
	}
	for (;;) {
		ssize_t n = read(fd, r->sbuf, CMP_READ), m;

		if (n < 0) {
			snprintf(why, wl, "cannot read the source: %s", strerror(errno));
			break;
		}
		/* at the source's end, one more byte asked of the store must give none */
		m = store_content_pread(r->st, r->codec, c, r->rbuf, (size_t)(n ? n : 1), off);
		if (m < 0) {
			snprintf(why, wl, "store data unreadable at %" PRIu64 ": %s", off,
				 dfs_strerror((int)m));
			break;
		}
		if (n == 0) {
			if (m != 0)
				snprintf(why, wl, "the store has more bytes than the source");
			break;
		}
		if (m != n || memcmp(r->sbuf, r->rbuf, (size_t)n)) {
			snprintf(why, wl, "bytes differ at offset %" PRIu64, off);
			break;
		}
		off += (uint64_t)n;
	}
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
		    char *why, size_t wl)
{
	struct stat fsb;
	int fd = src_open_file(dfd, name), rc = 0;

	if (fd < 0) {
		snprintf(why, wl, "cannot open the source: %s", strerror(-fd));
		return 0;
	}
	if (fstat(fd, &fsb) == 0 && !S_ISREG(fsb.st_mode)) {
		/* swapped since the lstat (O_NONBLOCK let a FIFO's open return) */
		snprintf(why, wl, "type differs");
	} else if (r->o->repair) {
		int rr = repair_file(r, fd, in);

		if (rr < 0)
			dfs_err("repair from %s failed: %s", name, dfs_strerror(rr));
	} else {
		rc = cmp_xattrs(fd, dfd, name, in, why, wl);
		if (rc == 0)
			cmp_data(r, fd, in, why, wl);
	}
	close(fd);
	return rc < 0 ? rc : 0;
}

static int cmp_dir(struct cmp_run *r, int dfd, uint64_t dir, int depth);

/* The entry @name of source directory @dfd against the entry of the same name in @dir;
 * r->path holds its relative path. */
static int cmp_entry(struct cmp_run *r, int dfd, const char *name, uint64_t dir, int depth)
{
	struct store_inode in;
	struct stat sb;
	char why[CMP_WHY] = "";
	uint64_t child;
	uint8_t t;
	int rc = 0;

	if (fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;	/* gone since it was listed */
	r->out->entries++;
	if (store_lookup(r->st, dir, name, strlen(name), &child, &t) < 0 ||
	    store_get_inode(r->st, child, &in) < 0) {
		if (!accepted(r->o, r->path.data, r->path.len))
			report(r, true, "missing from the store");
		return 0;
	}
	cmp_stat(&in, &sb, why, sizeof(why));
	if (!why[0] && S_ISLNK(sb.st_mode)) {
		char tgt[8192];
		ssize_t n = readlinkat(dfd, name, tgt, sizeof(tgt));

		if (n < 0 || (size_t)n != in.target.len || memcmp(tgt, in.target.p, (size_t)n))
			snprintf(why, sizeof(why), "symlink target differs");
	}
	if (!why[0] && S_ISREG(sb.st_mode)) {
		rc = cmp_file(r, dfd, name, &in, why, sizeof(why));
	} else if (!why[0] && S_ISDIR(sb.st_mode)) {
		int fd = src_open_dir(dfd, name);

		if (fd >= 0) {
			rc = cmp_xattrs(fd, dfd, name, &in, why, sizeof(why));
			if (rc == 0 && depth < CMP_MAX_DEPTH)
				rc = cmp_dir(r, fd, child, depth + 1);
			close(fd);
		}
	} else if (!why[0]) {
		rc = cmp_xattrs(-1, dfd, name, &in, why, sizeof(why));
	}
	if (rc == 0 && why[0])
		report(r, true, "%s", why);
	else if (rc == 0 &&
		 (in.atime.tv_sec != sb.st_atim.tv_sec || !src_same_time(&in.ctime, &sb.st_ctim)))
		report(r, false, "atime or ctime differ (not a failure)");
	store_inode_release(&in);
	return rc < 0 ? rc : 0;
}

/* Every entry of source directory @dfd against view directory @dir. */
static int cmp_dir(struct cmp_run *r, int dfd, uint64_t dir, int depth)
{
	size_t base = r->path.len;
	struct dirent *de;
	int fd = src_open_dir(dfd, NULL), rc = 0;
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;

	if (!d) {
		int err = fd < 0 ? -fd : errno;

		if (fd >= 0)
			close(fd);
		report(r, true, "cannot list the source: %s", strerror(err));
		return 0;
	}
	while (rc == 0 && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		r->path.len = base;
		if (base)
			dfs_buf_put_u8(&r->path, '/');
		dfs_buf_append(&r->path, de->d_name, strlen(de->d_name));
		rc = cmp_entry(r, dfd, de->d_name, dir, depth);
	}
	closedir(d);
	r->path.len = base;
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
	dfs_buf_init(&r.path, 1u << 20);
	rc = cmp_dir(&r, dfd, root_ino, 0);
	dfs_buf_release(&r.path);
	if (rc == 0 && o->repair && out->repaired)
		rc = commit_repairs(st);
out:
	free(r.cbuf);
	free(r.rbuf);
	free(r.sbuf);
	close(dfd);
	return rc;
}
