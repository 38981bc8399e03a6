/*
 * enc.c - versioned index key/value encodings (see enc.h for the layout).
 *
 * Decoders work on borrowed bytes through struct dfs_rd (every read is bounds-checked),
 * check the version byte first and require the value to be consumed exactly.
 *
 * SPDX-License-Identifier: MIT
 */
#include "enc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int rd_finish(struct dfs_rd *r)
{
	if (r->err)
		return r->err;
	return r->left ? -EBADMSG : 0;
}

static int rd_version(struct dfs_rd *r)
{
	uint8_t v = dfs_rd_u8(r);

	if (r->err)
		return r->err;
	return v == ENC_VERSION ? 0 : -EPROTONOSUPPORT;
}

static int dup_str(struct dfs_rd *r, struct store_str *s)
{
	size_t n;
	const uint8_t *p = dfs_rd_bytes(r, &n);

	if (!p)
		return r->err ? r->err : -EBADMSG;
	s->len = n;
	s->p = malloc(n + 1);
	if (!s->p)
		return -ENOMEM;
	memcpy(s->p, p, n);
	s->p[n] = '\0';
	return 0;
}

static void put_ts(struct dfs_buf *b, const struct timespec *t)
{
	dfs_buf_put_u64(b, (uint64_t)t->tv_sec);
	dfs_buf_put_varint(b, (uint64_t)t->tv_nsec);
}

static void get_ts(struct dfs_rd *r, struct timespec *t)
{
	uint64_t ns;

	t->tv_sec = (time_t)(int64_t)dfs_rd_u64(r);
	ns = dfs_rd_varint(r);
	if (ns >= 1000000000ull)
		r->err = -EBADMSG;
	t->tv_nsec = (long)ns;
}

int enc_inode(const struct store_inode *in, struct dfs_buf *b)
{
	dfs_buf_put_u8(b, ENC_VERSION);
	dfs_buf_put_u8(b, in->view);
	dfs_buf_put_varint(b, in->mode);
	dfs_buf_put_varint(b, in->uid);
	dfs_buf_put_varint(b, in->gid);
	dfs_buf_put_varint(b, in->nlink);
	dfs_buf_put_varint(b, in->size);
	dfs_buf_put_varint(b, in->data_bytes);
	dfs_buf_put_varint(b, in->rdev);
	put_ts(b, &in->atime);
	put_ts(b, &in->mtime);
	put_ts(b, &in->ctime);
	dfs_buf_put_u8(b, in->has_content);
	if (in->has_content)
		dfs_buf_append(b, in->content.b, FP_LEN);
	dfs_buf_put_varint(b, in->source_id);
	dfs_buf_put_varint(b, in->src_ino);
	dfs_buf_put_varint(b, in->gen);
	dfs_buf_put_bytes(b, in->target.p, in->target.len);
	dfs_buf_put_varint(b, in->nxattrs);
	for (size_t i = 0; i < in->nxattrs; i++) {
		dfs_buf_put_bytes(b, in->xattrs[i].name.p, in->xattrs[i].name.len);
		dfs_buf_put_bytes(b, in->xattrs[i].value.p, in->xattrs[i].value.len);
	}
	dfs_buf_put_bytes(b, in->mime.p, in->mime.len);
	dfs_buf_put_bytes(b, in->category.p, in->category.len);
	dfs_buf_put_bytes(b, in->rule.p, in->rule.len);
	dfs_buf_put_varint(b, in->norigins);
	for (size_t i = 0; i < in->norigins; i++)
		dfs_buf_put_bytes(b, in->origins[i].p, in->origins[i].len);
	dfs_buf_put_varint(b, in->origins_total);
	dfs_buf_put_bytes(b, in->unit.p, in->unit.len);
	return b->err;
}

