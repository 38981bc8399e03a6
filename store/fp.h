/*
 * fp.h - fingerprints: SHA-256 chunk and content ids, XXH3 record checksums.
 *
 * The only module that includes <openssl/evp.h> and <xxhash.h>.
 * SHA-256 (OpenSSL EVP, SHA-NI when the CPU has it) is the identity of chunks and
 * content objects. XXH3-64 is a checksum of bytes on disk and an in-memory filter
 * key, never an identity (XXH3 has seed-independent collisions on short inputs).
 *
 * Threads: all functions are thread-safe; a struct fp_sha belongs to one thread.
 * Errors: fp_sha_* return 0 or -ENOMEM/-EIO (libcrypto failure, logged).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_STORE_FP_H
#define DFS_STORE_FP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FP_LEN 32
#define FP_HEX_LEN 64

struct fp256 {
	uint8_t b[FP_LEN];
};

/* SHA-256 of @data. Cannot fail in practice; aborts only if libcrypto is broken. */
void fp_sha256(const void *data, size_t len, struct fp256 *out);

/* Streaming SHA-256 (content ids: length and chunk ids fed in order). */
struct fp_sha;
int fp_sha_new(struct fp_sha **out);
void fp_sha_free(struct fp_sha *s);
int fp_sha_reset(struct fp_sha *s);
int fp_sha_update(struct fp_sha *s, const void *data, size_t len);
int fp_sha_final(struct fp_sha *s, struct fp256 *out);

/*
 * MD5 of the first @len bytes of the file open at @fd: the checksum an S3 server keeps of
 * a single-part object (its ETag, and the Content-MD5 of an upload), so that pback_s3.c
 * can confirm what the server stored. Never an identity.
 * 0 or -errno (read) / -EBADMSG (the file is shorter) / -EIO (libcrypto).
 */
int fp_md5_fd(int fd, uint64_t len, uint8_t out[16]);

/* XXH3-64 with seed 0. */
uint64_t fp_xxh3(const void *data, size_t len);

bool fp_equal(const struct fp256 *a, const struct fp256 *b);
bool fp_is_zero(const struct fp256 *a);
/* Writes 64 lowercase hex digits and a NUL into @hex (FP_HEX_LEN + 1 bytes). */
void fp_to_hex(const struct fp256 *a, char *hex);
/* Parses 64 hex digits; 0 or -EINVAL. */
int fp_from_hex(const char *hex, struct fp256 *out);

#endif
