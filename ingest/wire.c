/*
 * wire.c - the remote source protocol's frames: encoders, decoders, and a buffered
 * connection over two fds (see wire.h).
 *
 * SPDX-License-Identifier: MIT
 */
#include "wire.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/codec.h"

static const char *const why_text[WHY_MAX] = {
	[WHY_VANISHED] = "vanished before it could be read",
	[WHY_REPLACED] = "replaced by another file while ingest ran",
	[WHY_CHANGED] = "changed while it was read",
	[WHY_XATTRS] = "cannot read extended attributes",
	[WHY_OPENDIR] = "cannot open directory",
	[WHY_READLINK] = "cannot read symlink",
	[WHY_LINKCHANGED] = "symlink changed while read",
	[WHY_RETRIED] = "changed while it was read (retried)",
};

const char *wire_why_text(unsigned why)
{
	return why < WHY_MAX ? why_text[why] : NULL;
}

/* ---- encoding ------------------------------------------------------------------------------ */

void wire_begin(struct dfs_buf *b, enum wire_type t)
{
	uint8_t h[WIRE_HDR] = { (uint8_t)t, 0, 0, 0, 0 };

	dfs_buf_append(b, h, sizeof(h));
}

int wire_end(struct dfs_buf *b, size_t start)
{
	size_t n;

	if (b->err)
		return b->err;
	n = b->len - start - WIRE_HDR;
	if (n > UINT32_MAX)
		return -E2BIG;
	dfs_put_be32(b->data + start + 1, (uint32_t)n);
	return 0;
}

static void put_time(struct dfs_buf *b, const struct timespec *t)
{
	dfs_buf_put_u64(b, (uint64_t)t->tv_sec);
	dfs_buf_put_u32(b, (uint32_t)t->tv_nsec);
}

void wire_put_stat(struct dfs_buf *b, const struct stat *sb)
{
	dfs_buf_put_u64(b, (uint64_t)sb->st_dev);
	dfs_buf_put_u64(b, (uint64_t)sb->st_ino);
	dfs_buf_put_u32(b, (uint32_t)sb->st_mode);
	dfs_buf_put_u64(b, (uint64_t)sb->st_nlink);
	dfs_buf_put_u32(b, (uint32_t)sb->st_uid);
	dfs_buf_put_u32(b, (uint32_t)sb->st_gid);
	dfs_buf_put_u64(b, (uint64_t)sb->st_rdev);
	dfs_buf_put_u64(b, (uint64_t)sb->st_size);
	put_time(b, &sb->st_atim);
	put_time(b, &sb->st_mtim);
	put_time(b, &sb->st_ctim);
}

void wire_put_xattrs(struct dfs_buf *b, const struct store_xattr *x, size_t n)
{
	dfs_buf_put_varint(b, n);
	for (size_t i = 0; i < n; i++) {
		dfs_buf_put_bytes(b, x[i].name.p, x[i].name.len);
		dfs_buf_put_bytes(b, x[i].value.p, x[i].value.len);
	}
}

/* ---- decoding ------------------------------------------------------------------------------ */

static bool get_time(struct dfs_rd *r, struct timespec *t)
{
	uint64_t s = dfs_rd_u64(r);
	uint32_t ns = dfs_rd_u32(r);

	t->tv_sec = (time_t)(int64_t)s;
	t->tv_nsec = ns;
	return ns < 1000000000u;
}