int dec_inode(uint64_t ino, const void *p, size_t n, struct store_inode *in)
{
	struct dfs_rd r;
	uint64_t cnt;
	int rc;

	memset(in, 0, sizeof(*in));
	in->ino = ino;
	dfs_rd_init(&r, p, n);
	rc = rd_version(&r);
	if (rc < 0)
		return rc;
	in->view = dfs_rd_u8(&r);
	in->mode = (uint32_t)dfs_rd_varint(&r);
	in->uid = (uint32_t)dfs_rd_varint(&r);
	in->gid = (uint32_t)dfs_rd_varint(&r);
	in->nlink = (uint32_t)dfs_rd_varint(&r);
	in->size = dfs_rd_varint(&r);
	in->data_bytes = dfs_rd_varint(&r);
	in->rdev = dfs_rd_varint(&r);
	get_ts(&r, &in->atime);
	get_ts(&r, &in->mtime);
	get_ts(&r, &in->ctime);
	in->has_content = dfs_rd_u8(&r) != 0;
	if (in->has_content) {
		const uint8_t *c = dfs_rd_raw(&r, FP_LEN);

		if (c)
			memcpy(in->content.b, c, FP_LEN);
	}
	in->source_id = (uint32_t)dfs_rd_varint(&r);
	in->src_ino = dfs_rd_varint(&r);
	in->gen = dfs_rd_varint(&r);
	if (r.err || (in->view != STORE_VIEW_ORG && in->view != STORE_VIEW_SRC)) {
		rc = r.err ? r.err : -EBADMSG;
		goto out_bad;
	}
	rc = dup_str(&r, &in->target);
	if (rc < 0)
		goto out_bad;
	cnt = dfs_rd_varint(&r);
	if (r.err || cnt > r.left / 2) {
		rc = -EBADMSG;
		goto out_bad;
	}
	if (cnt) {
		in->xattrs = calloc(cnt, sizeof(*in->xattrs));
		if (!in->xattrs) {
			rc = -ENOMEM;
			goto out_bad;
		}
	}
	for (uint64_t i = 0; i < cnt; i++) {
		in->nxattrs = i + 1;
		rc = dup_str(&r, &in->xattrs[i].name);
		if (rc == 0)
			rc = dup_str(&r, &in->xattrs[i].value);
		if (rc < 0)
			goto out_bad;
	}
	rc = dup_str(&r, &in->mime);
	if (rc == 0)
		rc = dup_str(&r, &in->category);
	if (rc == 0)
		rc = dup_str(&r, &in->rule);
	if (rc < 0)
		goto out_bad;
	cnt = dfs_rd_varint(&r);
	if (r.err || cnt > r.left) {
		rc = -EBADMSG;
		goto out_bad;
	}
	if (cnt) {
		in->origins = calloc(cnt, sizeof(*in->origins));
		if (!in->origins) {
			rc = -ENOMEM;
			goto out_bad;
		}
	}
	for (uint64_t i = 0; i < cnt; i++) {
		in->norigins = i + 1;
		rc = dup_str(&r, &in->origins[i]);
		if (rc < 0)
			goto out_bad;
	}
	in->origins_total = dfs_rd_varint(&r);
	rc = dup_str(&r, &in->unit);
	if (rc < 0)
		goto out_bad;
	rc = rd_finish(&r);
	if (rc < 0)
		goto out_bad;
	return 0;
out_bad:
	store_inode_release(in);
	return rc;
}

int enc_dirent_val(uint64_t child, uint8_t dtype, struct dfs_buf *b)
{
	dfs_buf_put_u8(b, ENC_VERSION);
	dfs_buf_put_varint(b, child);
	dfs_buf_put_u8(b, dtype);
	return b->err;
}

int dec_dirent_val(const void *p, size_t n, uint64_t *child, uint8_t *dtype)
{
	struct dfs_rd r;
	int rc;

	dfs_rd_init(&r, p, n);
	rc = rd_version(&r);
	if (rc < 0)
		return rc;
	*child = dfs_rd_varint(&r);
	*dtype = dfs_rd_u8(&r);
	rc = rd_finish(&r);
	if (rc == 0 && *child == 0)
		rc = -EBADMSG;
	return rc;
}

size_t enc_dirent_key(uint64_t parent, const void *name, size_t name_len, uint8_t *out)
{
	dfs_put_be64(out, parent);
	memcpy(out + 8, name, name_len);
	return 8 + name_len;
}

