/*
 * codec.h - per-chunk compression: zstd, or raw when compression does not pay.
 *
 * The store's only user of <zstd.h> (classify/container.c also decodes the first block
 * of a .zst file to find a tar header). A struct codec holds one compression and
 * one decompression context and belongs to one thread (one per worker).
 *
 * codec_compress() first runs a cheap early test (compress a sample at the fastest level;
 * if it does not shrink by at least CODEC_MIN_GAIN, store raw), then compresses, then
 * decompresses the result and memcmp()s it with the input, so a codec bug never reaches
 * disk (a mismatch is -EIO, logged).
 *
 * Errors: 0/-errno; -EBADMSG when stored bytes do not decompress to the expected length;
 * -EINVAL for a level outside 1..CODEC_MAX_LEVEL.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_STORE_CODEC_H
#define DFS_STORE_CODEC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum codec_id {
	CODEC_RAW = 0,
	CODEC_ZSTD = 1,
};

/* Debian 12's zstd 1.5.4 has a known rare corruption at levels >= 16 (fixed in 1.5.5). */
#define CODEC_MAX_LEVEL 15
/* Compression must save at least 1/32 of the bytes to be kept. */
#define CODEC_MIN_GAIN 32

struct codec;

int codec_new(int level, struct codec **out);
void codec_free(struct codec *c);
/* A buffer of at least @len bytes kept with @c (valid until the next call and
 * codec_free): where a reader puts compressed bytes without a malloc per chunk. */
uint8_t *codec_scratch(struct codec *c, size_t len);

/* Worst-case output size for @len input bytes. */
size_t codec_bound(size_t len);

/*
 * Compresses @src into @dst (capacity @dst_cap >= codec_bound(src_len)).
 * @param[out] id      CODEC_ZSTD or CODEC_RAW (then @dst holds a copy of @src)
 * @return stored length (>0 unless src_len is 0), or -errno.
 */
ssize_t codec_compress(struct codec *c, const void *src, size_t src_len, void *dst,
		       size_t dst_cap, enum codec_id *id);

/*
 * Decodes @src (stored with codec @id) into @dst; the result must be exactly @raw_len bytes.
 * @return 0, -EBADMSG (corrupt, or wrong length), -EPROTONOSUPPORT (unknown codec id).
 */
int codec_decompress(struct codec *c, enum codec_id id, const void *src, size_t src_len,
		     void *dst, size_t raw_len);

/* One-shot zstd of a whole buffer (metadata records); same contract as codec_compress
 * but without the raw fallback test. */
ssize_t codec_compress_meta(struct codec *c, const void *src, size_t src_len, void *dst,
			    size_t dst_cap);

#endif
