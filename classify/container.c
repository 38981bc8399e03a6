/*
 * container.c - the formats classify/ decides in C before libmagic (mime.h,
 * mime_container): a SQLite 3 database by its 16-byte header, and a tar archive inside
 * gzip, bzip2, xz or zstd compression by the ustar magic of its first header block once the
 * start of the file is decompressed. libmagic with decompression off calls a .tar.gz
 * "application/gzip", the same as a gzip'ed man page; these answers tell a backup
 * archive from a compressed single file (docs/CLASSIFY.md, "Archives by content").
 *
 * Only the first bytes a caller has (the first chunk, MIME_HEAD bytes at most) are
 * decompressed, into a 512-byte buffer: a tar's first header block is its first 512
 * bytes, and its magic is at offset 257.
 *
 * SPDX-License-Identifier: MIT
 */
#include "mime.h"

#include <stdint.h>
#include <string.h>

#include <bzlib.h>
#include <lzma.h>
#include <zlib.h>
#include <zstd.h>

#define TAR_BLOCK 512

/* "ustar\0" (POSIX) or "ustar  \0" (GNU) at offset 257 of the first header block */
static bool is_tar(const uint8_t *b, size_t n)
{
	return n >= 263 && !memcmp(b + 257, "ustar", 5) && (b[262] == 0 || b[262] == ' ');
}

static size_t gunzip_head(const void *in, size_t len, uint8_t *out)
{
	z_stream z;
	size_t n;

	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
		return 0;
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = TAR_BLOCK;
	(void)inflate(&z, Z_SYNC_FLUSH);
	n = TAR_BLOCK - z.avail_out;
	inflateEnd(&z);
	return n;
}

static size_t unxz_head(const void *in, size_t len, uint8_t *out)
{
	lzma_stream z = LZMA_STREAM_INIT;
	size_t n;

	if (lzma_stream_decoder(&z, 64u << 20, 0) != LZMA_OK)
		return 0;
	z.next_in = in;
	z.avail_in = len;
	z.next_out = out;
	z.avail_out = TAR_BLOCK;
	/* what it decoded counts whatever it says of the rest (the buffer ends mid-stream) */
	n = lzma_code(&z, LZMA_RUN) == LZMA_MEM_ERROR ? 0 : TAR_BLOCK - z.avail_out;
	lzma_end(&z);
	return n;
}

static size_t unzstd_head(const void *in, size_t len, uint8_t *out)
{
	ZSTD_DStream *z = ZSTD_createDStream();
	ZSTD_inBuffer ib = { in, len, 0 };
	ZSTD_outBuffer ob = { out, TAR_BLOCK, 0 };

	if (!z)
		return 0;
	/* a window larger than 128 MiB is refused: the first block is all we want */
	if (!ZSTD_isError(ZSTD_DCtx_setParameter(z, ZSTD_d_windowLogMax, 27)))
		while (ob.pos < ob.size && ib.pos < ib.size &&
		       !ZSTD_isError(ZSTD_decompressStream(z, &ob, &ib)))
			;
	ZSTD_freeDStream(z);
	return ob.pos;
}

static size_t bunzip2_head(const void *in, size_t len, uint8_t *out)
{
	bz_stream z;
	size_t n;

	memset(&z, 0, sizeof(z));
	if (BZ2_bzDecompressInit(&z, 0, 0) != BZ_OK)
		return 0;
	z.next_in = (char *)(uintptr_t)in;
	z.avail_in = (unsigned)len;
	z.next_out = (char *)out;
	z.avail_out = TAR_BLOCK;
	n = BZ2_bzDecompress(&z) < 0 ? 0 : TAR_BLOCK - z.avail_out;
	BZ2_bzDecompressEnd(&z);
	return n;
}

bool mime_compressed_head(const void *buf, size_t len)
{
	const uint8_t *p = buf;

	return (len >= 3 && p[0] == 0x1f && p[1] == 0x8b && p[2] == 8) ||
	       (len >= 4 && !memcmp(p, "BZh", 3) && p[3] >= '1' && p[3] <= '9') ||
	       (len >= 6 && !memcmp(p, "\xfd" "7zXZ", 6)) ||
	       (len >= 4 && !memcmp(p, "\x28\xb5\x2f\xfd", 4));
}

const char *mime_container(const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint8_t out[TAR_BLOCK];

	if (len >= 16 && !memcmp(p, "SQLite format 3", 16))
		return MIME_SQLITE;
	if (len >= 3 && p[0] == 0x1f && p[1] == 0x8b && p[2] == 8)
		return is_tar(out, gunzip_head(buf, len, out)) ? MIME_TAR_GZIP : NULL;
	if (len >= 4 && !memcmp(p, "BZh", 3) && p[3] >= '1' && p[3] <= '9')
		return is_tar(out, bunzip2_head(buf, len, out)) ? MIME_TAR_BZIP2 : NULL;
	if (len >= 6 && !memcmp(p, "\xfd" "7zXZ", 6))
		return is_tar(out, unxz_head(buf, len, out)) ? MIME_TAR_XZ : NULL;
	if (len >= 4 && !memcmp(p, "\x28\xb5\x2f\xfd", 4))
		return is_tar(out, unzstd_head(buf, len, out)) ? MIME_TAR_ZSTD : NULL;
	return NULL;
}