static int get_stat(struct dfs_rd *r, struct stat *sb)
{
	uint32_t mode;
	uint64_t size;
	bool ok;

	memset(sb, 0, sizeof(*sb));
	sb->st_dev = (dev_t)dfs_rd_u64(r);
	sb->st_ino = (ino_t)dfs_rd_u64(r);
	mode = dfs_rd_u32(r);
	sb->st_mode = mode;
	sb->st_nlink = (nlink_t)dfs_rd_u64(r);
	sb->st_uid = dfs_rd_u32(r);
	sb->st_gid = dfs_rd_u32(r);
	sb->st_rdev = (dev_t)dfs_rd_u64(r);
	size = dfs_rd_u64(r);
	sb->st_size = (off_t)size;
	ok = get_time(r, &sb->st_atim);
	ok &= get_time(r, &sb->st_mtim);
	ok &= get_time(r, &sb->st_ctim);
	if (r->err)
		return r->err;
	switch (mode & S_IFMT) {
	case S_IFREG: case S_IFDIR: case S_IFLNK: case S_IFCHR: case S_IFBLK: case S_IFIFO:
	case S_IFSOCK:
		break;
	default:
		return -EBADMSG;
	}
	if (!ok || size > (uint64_t)INT64_MAX || (mode & ~(uint32_t)(S_IFMT | 07777)) ||
	    (S_ISLNK(mode) && size > PATH_MAX))
		return -EBADMSG;
	return 0;
}

static void xattrs_free(struct store_xattr *x, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(x[i].name.p);
		free(x[i].value.p);
	}
	free(x);
}

/* Names strictly increasing (bytes, a prefix first): sorted and without duplicates. */
static bool name_after(const struct store_xattr *prev, const uint8_t *nm, size_t nl)
{
	size_t m = prev->name.len < nl ? prev->name.len : nl;
	int c = memcmp(prev->name.p, nm, m);

	return c < 0 || (c == 0 && prev->name.len < nl);
}

static int get_xattrs(struct dfs_rd *r, struct store_xattr **out, size_t *nout)
{
	uint64_t n = dfs_rd_varint(r);
	struct store_xattr *x;

	*out = NULL;
	*nout = 0;
	if (r->err || n > r->left / 2)	/* two length bytes each at least */
		return -EBADMSG;
	if (!n)
		return 0;
	x = calloc((size_t)n, sizeof(*x));
	if (!x)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		size_t nl, vl;
		const uint8_t *nm = dfs_rd_bytes(r, &nl), *v = dfs_rd_bytes(r, &vl);

		if (!nm || !v || !nl || nl > 255 || vl > STORE_XATTR_MAX ||
		    memchr(nm, 0, nl) || (i && !name_after(&x[i - 1], nm, nl))) {
			xattrs_free(x, i);
			return -EBADMSG;
		}
		x[i].name.p = malloc(nl);
		x[i].value.p = malloc(vl ? vl : 1);
		if (!x[i].name.p || !x[i].value.p) {
			free(x[i].name.p);
			free(x[i].value.p);
			xattrs_free(x, i);
			return -ENOMEM;
		}
		memcpy(x[i].name.p, nm, nl);
		x[i].name.len = nl;
		memcpy(x[i].value.p, v, vl);
		x[i].value.len = vl;
	}
	*out = x;
	*nout = (size_t)n;
	return 0;
}

static int done(struct dfs_rd *r)
{
	return r->err ? r->err : r->left ? -EBADMSG : 0;
}

static bool magic_ok(struct dfs_rd *r)
{
	size_t l;
	const uint8_t *m = dfs_rd_bytes(r, &l);

	return m && l == strlen(WIRE_MAGIC) && !memcmp(m, WIRE_MAGIC, l);
}

