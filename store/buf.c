/*
 * buf.c - capped growable buffers and bounds-checked readers (little-endian, varints).
 *
 * Threads: none shared. Errors: sticky in the struct (-ENOMEM, -E2BIG, -EBADMSG).
 *
 * SPDX-License-Identifier: MIT
 */
#include "buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void dfs_buf_init(struct dfs_buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
}

void dfs_buf_release(struct dfs_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

void dfs_buf_clear(struct dfs_buf *b)
{
	b->len = 0;
	b->err = 0;
}

int dfs_buf_reserve(struct dfs_buf *b, size_t n)
{
	size_t want, cap;
	uint8_t *p;

	if (b->err)
		return b->err;
	if (n > b->max || b->len > b->max - n) {
		b->err = -E2BIG;
		return b->err;
	}
	want = b->len + n;
	if (want <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < want)
		cap = cap > SIZE_MAX / 2 ? want : cap * 2;
	if (cap > b->max)
		cap = b->max;
	p = realloc(b->data, cap);
	if (!p) {
		b->err = -ENOMEM;
		return b->err;
	}
	b->data = p;
	b->cap = cap;
	return 0;
}

int dfs_buf_append(struct dfs_buf *b, const void *p, size_t n)
{
	int rc = dfs_buf_reserve(b, n);

	if (rc < 0)
		return rc;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

int dfs_buf_put_u8(struct dfs_buf *b, uint8_t v)
{
	return dfs_buf_append(b, &v, 1);
}

int dfs_buf_put_u32(struct dfs_buf *b, uint32_t v)
{
	uint8_t p[4];

	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
	return dfs_buf_append(b, p, sizeof(p));
}

int dfs_buf_put_u64(struct dfs_buf *b, uint64_t v)
{
	uint8_t p[8];

	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
	return dfs_buf_append(b, p, sizeof(p));
}

int dfs_buf_put_varint(struct dfs_buf *b, uint64_t v)
{
	uint8_t p[10];
	size_t n = 0;

	do {
		p[n] = (uint8_t)(v & 0x7f);
		v >>= 7;
		if (v)
			p[n] |= 0x80;
		n++;
	} while (v);
	return dfs_buf_append(b, p, n);
}

int dfs_buf_put_bytes(struct dfs_buf *b, const void *p, size_t n)
{
	int rc = dfs_buf_put_varint(b, n);

	if (rc < 0)
		return rc;
	return dfs_buf_append(b, p, n);
}

void dfs_rd_init(struct dfs_rd *r, const void *p, size_t n)
{
	r->p = p;
	r->left = n;
	r->err = 0;
}

const uint8_t *dfs_rd_raw(struct dfs_rd *r, size_t n)
{
	const uint8_t *p;

	if (r->err || n > r->left) {
		r->err = -EBADMSG;
		return NULL;
	}
	p = r->p;
	r->p += n;
	r->left -= n;
	return p;
}

uint8_t dfs_rd_u8(struct dfs_rd *r)
{
	const uint8_t *p = dfs_rd_raw(r, 1);

	return p ? p[0] : 0;
}

uint32_t dfs_rd_u32(struct dfs_rd *r)
{
	const uint8_t *p = dfs_rd_raw(r, 4);
	uint32_t v = 0;

	if (!p)
		return 0;
	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

uint64_t dfs_rd_u64(struct dfs_rd *r)
{
	const uint8_t *p = dfs_rd_raw(r, 8);
	uint64_t v = 0;

	if (!p)
		return 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

uint64_t dfs_rd_varint(struct dfs_rd *r)
{
	uint64_t v = 0;

	for (unsigned shift = 0; shift < 64; shift += 7) {
		const uint8_t *p = dfs_rd_raw(r, 1);

		if (!p)
			return 0;
		if (shift == 63 && (p[0] & 0x7e)) {
			r->err = -EBADMSG;
			return 0;
		}
		v |= (uint64_t)(p[0] & 0x7f) << shift;
		if (!(p[0] & 0x80))
			return v;
	}
	r->err = -EBADMSG;
	return 0;
}

const uint8_t *dfs_rd_bytes(struct dfs_rd *r, size_t *len)
{
	uint64_t n = dfs_rd_varint(r);

	if (r->err || n > r->left) {
		r->err = -EBADMSG;
		*len = 0;
		return NULL;
	}
	*len = (size_t)n;
	return dfs_rd_raw(r, (size_t)n);
}

void dfs_put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

uint64_t dfs_get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

void dfs_put_be32(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

uint32_t dfs_get_be32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 0; i < 4; i++)
		v = (v << 8) | p[i];
	return v;
}