int enc_chunk_loc(const struct store_chunk_loc *l, struct dfs_buf *b)
{
	dfs_buf_put_u8(b, ENC_VERSION);
	dfs_buf_put_varint(b, l->pack);
	dfs_buf_put_varint(b, l->off);
	dfs_buf_put_varint(b, l->raw_len);
	dfs_buf_put_varint(b, l->stored_len);
	dfs_buf_put_u8(b, l->codec);
	return b->err;
}

int dec_chunk_loc(const void *p, size_t n, struct store_chunk_loc *l)
{
	struct dfs_rd r;
	uint64_t pack, raw, stored;
	int rc;

	dfs_rd_init(&r, p, n);
	rc = rd_version(&r);
	if (rc < 0)
		return rc;
	pack = dfs_rd_varint(&r);
	l->off = dfs_rd_varint(&r);
	raw = dfs_rd_varint(&r);
	stored = dfs_rd_varint(&r);
	l->codec = dfs_rd_u8(&r);
	rc = rd_finish(&r);
	if (rc < 0)
		return rc;
	if (pack > UINT32_MAX || raw > UINT32_MAX || stored > UINT32_MAX || l->codec > 1)
		return -EBADMSG;
	l->pack = (uint32_t)pack;
	l->raw_len = (uint32_t)raw;
	l->stored_len = (uint32_t)stored;
	return 0;
}

int enc_source(const struct store_source *s, struct dfs_buf *b)
{
	/* v1 when there is nothing v2 or v3 adds: the bytes of older stores stay as they were */
	uint8_t v = s->nsnaps ? ENC_SOURCE_V3 : s->excludes.len ? ENC_SOURCE_V2 : ENC_VERSION;

	dfs_buf_put_u8(b, v);
	dfs_buf_put_varint(b, s->id);
	dfs_buf_put_bytes(b, s->name.p, s->name.len);
	dfs_buf_put_bytes(b, s->fsid.p, s->fsid.len);
	dfs_buf_put_bytes(b, s->path.p, s->path.len);
	dfs_buf_put_varint(b, s->root_ino);
	dfs_buf_put_u64(b, (uint64_t)s->first_ingest);
	dfs_buf_put_u64(b, (uint64_t)s->last_ingest);
	dfs_buf_put_varint(b, s->files);
	dfs_buf_put_varint(b, s->bytes);
	dfs_buf_put_u64(b, (uint64_t)s->last_against);
	dfs_buf_put_u32(b, (uint32_t)s->against_result);
	dfs_buf_put_varint(b, s->against_gen);
	dfs_buf_put_varint(b, s->ingest_gen);
	if (v >= ENC_SOURCE_V2)
		dfs_buf_put_bytes(b, s->excludes.p, s->excludes.len);
	if (v == ENC_SOURCE_V3) {
		dfs_buf_put_varint(b, s->nsnaps);
		for (size_t i = 0; i < s->nsnaps; i++) {
			dfs_buf_put_u64(b, (uint64_t)s->snaps[i].time);
			dfs_buf_put_varint(b, s->snaps[i].gen);
			dfs_buf_put_varint(b, s->snaps[i].root);
		}
	}
	return b->err;
}

/* v3's snapshots: at least one, each with a root, times and generations increasing. */
static int dec_snaps(struct dfs_rd *r, struct store_source *s)
{
	uint64_t n = dfs_rd_varint(r);

	if (r->err || n == 0 || n > STORE_SNAPS_MAX || n > r->left / 3)
		return -EBADMSG;
	s->snaps = calloc(n, sizeof(*s->snaps));
	if (!s->snaps)
		return -ENOMEM;
	for (s->nsnaps = 0; s->nsnaps < n; s->nsnaps++) {
		struct store_snap *sn = &s->snaps[s->nsnaps];

		sn->time = (int64_t)dfs_rd_u64(r);
		sn->gen = dfs_rd_varint(r);
		sn->root = dfs_rd_varint(r);
		if (r->err || !sn->root || !sn->gen ||
		    (s->nsnaps && (sn->time <= sn[-1].time || sn->gen <= sn[-1].gen)))
			return -EBADMSG;
	}
	return 0;
}