int wire_dec_hello(const uint8_t *p, size_t n, struct wire_hello *h)
{
	struct dfs_rd r;
	uint64_t nx;

	memset(h, 0, sizeof(*h));
	dfs_buf_init(&h->excl, WIRE_HELLO_MAX);
	dfs_rd_init(&r, p, n);
	if (!magic_ok(&r))
		return -EBADMSG;
	h->version = dfs_rd_u32(&r);
	h->pkg = dfs_rd_bytes(&r, &h->pkg_len);
	if (r.err)
		return -EBADMSG;
	if (h->version != WIRE_VERSION)
		return -EPROTONOSUPPORT;	/* the rest is another version's */
	h->path = dfs_rd_bytes(&r, &h->path_len);
	h->cdc.min_size = dfs_rd_u32(&r);
	h->cdc.avg_size = dfs_rd_u32(&r);
	h->cdc.max_size = dfs_rd_u32(&r);
	h->cdc.norm_level = dfs_rd_u32(&r);
	h->cdc.tar_floor = dfs_rd_u32(&r);
	h->zstd_level = dfs_rd_u32(&r);
	h->inline_max = dfs_rd_u32(&r);
	h->flags = dfs_rd_u32(&r);
	nx = dfs_rd_varint(&r);
	if (r.err || nx > r.left || !h->path || !h->path_len || h->path_len >= PATH_MAX ||
	    memchr(h->path, 0, h->path_len) || cdc_params_check(&h->cdc) < 0 ||
	    h->zstd_level < 1 || h->zstd_level > CODEC_MAX_LEVEL ||
	    h->inline_max > h->cdc.max_size || (h->flags & ~(uint32_t)WIRE_H_ALL))
		return -EBADMSG;
	for (uint64_t i = 0; i < nx; i++) {
		size_t l;
		const uint8_t *x = dfs_rd_bytes(&r, &l);

		if (!x || !l || l >= PATH_MAX || memchr(x, 0, l))
			return -EBADMSG;
		dfs_buf_append(&h->excl, x, l);
		dfs_buf_put_u8(&h->excl, 0);
	}
	h->nexcl = (size_t)nx;
	return h->excl.err ? h->excl.err : done(&r);
}

int wire_dec_welcome(const uint8_t *p, size_t n, struct wire_welcome *w)
{
	struct dfs_rd r;
	int rc;

	memset(w, 0, sizeof(*w));
	dfs_rd_init(&r, p, n);
	if (!magic_ok(&r))
		return -EBADMSG;
	w->version = dfs_rd_u32(&r);
	w->pkg = dfs_rd_bytes(&r, &w->pkg_len);
	if (r.err)
		return -EBADMSG;
	if (w->version != WIRE_VERSION)
		return -EPROTONOSUPPORT;
	w->fsid = dfs_rd_bytes(&r, &w->fsid_len);
	w->fs_id = dfs_rd_u64(&r);
	rc = get_stat(&r, &w->sb);
	if (rc < 0)
		return rc;
	if (!w->fsid || !w->fsid_len || w->fsid_len > 200 || memchr(w->fsid, 0, w->fsid_len) ||
	    !S_ISDIR(w->sb.st_mode))
		return -EBADMSG;
	return done(&r);
}

/* A directory's listing: sorted, distinct names, each NUL-ended, none "." or ".." or
 * holding a '/'. */
static bool names_ok(const uint8_t *p, size_t n)
{
	const uint8_t *prev = NULL;
	size_t prevl = 0;

	if (n && p[n - 1])
		return false;
	for (size_t pos = 0; pos < n;) {
		const uint8_t *cur = p + pos;
		size_t l = strlen((const char *)cur);

		if (!l || l > NAME_MAX || memchr(cur, '/', l) || (l == 1 && cur[0] == '.') ||
		    (l == 2 && cur[0] == '.' && cur[1] == '.'))
			return false;
		if (prev && strcmp((const char *)prev, (const char *)cur) >= 0)
			return false;
		prev = cur;
		prevl = l;
		pos += l + 1;
	}
	(void)prevl;
	return true;
}

