/*
 * codec.c - per-chunk compression (zstd, or raw when it does not pay), with a
 * decompress-and-compare check before anything is kept. The only file that includes
 * <zstd.h>.
 *
 * Early test: a sample of at most 8 KiB from the middle of the chunk is compressed at
 * zstd's fastest level; if it does not shrink by CODEC_MIN_GAIN, the chunk is stored raw
 * without compressing all of it (random data, media, archives).
 *
 * Threads: a struct codec belongs to one thread.
 *
 * SPDX-License-Identifier: MIT
 */
#include "codec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "log.h"

#define SAMPLE 8192u

struct codec {
	ZSTD_CCtx *cctx;
	ZSTD_CCtx *fast;	/* the early test */
	ZSTD_DCtx *dctx;
	int level;
	uint8_t *check;		/* decompression target of the check */
	size_t check_cap;
	uint8_t *scratch;	/* codec_scratch() */
	size_t scratch_cap;
	uint8_t sample_out[SAMPLE + 512];
};

int codec_new(int level, struct codec **out)
{
	struct codec *c;

	*out = NULL;
	if (level < 1 || level > CODEC_MAX_LEVEL)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->level = level;
	c->cctx = ZSTD_createCCtx();
	c->fast = ZSTD_createCCtx();
	c->dctx = ZSTD_createDCtx();
	if (!c->cctx || !c->fast || !c->dctx) {
		codec_free(c);
		return -ENOMEM;
	}
	ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_compressionLevel, level);
	ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_checksumFlag, 0);
	ZSTD_CCtx_setParameter(c->fast, ZSTD_c_compressionLevel, 1);
	*out = c;
	return 0;
}

void codec_free(struct codec *c)
{
	if (!c)
		return;
	ZSTD_freeCCtx(c->cctx);
	ZSTD_freeCCtx(c->fast);
	ZSTD_freeDCtx(c->dctx);
	free(c->check);
	free(c->scratch);
	free(c);
}

uint8_t *codec_scratch(struct codec *c, size_t len)
{
	if (c->scratch_cap < len) {
		uint8_t *p = realloc(c->scratch, len);

		if (!p)
			return NULL;
		c->scratch = p;
		c->scratch_cap = len;
	}
	return c->scratch;
}

size_t codec_bound(size_t len)
{
	return ZSTD_compressBound(len);
}

static int check_roundtrip(struct codec *c, const void *src, size_t len, const void *z,
			   size_t zlen)
{
	size_t n;

	if (c->check_cap < len) {
		uint8_t *p = realloc(c->check, len);

		if (!p)
			return -ENOMEM;
		c->check = p;
		c->check_cap = len;
	}
	n = ZSTD_decompressDCtx(c->dctx, c->check, len, z, zlen);
	if (ZSTD_isError(n) || n != len || memcmp(c->check, src, len)) {
		dfs_err("codec: zstd output does not decompress to its input; not stored");
		return -EIO;
	}
	return 0;
}

ssize_t codec_compress(struct codec *c, const void *src, size_t src_len, void *dst,
		       size_t dst_cap, enum codec_id *id)
{
	size_t n;
	int rc;

	*id = CODEC_RAW;
	if (dst_cap < src_len)
		return -ENOSPC;
	if (src_len >= 2 * SAMPLE) {
		const uint8_t *mid = (const uint8_t *)src + src_len / 2 - SAMPLE / 2;

		n = ZSTD_compress2(c->fast, c->sample_out, sizeof(c->sample_out), mid, SAMPLE);
		if (ZSTD_isError(n) || n > SAMPLE - SAMPLE / CODEC_MIN_GAIN)
			goto raw;
	}
	if (src_len == 0)
		goto raw;
	n = ZSTD_compress2(c->cctx, dst, dst_cap, src, src_len);
	if (ZSTD_isError(n)) {
		dfs_err("codec: zstd: %s", ZSTD_getErrorName(n));
		return -EIO;
	}
	if (n > src_len - src_len / CODEC_MIN_GAIN)
		goto raw;
	rc = check_roundtrip(c, src, src_len, dst, n);
	if (rc < 0)
		return rc;
	*id = CODEC_ZSTD;
	return (ssize_t)n;
raw:
	memcpy(dst, src, src_len);
	return (ssize_t)src_len;
}

int codec_decompress(struct codec *c, enum codec_id id, const void *src, size_t src_len,
		     void *dst, size_t raw_len)
{
	unsigned long long fsz;
	size_t n;

	switch (id) {
	case CODEC_RAW:
		if (src_len != raw_len)
			return -EBADMSG;
		memcpy(dst, src, raw_len);
		return 0;
	case CODEC_ZSTD:
		fsz = ZSTD_getFrameContentSize(src, src_len);
		if (fsz != raw_len)
			return -EBADMSG;
		n = ZSTD_decompressDCtx(c->dctx, dst, raw_len, src, src_len);
		if (ZSTD_isError(n) || n != raw_len)
			return -EBADMSG;
		return 0;
	default:
		return -EPROTONOSUPPORT;
	}
}

ssize_t codec_compress_meta(struct codec *c, const void *src, size_t src_len, void *dst,
			    size_t dst_cap)
{
	size_t n = ZSTD_compress2(c->cctx, dst, dst_cap, src, src_len);
	int rc;

	if (ZSTD_isError(n)) {
		dfs_err("codec: zstd: %s", ZSTD_getErrorName(n));
		return -EIO;
	}
	rc = check_roundtrip(c, src, src_len, dst, n);
	return rc < 0 ? rc : (ssize_t)n;
}