int dec_source(const void *p, size_t n, struct store_source *s)
{
	struct dfs_rd r;
	uint64_t id;
	uint8_t v;
	int rc;

	memset(s, 0, sizeof(*s));
	dfs_rd_init(&r, p, n);
	v = dfs_rd_u8(&r);
	if (r.err)
		return r.err;
	if (v != ENC_VERSION && v != ENC_SOURCE_V2 && v != ENC_SOURCE_V3)
		return -EPROTONOSUPPORT;
	id = dfs_rd_varint(&r);
	if (r.err || id == 0 || id > UINT32_MAX)
		return -EBADMSG;
	s->id = (uint32_t)id;
	rc = dup_str(&r, &s->name);
	if (rc == 0)
		rc = dup_str(&r, &s->fsid);
	if (rc == 0)
		rc = dup_str(&r, &s->path);
	if (rc < 0)
		goto out_bad;
	s->root_ino = dfs_rd_varint(&r);
	s->first_ingest = (int64_t)dfs_rd_u64(&r);
	s->last_ingest = (int64_t)dfs_rd_u64(&r);
	s->files = dfs_rd_varint(&r);
	s->bytes = dfs_rd_varint(&r);
	s->last_against = (int64_t)dfs_rd_u64(&r);
	s->against_result = (int32_t)dfs_rd_u32(&r);
	s->against_gen = dfs_rd_varint(&r);
	s->ingest_gen = dfs_rd_varint(&r);
	rc = v >= ENC_SOURCE_V2 ? dup_str(&r, &s->excludes) : 0;
	/* the patterns: each ends in a NUL, and v2 has at least one */
	if (rc == 0 && v >= ENC_SOURCE_V2 &&
	    (v == ENC_SOURCE_V2 || s->excludes.len) &&
	    (!s->excludes.len || s->excludes.p[s->excludes.len - 1] != '\0'))
		rc = -EBADMSG;
	if (rc == 0 && v == ENC_SOURCE_V3)
		rc = dec_snaps(&r, s);
	if (rc == 0)
		rc = rd_finish(&r);
	if (rc < 0)
		goto out_bad;
	return 0;
out_bad:
	store_source_release(s);
	return rc;
}

int enc_rules_val(const char *name, const void *text, size_t len, struct dfs_buf *b)
{
	dfs_buf_put_u8(b, ENC_VERSION);
	dfs_buf_put_bytes(b, name, strlen(name));
	dfs_buf_put_bytes(b, text, len);
	return b->err;
}

int dec_rules_val(const void *p, size_t n, struct store_rules *out)
{
	struct store_str name = { 0 }, text = { 0 };
	struct dfs_rd r;
	int rc;

	memset(out, 0, sizeof(*out));
	dfs_rd_init(&r, p, n);
	rc = rd_version(&r);
	if (rc == 0)
		rc = dup_str(&r, &name);
	if (rc == 0)
		rc = dup_str(&r, &text);
	if (rc == 0)
		rc = rd_finish(&r);
	/* both are text: a NUL inside would cut them short */
	if (rc == 0 && (memchr(name.p, '\0', name.len) || memchr(text.p, '\0', text.len) ||
			text.len > STORE_RULES_MAX))
		rc = -EBADMSG;
	if (rc < 0) {
		free(name.p);
		free(text.p);
		return rc;
	}
	out->name = (char *)name.p;	/* dup_str ends them with a NUL */
	out->text = (char *)text.p;
	out->len = text.len;
	return 0;
}

int enc_u64_val(uint64_t v, struct dfs_buf *b)
{
	dfs_buf_put_u8(b, ENC_VERSION);
	dfs_buf_put_varint(b, v);
	return b->err;
}

int dec_u64_val(const void *p, size_t n, uint64_t *v)
{
	struct dfs_rd r;
	int rc;

	dfs_rd_init(&r, p, n);
	rc = rd_version(&r);
	if (rc < 0)
		return rc;
	*v = dfs_rd_varint(&r);
	return rd_finish(&r);
}

