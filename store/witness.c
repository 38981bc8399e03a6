/*
 * witness.c - the witnesses of an organized directory (see witness.h).
 *
 * SPDX-License-Identifier: MIT
 */
#include "witness.h"

#include <errno.h>
#include <string.h>

const struct store_str *store_witness_find(const struct store_inode *in)
{
	size_t nl = sizeof(STORE_WITNESS_XATTR) - 1;

	for (size_t i = 0; i < in->nxattrs; i++)
		if (in->xattrs[i].name.len == nl &&
		    !memcmp(in->xattrs[i].name.p, STORE_WITNESS_XATTR, nl))
			return &in->xattrs[i].value;
	return NULL;
}

static int bytes_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);

	return c ? c : (al > bl) - (al < bl);
}

int store_witness_decode(const uint8_t *p, size_t n, struct store_witnesses *out)
{
	struct dfs_rd r;
	uint8_t ver, flags;
	uint64_t count;

	memset(out, 0, sizeof(*out));
	dfs_rd_init(&r, p, n);
	ver = dfs_rd_u8(&r);
	flags = dfs_rd_u8(&r);
	count = dfs_rd_varint(&r);
	if (r.err)
		return -EBADMSG;
	if (ver != STORE_WITNESS_VERSION)
		return -EPROTONOSUPPORT;
	if (flags & ~STORE_WITNESS_PARTIAL || count > STORE_WITNESS_MAX)
		return -EBADMSG;
	out->partial = flags & STORE_WITNESS_PARTIAL;
	for (uint64_t i = 0; i < count; i++) {
		size_t l;
		const uint8_t *b = dfs_rd_bytes(&r, &l);

		if (!b || store_origin_parent_len(b, l) == (size_t)-1)
			return -EBADMSG;
		if (i && bytes_cmp(out->p[i - 1], out->len[i - 1], b, l) >= 0)
			return -EBADMSG;
		out->p[i] = b;
		out->len[i] = l;
		out->n++;
	}
	return r.err || r.left ? -EBADMSG : 0;
}

int store_witness_encode(bool partial, const struct store_str *v, size_t n, struct dfs_buf *out)
{
	if (n > STORE_WITNESS_MAX)
		return -EINVAL;
	dfs_buf_put_u8(out, STORE_WITNESS_VERSION);
	dfs_buf_put_u8(out, partial ? STORE_WITNESS_PARTIAL : 0);
	dfs_buf_put_varint(out, n);
	for (size_t i = 0; i < n; i++)
		dfs_buf_put_bytes(out, v[i].p, v[i].len);
	return out->err;
}

size_t store_origin_parent_len(const uint8_t *o, size_t len)
{
	const uint8_t *colon = memchr(o, ':', len);
	size_t root;

	if (!colon || colon == o || (size_t)(colon - o) + 2 > len || colon[1] != '/')
		return (size_t)-1;
	root = (size_t)(colon - o) + 1;	/* "NAME:" */
	if (len == root + 1)
		return 0;	/* "NAME:/": the source root */
	while (len > root && o[len - 1] != '/')
		len--;
	/* "NAME:/a/b/leaf": up to before its last '/'; "NAME:/leaf": "NAME:" */
	return len - 1 > root ? len - 1 : root;
}

bool store_prefix_covers(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	if (alen == 0)
		return true;
	if (blen < alen || memcmp(a, b, alen))
		return false;
	/* "NAME:" covers "NAME:/x"; "NAME:/a" covers "NAME:/a/x", not "NAME:/ab" */
	return blen == alen || b[alen] == '/';
}