int wire_dec_entry(const uint8_t *p, size_t n, struct wire_entry *e)
{
	struct dfs_rd r;
	int rc;

	memset(e, 0, sizeof(*e));
	dfs_rd_init(&r, p, n);
	e->depth = dfs_rd_u32(&r);
	e->flags = dfs_rd_u8(&r);
	e->err = dfs_rd_u32(&r);
	e->why = dfs_rd_u8(&r);
	e->name = dfs_rd_bytes(&r, &e->name_len);
	if (r.err)
		return -EBADMSG;
	rc = get_stat(&r, &e->sb);
	if (rc < 0)
		return rc;
	e->target = dfs_rd_bytes(&r, &e->target_len);
	if (!e->target)
		return -EBADMSG;
	rc = get_xattrs(&r, &e->xattrs, &e->nxattrs);
	if (rc < 0)
		return rc;
	e->names = dfs_rd_bytes(&r, &e->names_len);
	rc = done(&r);
	if (rc == 0 && (!e->names || e->why >= WHY_MAX || e->err > 4095 ||
			(e->flags & ~(WIRE_E_ASK | WIRE_E_LISTED)) ||
			e->name_len > NAME_MAX || memchr(e->name, 0, e->name_len) ||
			memchr(e->name, '/', e->name_len) || (e->depth == 0) != (e->name_len == 0) ||
			(e->name_len == 1 && e->name[0] == '.') ||
			(e->name_len == 2 && e->name[0] == '.' && e->name[1] == '.') ||
			e->target_len > PATH_MAX || memchr(e->target, 0, e->target_len) ||
			(e->target_len && !S_ISLNK(e->sb.st_mode)) ||
			(e->names_len && !S_ISDIR(e->sb.st_mode)) ||
			((e->flags & WIRE_E_ASK) && (!S_ISREG(e->sb.st_mode) || e->err)) ||
			((e->flags & WIRE_E_LISTED) && !S_ISDIR(e->sb.st_mode)) ||
			!names_ok(e->names, e->names_len)))
		rc = -EBADMSG;
	if (rc < 0) {
		xattrs_free(e->xattrs, e->nxattrs);
		e->xattrs = NULL;
		e->nxattrs = 0;
	}
	return rc;
}

int wire_dec_fend(const uint8_t *p, size_t n, struct wire_fend *f)
{
	struct dfs_rd r;
	int rc;

	memset(f, 0, sizeof(*f));
	dfs_rd_init(&r, p, n);
	f->err = dfs_rd_u32(&r);
	f->why = dfs_rd_u8(&r);
	f->bytes_read = dfs_rd_u64(&r);
	f->mime = dfs_rd_bytes(&r, &f->mime_len);
	if (r.err || f->why >= WHY_MAX || f->err > 4095 || f->mime_len > 95)
		return -EBADMSG;
	for (size_t i = 0; i < f->mime_len; i++)
		if (f->mime[i] < 0x21 || f->mime[i] > 0x7e)
			return -EBADMSG;
	rc = get_stat(&r, &f->sb);
	if (rc < 0)
		return rc;
	if (!S_ISREG(f->sb.st_mode))
		return -EBADMSG;
	rc = get_xattrs(&r, &f->xattrs, &f->nxattrs);
	if (rc < 0)
		return rc;
	rc = done(&r);
	if (rc < 0) {
		xattrs_free(f->xattrs, f->nxattrs);
		f->xattrs = NULL;
		f->nxattrs = 0;
	}
	return rc;
}

int wire_dec_chunks(const uint8_t *p, size_t n, uint32_t max_len, struct wire_chunk **out,
		    size_t *count)
{
	struct dfs_rd r;
	uint64_t k;
	struct wire_chunk *v;

	*out = NULL;
	*count = 0;
	dfs_rd_init(&r, p, n);
	k = dfs_rd_varint(&r);
	if (r.err || !k || k > r.left / (4 + sizeof(struct fp256)))
		return -EBADMSG;
	v = malloc((size_t)k * sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < k; i++) {
		const uint8_t *id;

		v[i].len = dfs_rd_u32(&r);
		id = dfs_rd_raw(&r, sizeof(v[i].id.b));
		if (!id || !v[i].len || v[i].len > max_len) {
			free(v);
			return -EBADMSG;
		}
		memcpy(v[i].id.b, id, sizeof(v[i].id.b));
	}
	if (done(&r) < 0) {
		free(v);
		return -EBADMSG;
	}
	*out = v;
	*count = (size_t)k;
	return 0;
}

int wire_dec_flags(const uint8_t *p, size_t n, const uint8_t **flags, size_t *count)
{
	struct dfs_rd r;

	dfs_rd_init(&r, p, n);
	*flags = dfs_rd_bytes(&r, count);
	if (!*flags || !*count)
		return -EBADMSG;
	return done(&r);
}

int wire_dec_data(const uint8_t *p, size_t n, uint8_t *codec, uint32_t *raw,
		  const uint8_t **bytes, size_t *blen)
{
	struct dfs_rd r;

	dfs_rd_init(&r, p, n);
	*codec = dfs_rd_u8(&r);
	*raw = dfs_rd_u32(&r);
	*bytes = dfs_rd_bytes(&r, blen);
	if (!*bytes || !*raw || *blen > codec_bound(*raw))
		return -EBADMSG;
	return done(&r);
}

