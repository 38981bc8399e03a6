/*
 * pback.h - where sealed packs live: the pack backend seam.
 *
 * The store writes every pack into STORE/packs/ first (appends, fsync: store.c), because
 * an open pack takes records until it is sealed. A backend is where a pack lives once it
 * is sealed and committed:
 *   - local: STORE/packs/ itself (today's behaviour; put only checks the file);
 *   - s3:    objects PREFIX/XXXXXXXX.pack in a bucket of an S3 server (pback_s3.c, the
 *            only module that includes <curl/curl.h>). With it, STORE/packs/ is a staging
 *            area: a pack is sealed, put (uploaded, then its size and MD5 read back from
 *            the server and compared), and only then named by an index commit; the staged
 *            file is removed after that commit.
 *
 * Operations return 0 / bytes, or -errno:
 *   -ENOENT        no such pack;
 *   -ECONNREFUSED  the server could not be reached (after the retries);
 *   -ETIMEDOUT     no answer in time (after the retries);
 *   -EACCES        refused (credentials, signature);
 *   -EBADMSG       the server holds other bytes than were put (size or checksum);
 *   -EIO           anything else the server answered (logged with its code).
 * Remote backends retry transient failures (connection, timeout, HTTP 5xx) with
 * exponential backoff: DFS_S3_RETRIES (default 4) retries from 100 ms, doubling, at most
 * 2 s apart; DFS_S3_TIMEOUT seconds (default 30) without progress ends an attempt.
 *
 * Threads: every operation is thread-safe (a remote backend keeps a pool of connections).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_STORE_PBACK_H
#define DFS_STORE_PBACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct pback;

struct pback_ops {
	const char *name;	/* "local", "s3" */
	/* Stores the first @size bytes of the pack file @path (sealed, or a remote store's
	 * newest pack, kept open while small: store_txn.c) as pack @id, and confirms it. */
	int (*put)(struct pback *b, uint32_t id, const char *path, uint64_t size);
	/* Up to @len bytes of pack @id at @off: bytes read (short only at its end). */
	ssize_t (*get)(struct pback *b, uint32_t id, void *buf, size_t len, uint64_t off);
	/* Calls @fn for every pack there is (any order); a non-zero return stops it. */
	int (*list)(struct pback *b, int (*fn)(void *arg, uint32_t id, uint64_t size),
		    void *arg);
	int (*del)(struct pback *b, uint32_t id);
	int (*stat)(struct pback *b, uint32_t id, uint64_t *size);
	void (*free)(struct pback *b);
};

/* Every backend's struct begins with this. */
struct pback {
	const struct pback_ops *ops;
	bool remote;
};

static inline int pback_put(struct pback *b, uint32_t id, const char *path, uint64_t size)
{
	return b->ops->put(b, id, path, size);
}

static inline ssize_t pback_get(struct pback *b, uint32_t id, void *buf, size_t len,
				uint64_t off)
{
	return b->ops->get(b, id, buf, len, off);
}

static inline int pback_list(struct pback *b,
			     int (*fn)(void *arg, uint32_t id, uint64_t size), void *arg)
{
	return b->ops->list(b, fn, arg);
}

static inline int pback_del(struct pback *b, uint32_t id)
{
	return b->ops->del(b, id);
}

static inline int pback_stat(struct pback *b, uint32_t id, uint64_t *size)
{
	return b->ops->stat(b, id, size);
}

/* pback_free(NULL) is a no-op. */
void pback_free(struct pback *b);

/* The local directory backend over STORE/packs (@store_dir copied). */
int pback_local_new(const char *store_dir, struct pback **out);

/* Where an S3 backend's packs are, as the store config records it. */
struct pback_s3_conf {
	const char *url;	/* s3://BUCKET[/PREFIX] */
	const char *endpoint;	/* http[s]://HOST[:PORT] */
	bool vhost;		/* virtual-host addressing (BUCKET.HOST), else path-style */
	const char *region;	/* NULL: $AWS_REGION, $AWS_DEFAULT_REGION or us-east-1 */
	const char *credentials; /* NULL: the environment; else a file (see pback_s3.c) */
};

/*
 * Checks @url ("s3://BUCKET[/PREFIX]": a bucket name of 3..63 of [a-z0-9.-], a prefix of
 * [A-Za-z0-9._/-]): 0 or -EINVAL.
 */
int pback_s3_url_check(const char *url);
/*
 * An S3 backend. Credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY from the
 * environment, else from @c->credentials (lines KEY=VALUE or "key = value", as
 * ~/.aws/credentials: aws_access_key_id, aws_secret_access_key). -EINVAL (a bad url or
 * endpoint), -EACCES (no credentials; logged), -ENOMEM.
 */
int pback_s3_new(const struct pback_s3_conf *c, struct pback **out);
/* Creates the bucket if it does not exist (store creation). */
int pback_s3_make_bucket(struct pback *b);

#endif