int enc_pack_val(uint64_t committed, bool sealed, struct dfs_buf *b)
{
	dfs_buf_put_u8(b, ENC_VERSION);
	dfs_buf_put_varint(b, committed);
	dfs_buf_put_u8(b, sealed);
	return b->err;
}

int dec_pack_val(const void *p, size_t n, uint64_t *committed, bool *sealed)
{
	struct dfs_rd r;
	int rc;

	dfs_rd_init(&r, p, n);
	rc = rd_version(&r);
	if (rc < 0)
		return rc;
	*committed = dfs_rd_varint(&r);
	*sealed = dfs_rd_u8(&r) != 0;
	return rd_finish(&r);
}

static void put_extents(struct dfs_buf *b, const struct enc_extent *ext, size_t next)
{
	for (size_t i = 0; i < next; i++) {
		dfs_buf_put_u8(b, ext[i].hole ? 1 : 0);
		dfs_buf_put_varint(b, ext[i].len);
		if (!ext[i].hole)
			dfs_buf_append(b, ext[i].chunk.b, FP_LEN);
	}
}

int enc_content_head(uint64_t size, uint64_t data_bytes, const void *inline_data,
		     size_t inline_len, bool is_inline, uint64_t nextents,
		     const uint64_t *block_start, uint32_t nblocks, const struct enc_extent *ext,
		     size_t next, struct dfs_buf *b)
{
	dfs_buf_put_u8(b, ENC_VERSION);
	dfs_buf_put_u8(b, is_inline ? 1 : 0);
	dfs_buf_put_varint(b, size);
	dfs_buf_put_varint(b, data_bytes);
	if (is_inline)
		return dfs_buf_put_bytes(b, inline_data, inline_len);
	dfs_buf_put_varint(b, nextents);
	dfs_buf_put_varint(b, nblocks);
	for (uint32_t i = 0; i < nblocks; i++)
		dfs_buf_put_varint(b, block_start[i]);
	if (nblocks == 0)
		put_extents(b, ext, next);
	return b->err;
}

int dec_content_head(const void *p, size_t n, struct enc_content_head *h)
{
	struct dfs_rd r;
	uint64_t nb;
	int rc;

	memset(h, 0, sizeof(*h));
	dfs_rd_init(&r, p, n);
	rc = rd_version(&r);
	if (rc < 0)
		return rc;
	h->is_inline = dfs_rd_u8(&r) != 0;
	h->size = dfs_rd_varint(&r);
	h->data_bytes = dfs_rd_varint(&r);
	if (r.err)
		return -EBADMSG;
	if (h->is_inline) {
		h->inline_data = dfs_rd_bytes(&r, &h->inline_len);
		rc = rd_finish(&r);
		if (rc == 0 && h->inline_len != h->size)
			rc = -EBADMSG;
		return rc;
	}
	h->nextents = dfs_rd_varint(&r);
	nb = dfs_rd_varint(&r);
	if (r.err || nb > r.left || nb > UINT32_MAX)
		return -EBADMSG;
	h->nblocks = (uint32_t)nb;
	if (nb) {
		h->block_start = calloc(nb, sizeof(*h->block_start));
		if (!h->block_start)
			return -ENOMEM;
		for (uint64_t i = 0; i < nb; i++) {
			h->block_start[i] = dfs_rd_varint(&r);
			if (i && h->block_start[i] <= h->block_start[i - 1])
				r.err = -EBADMSG;
		}
		rc = rd_finish(&r);
		if (rc == 0 && (h->block_start[0] != 0 ||
				h->block_start[nb - 1] >= h->size ||
				h->nextents < nb))
			rc = -EBADMSG;
	} else {
		rc = r.err;
		h->extents = r.p;
		h->extents_len = r.left;
	}
	if (rc < 0)
		enc_content_head_release(h);
	return rc;
}

void enc_content_head_release(struct enc_content_head *h)
{
	free(h->block_start);
	h->block_start = NULL;
}

int enc_extent_block(const struct enc_extent *ext, size_t next, struct dfs_buf *b)
{
	dfs_buf_put_u8(b, ENC_VERSION);
	dfs_buf_put_varint(b, next);
	put_extents(b, ext, next);
	return b->err;
}