int wire_dec_inline(const uint8_t *p, size_t n, uint8_t *codec, uint32_t *raw,
		    const uint8_t **bytes, size_t *blen)
{
	if (n == 1 + 4 + 1 && p[0] == 0 && !p[1] && !p[2] && !p[3] && !p[4] && !p[5]) {
		*codec = 0;	/* an empty file: raw, no bytes */
		*raw = 0;
		*bytes = p + n;
		*blen = 0;
		return 0;
	}
	return wire_dec_data(p, n, codec, raw, bytes, blen);
}

int wire_dec_size(const uint8_t *p, size_t n, uint32_t *raw, uint32_t *stored)
{
	struct dfs_rd r;

	dfs_rd_init(&r, p, n);
	*raw = dfs_rd_u32(&r);
	*stored = dfs_rd_u32(&r);
	if (!r.err && (!*raw || *stored > codec_bound(*raw)))
		return -EBADMSG;
	return done(&r);
}

int wire_dec_fetch(const uint8_t *p, size_t n, uint32_t max_len, struct wire_fetch *f)
{
	struct dfs_rd r;
	const uint8_t *id;

	memset(f, 0, sizeof(*f));
	dfs_rd_init(&r, p, n);
	f->path = dfs_rd_bytes(&r, &f->path_len);
	f->off = dfs_rd_u64(&r);
	f->len = dfs_rd_u32(&r);
	id = dfs_rd_raw(&r, sizeof(f->id.b));
	if (!f->path || !id || !f->len || f->len > max_len || f->off > (uint64_t)INT64_MAX - f->len ||
	    !f->path_len || f->path_len >= PATH_MAX || memchr(f->path, 0, f->path_len))
		return -EBADMSG;
	/* every component a name: never empty, "." or "..", so never above the root */
	for (size_t s = 0, e; s <= f->path_len; s = e + 1) {
		const uint8_t *slash = memchr(f->path + s, '/', f->path_len - s);

		e = slash ? (size_t)(slash - f->path) : f->path_len;
		if (e == s || e - s > NAME_MAX || (e - s == 1 && f->path[s] == '.') ||
		    (e - s == 2 && f->path[s] == '.' && f->path[s + 1] == '.'))
			return -EBADMSG;
	}
	memcpy(f->id.b, id, sizeof(f->id.b));
	return done(&r);
}

int wire_dec_miss(const uint8_t *p, size_t n, uint32_t *err)
{
	struct dfs_rd r;

	dfs_rd_init(&r, p, n);
	*err = dfs_rd_u32(&r);
	if (!r.err && !*err)
		return -EBADMSG;
	return done(&r);
}

int wire_dec_u64(const uint8_t *p, size_t n, uint64_t *v)
{
	struct dfs_rd r;

	dfs_rd_init(&r, p, n);
	*v = dfs_rd_u64(&r);
	return done(&r);
}

int wire_dec_fs(const uint8_t *p, size_t n, uint64_t *dev, uint64_t *id)
{
	struct dfs_rd r;

	dfs_rd_init(&r, p, n);
	*dev = dfs_rd_u64(&r);
	*id = dfs_rd_u64(&r);
	if (!r.err && !*id)
		return -EBADMSG;
	return done(&r);
}

/* @b, @l as text: printable ASCII kept, anything else as '?'; cut to @outlen. */
static void printable(const uint8_t *b, size_t l, char *out, size_t outlen)
{
	size_t i;

	for (i = 0; i < l && i + 1 < outlen; i++)
		out[i] = b[i] >= 0x20 && b[i] < 0x7f ? (char)b[i] : '?';
	if (outlen)
		out[i] = '\0';
}

int wire_dec_text(const uint8_t *p, size_t n, char *out, size_t outlen)
{
	const uint8_t *b;
	size_t l;
	int rc = wire_dec_bytes(p, n, &b, &l);

	if (rc == 0)
		printable(b, l, out, outlen);
	return rc;
}

