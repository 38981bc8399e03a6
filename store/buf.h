/*
 * buf.h - a growable byte buffer with a hard cap (dfs_buf_*).
 *
 * Every growable thing has a byte cap set at init: appends past @max fail with
 * -E2BIG and the buffer keeps its first error (sticky), so a chain of appends is
 * checked once at the end.
 *
 * Threads: a dfs_buf belongs to one thread.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_STORE_BUF_H
#define DFS_STORE_BUF_H

#include <stddef.h>
#include <stdint.h>

struct dfs_buf {
	uint8_t *data;	/* owned; NULL until the first append */
	size_t len;
	size_t cap;
	size_t max;	/* hard cap in bytes */
	int err;	/* first error, 0 if none (sticky) */
};

void dfs_buf_init(struct dfs_buf *b, size_t max);
void dfs_buf_release(struct dfs_buf *b);
/* Empties the buffer (keeps memory and the cap; clears the error). */
void dfs_buf_clear(struct dfs_buf *b);
/* Makes room for @n more bytes. 0, -ENOMEM or -E2BIG (past max). */
int dfs_buf_reserve(struct dfs_buf *b, size_t n);
int dfs_buf_append(struct dfs_buf *b, const void *p, size_t n);
int dfs_buf_put_u8(struct dfs_buf *b, uint8_t v);
/* Little-endian fixed-width integers. */
int dfs_buf_put_u32(struct dfs_buf *b, uint32_t v);
int dfs_buf_put_u64(struct dfs_buf *b, uint64_t v);
/* LEB128 varint. */
int dfs_buf_put_varint(struct dfs_buf *b, uint64_t v);
/* varint length, then the bytes. */
int dfs_buf_put_bytes(struct dfs_buf *b, const void *p, size_t n);

/* A bounds-checked reader over borrowed bytes; any overrun sets err = -EBADMSG (sticky). */
struct dfs_rd {
	const uint8_t *p;
	size_t left;
	int err;
};

void dfs_rd_init(struct dfs_rd *r, const void *p, size_t n);
uint8_t dfs_rd_u8(struct dfs_rd *r);
uint32_t dfs_rd_u32(struct dfs_rd *r);
uint64_t dfs_rd_u64(struct dfs_rd *r);
uint64_t dfs_rd_varint(struct dfs_rd *r);
/* Returns a pointer into the input (borrowed) and its length; NULL on overrun. */
const uint8_t *dfs_rd_bytes(struct dfs_rd *r, size_t *len);
/* Returns @n raw bytes (borrowed), NULL on overrun. */
const uint8_t *dfs_rd_raw(struct dfs_rd *r, size_t n);

/* Big-endian helpers for index keys (so byte order sorts numerically). */
void dfs_put_be64(uint8_t *p, uint64_t v);
uint64_t dfs_get_be64(const uint8_t *p);
void dfs_put_be32(uint8_t *p, uint32_t v);
uint32_t dfs_get_be32(const uint8_t *p);

#endif