int dec_extents(const void *p, size_t n, bool with_header, struct enc_extent **out,
		size_t *count)
{
	struct enc_extent *ext = NULL;
	struct dfs_rd r;
	size_t cap = 0, cnt = 0;
	uint64_t want = 0;
	int rc;

	*out = NULL;
	*count = 0;
	dfs_rd_init(&r, p, n);
	if (with_header) {
		rc = rd_version(&r);
		if (rc < 0)
			return rc;
		want = dfs_rd_varint(&r);
		if (r.err || want > r.left / 2)
			return -EBADMSG;
		cap = (size_t)want;
		if (cap) {
			ext = calloc(cap, sizeof(*ext));
			if (!ext)
				return -ENOMEM;
		}
	}
	while (r.left && !r.err) {
		uint8_t flags;

		if (cnt == cap) {
			struct enc_extent *nx;

			if (with_header) {
				r.err = -EBADMSG;
				break;
			}
			cap = cap ? cap * 2 : 16;
			nx = realloc(ext, cap * sizeof(*ext));
			if (!nx) {
				free(ext);
				return -ENOMEM;
			}
			ext = nx;
		}
		flags = dfs_rd_u8(&r);
		if (flags > 1) {
			r.err = -EBADMSG;
			break;
		}
		ext[cnt].hole = flags == 1;
		ext[cnt].len = dfs_rd_varint(&r);
		if (ext[cnt].len == 0)
			r.err = -EBADMSG;
		if (!ext[cnt].hole) {
			const uint8_t *c = dfs_rd_raw(&r, FP_LEN);

			if (c)
				memcpy(ext[cnt].chunk.b, c, FP_LEN);
			if (ext[cnt].len > UINT32_MAX)
				r.err = -EBADMSG;
		}
		cnt++;
	}
	if (r.err || (with_header && cnt != want)) {
		free(ext);
		return r.err ? r.err : -EBADMSG;
	}
	*out = ext;
	*count = cnt;
	return 0;
}

int enc_oplog_begin(uint64_t seq, struct dfs_buf *b)
{
	dfs_buf_put_u8(b, ENC_VERSION);
	return dfs_buf_put_varint(b, seq);
}

int enc_oplog_add(struct dfs_buf *b, uint8_t cf, uint8_t op, const void *k, size_t klen,
		  const void *v, size_t vlen)
{
	dfs_buf_put_u8(b, cf);
	dfs_buf_put_u8(b, op);
	dfs_buf_put_bytes(b, k, klen);
	if (op == ENC_OP_PUT || op == ENC_OP_DROP)
		dfs_buf_put_bytes(b, v, vlen);
	if (op == ENC_OP_DROP && b->len && !b->err)
		b->data[0] = ENC_OPLOG_V2;	/* the version byte enc_oplog_begin wrote */
	return b->err;
}

int dec_oplog(const void *p, size_t n, uint64_t *seq,
	      int (*fn)(void *arg, uint8_t cf, uint8_t op, const uint8_t *k, size_t klen,
			const uint8_t *v, size_t vlen),
	      void *arg)
{
	struct dfs_rd r;
	uint8_t ver;
	int rc;

	dfs_rd_init(&r, p, n);
	ver = dfs_rd_u8(&r);
	if (r.err)
		return r.err;
	if (ver != ENC_VERSION && ver != ENC_OPLOG_V2)
		return -EPROTONOSUPPORT;
	*seq = dfs_rd_varint(&r);
	while (r.left && !r.err) {
		uint8_t cf = dfs_rd_u8(&r), op = dfs_rd_u8(&r);
		const uint8_t *k, *v = NULL;
		size_t klen, vlen = 0;

		k = dfs_rd_bytes(&r, &klen);
		if (op == ENC_OP_PUT || (op == ENC_OP_DROP && ver == ENC_OPLOG_V2))
			v = dfs_rd_bytes(&r, &vlen);
		else if (op != ENC_OP_DEL)
			r.err = -EBADMSG;
		if (r.err || !k)
			return -EBADMSG;
		rc = fn(arg, cf, op, k, klen, v, vlen);
		if (rc)
			return rc;
	}
	return r.err;
}