int wire_dec_fail(const uint8_t *p, size_t n, const uint8_t **path, size_t *plen, char *why,
		  size_t whylen)
{
	struct dfs_rd r;
	const uint8_t *w;
	size_t wl;

	dfs_rd_init(&r, p, n);
	*path = dfs_rd_bytes(&r, plen);
	w = dfs_rd_bytes(&r, &wl);
	if (!*path || !w || *plen > PATH_MAX * 4)
		return -EBADMSG;
	printable(w, wl, why, whylen);
	return done(&r);
}

int wire_dec_bytes(const uint8_t *p, size_t n, const uint8_t **b, size_t *blen)
{
	struct dfs_rd r;

	dfs_rd_init(&r, p, n);
	*b = dfs_rd_bytes(&r, blen);
	if (!*b)
		return -EBADMSG;
	return done(&r);
}

int wire_decode_all(const uint8_t *p, size_t n)
{
	int frames = 0;

	while (n) {
		uint8_t t;
		uint32_t len;
		const uint8_t *q;
		int rc = 0;

		if (n < WIRE_HDR)
			return -EBADMSG;
		t = p[0];
		len = dfs_get_be32(p + 1);
		if (len > n - WIRE_HDR || !t || t > WIRE_TYPE_MAX)
			return -EBADMSG;
		q = p + WIRE_HDR;
		switch (t) {
		case WIRE_HELLO: {
			struct wire_hello h;

			rc = wire_dec_hello(q, len, &h);
			dfs_buf_release(&h.excl);
			break;
		}
		case WIRE_WELCOME: {
			struct wire_welcome w;

			rc = wire_dec_welcome(q, len, &w);
			break;
		}
		case WIRE_ENTRY: {
			struct wire_entry e;

			rc = wire_dec_entry(q, len, &e);
			xattrs_free(e.xattrs, e.nxattrs);
			break;
		}
		case WIRE_FEND: {
			struct wire_fend f;

			rc = wire_dec_fend(q, len, &f);
			xattrs_free(f.xattrs, f.nxattrs);
			break;
		}
		case WIRE_CHUNKS: {
			struct wire_chunk *v;
			size_t k;

			rc = wire_dec_chunks(q, len, CDC_MAX_LIMIT, &v, &k);
			free(v);
			break;
		}
		case WIRE_ANSWER:
		case WIRE_NEED: {
			const uint8_t *f;
			size_t k;

			rc = wire_dec_flags(q, len, &f, &k);
			break;
		}
		case WIRE_SIZE: {
			uint32_t raw, st;

			rc = wire_dec_size(q, len, &raw, &st);
			break;
		}
		case WIRE_DATA: {
			const uint8_t *b;
			size_t bl;
			uint32_t raw;
			uint8_t c;

			rc = wire_dec_data(q, len, &c, &raw, &b, &bl);
			break;
		}
		case WIRE_HOLE: {
			uint64_t v;

			rc = wire_dec_u64(q, len, &v);
			break;
		}
		case WIRE_FS: {
			uint64_t d, id;

			rc = wire_dec_fs(q, len, &d, &id);
			break;
		}
		case WIRE_FAIL: {
			const uint8_t *path;
			size_t pl;
			char why[256];

			rc = wire_dec_fail(q, len, &path, &pl, why, sizeof(why));
			break;
		}
		case WIRE_ERROR: {
			char msg[512];

			rc = wire_dec_text(q, len, msg, sizeof(msg));
			break;
		}
		case WIRE_INLINE: {
			const uint8_t *b;
			size_t bl;
			uint32_t raw;
			uint8_t c;

			rc = wire_dec_inline(q, len, &c, &raw, &b, &bl);
			break;
		}
		case WIRE_SKIPPED: {
			const uint8_t *b;
			size_t bl;

			rc = wire_dec_bytes(q, len, &b, &bl);
			break;
		}
		case WIRE_FETCH: {
			struct wire_fetch f;

			rc = wire_dec_fetch(q, len, CDC_MAX_LIMIT, &f);
			break;
		}
		case WIRE_MISS: {
			uint32_t e;

			rc = wire_dec_miss(q, len, &e);
			break;
		}
		default:	/* DONE, RESET: no payload */
			rc = len ? -EBADMSG : 0;
		}
		if (rc < 0)
			return rc;
		frames++;
		p += WIRE_HDR + len;
		n -= WIRE_HDR + len;
	}
	return frames;
}

/* ---- the connection ------------------------------------------------------------------------ */

#define WIRE_RBUF (256u << 10)
#define WIRE_WFLUSH (64u << 10)

int wire_conn_init(struct wire_conn *c, int in, int out)
{
	memset(c, 0, sizeof(*c));
	c->in = in;
	c->out = out;
	c->max_payload = WIRE_HELLO_MAX;
	c->rcap = WIRE_RBUF;
	c->rbuf = malloc(c->rcap);
	pthread_mutex_init(&c->wlock, NULL);
	dfs_buf_init(&c->wbuf, 1ull << 34);
	return c->rbuf ? 0 : -ENOMEM;
}

void wire_conn_release(struct wire_conn *c)
{
	free(c->rbuf);
	free(c->frame);
	dfs_buf_release(&c->wbuf);
	pthread_mutex_destroy(&c->wlock);
	c->rbuf = c->frame = NULL;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* c->wlock held */
static int flush_locked(struct wire_conn *c)
{
	int rc = c->wbuf.err;

	if (rc == 0 && c->wbuf.len)
		rc = write_all(c->out, c->wbuf.data, c->wbuf.len);
	if (rc == 0)
		atomic_fetch_add(&c->bytes_out, c->wbuf.len);
	dfs_buf_clear(&c->wbuf);
	return rc;
}

int wire_flush(struct wire_conn *c)
{
	int rc;

	pthread_mutex_lock(&c->wlock);
	rc = flush_locked(c);
	pthread_mutex_unlock(&c->wlock);
	return rc;
}

int wire_send(struct wire_conn *c, const struct dfs_buf *b, bool flush)
{
	int rc;

	if (b->err)
		return b->err;
	pthread_mutex_lock(&c->wlock);
	rc = dfs_buf_append(&c->wbuf, b->data, b->len);
	if (rc == 0 && (flush || c->wbuf.len >= WIRE_WFLUSH))
		rc = flush_locked(c);
	pthread_mutex_unlock(&c->wlock);
	return rc;
}

/* Reads @n bytes into @dst (the buffer first). */
static int read_exact(struct wire_conn *c, uint8_t *dst, size_t n)
{
	while (n) {
		size_t have = c->rlen - c->rpos;
		ssize_t r;

		if (have) {
			size_t k = have < n ? have : n;

			memcpy(dst, c->rbuf + c->rpos, k);
			c->rpos += k;
			dst += k;
			n -= k;
			continue;
		}
		if (wire_flush(c) < 0)
			return -EPIPE;
		r = read(c->in, c->rbuf, c->rcap);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -EPIPE;
		atomic_fetch_add(&c->bytes_in, (uint64_t)r);
		c->rpos = 0;
		c->rlen = (size_t)r;
	}
	return 0;
}

int wire_read(struct wire_conn *c, uint8_t *type, const uint8_t **p, size_t *n)
{
	uint8_t h[WIRE_HDR];
	uint32_t len;
	int rc = read_exact(c, h, sizeof(h));

	if (rc < 0)
		return rc;
	len = dfs_get_be32(h + 1);
	if (!h[0] || h[0] > WIRE_TYPE_MAX || len > c->max_payload)
		return -EBADMSG;
	if ((size_t)len + 1 > c->fcap) {
		uint8_t *f = realloc(c->frame, (size_t)len + 1);

		if (!f)
			return -ENOMEM;
		c->frame = f;
		c->fcap = (size_t)len + 1;
	}
	rc = read_exact(c, c->frame, len);
	if (rc < 0)
		return rc;
	*type = h[0];
	*p = c->frame;
	*n = len;
	return 0;
}
