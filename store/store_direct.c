/*
 * store_direct.c - a stream's chunks read with O_DIRECT (see store_chunks_read_direct).
 *
 * A cold stream read through the page cache costs a copy out of it (preadv into the
 * chunk's buffer) on top of the reply's copy into the reader's page cache, and the
 * pages' insertion, read-ahead and reclaim. Read with O_DIRECT, the disk's DMA fills the
 * chunk's buffer and the only copy left is the FUSE reply's. O_DIRECT wants the file
 * offset, the length and the buffer aligned to the device's logical block: each record
 * gets a buffer from its aligned start to its aligned end, a run of records that follow
 * each other in a pack is one preadv whose iovec k covers [start of k's block, start of
 * k+1's block), and record k's tail that went into k+1's buffer (under a block) is copied
 * back. Every record is then checked in place as store_chunk_read checks it.
 *
 * Threads: stateless (the index is thread-safe). Errors: see store.h.
 *
 * SPDX-License-Identifier: MIT
 */
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "codec.h"
#include "pack.h"

/* The alignment of offsets, lengths and buffers: the largest logical block in use. */
#define DIRECT_ALIGN 4096u

static uint64_t al_down(uint64_t v)
{
	return v & ~(uint64_t)(DIRECT_ALIGN - 1);
}

static uint64_t al_up(uint64_t v)
{
	return al_down(v + DIRECT_ALIGN - 1);
}

static uint64_t rec_end(const struct store_direct *d)
{
	return d->loc.off + PACK_REC_HDR + d->loc.stored_len;
}

/* Checks record @d read into its buffer; its data, or -EBADMSG. */
static int check(struct store_direct *d)
{
	const uint8_t *rec = (const uint8_t *)d->mem + (d->loc.off - al_down(d->loc.off));
	struct pack_rec r;
	uint32_t len;

	if (pack_rec_decode(rec, &r) < 0 || r.stored_len != d->loc.stored_len ||
	    !pack_rec_check(rec, rec + PACK_REC_HDR, r.stored_len) || r.type != PACK_REC_CHUNK ||
	    !fp_equal(&r.id, &d->id) || r.raw_len != d->raw_len || r.codec != CODEC_RAW)
		return -EBADMSG;
	d->data = pack_rec_data(&r, rec + PACK_REC_HDR, &len);
	return len == d->raw_len ? 0 : -EBADMSG;
}

static void drop(struct store_direct *d, size_t n, int rc)
{
	for (size_t k = 0; k < n; k++) {
		free(d[k].mem);
		d[k].mem = NULL;
		d[k].data = NULL;
		d[k].rc = rc;
	}
}

/* Records @d[0..@n) of one pack, each right after the one before: one preadv. */
static int read_run(struct store *st, struct store_direct *d, size_t n)
{
	struct iovec iov[STORE_DIRECT_MAX];
	char path[PATH_MAX];
	uint64_t a0 = al_down(d[0].loc.off);
	ssize_t got;
	int fd;

	if (pack_path(st->dir, d[0].loc.pack, path, sizeof(path)) < 0)
		return 0;	/* each @rc stays -EOPNOTSUPP */
	fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (fd < 0)	/* gone (a gc, a remote pack): the buffered read finds out */
		return errno == EINVAL ? -EINVAL : 0;
	for (size_t k = 0; k < n; k++) {
		uint64_t a = al_down(d[k].loc.off), e = al_up(rec_end(&d[k]));
		uint64_t next = k + 1 < n ? al_down(d[k + 1].loc.off) : e;

		if (posix_memalign(&d[k].mem, DIRECT_ALIGN, (size_t)(e - a)) != 0) {
			d[k].mem = NULL;
			drop(d, k, -ENOMEM);
			close(fd);
			return 0;
		}
		iov[k] = (struct iovec){ d[k].mem, (size_t)(next - a) };
	}
	do
		got = preadv(fd, iov, (int)n, (off_t)a0);
	while (got < 0 && errno == EINTR);
	close(fd);
	if (got < 0 && errno == EINVAL) {
		drop(d, n, -EOPNOTSUPP);
		return -EINVAL;
	}
	/* short (the pack is shorter than the index says) or failed: the buffered read */
	if (got < 0 || (uint64_t)got < rec_end(&d[n - 1]) - a0) {
		drop(d, n, -EOPNOTSUPP);
		return 0;
	}
	/* record k's bytes in k+1's first block go back to k's buffer */
	for (size_t k = 0; k + 1 < n; k++) {
		uint64_t a = al_down(d[k].loc.off), next = al_down(d[k + 1].loc.off);

		memcpy((uint8_t *)d[k].mem + (next - a), d[k + 1].mem,
		       (size_t)(rec_end(&d[k]) - next));
	}
	for (size_t k = 0; k < n; k++) {
		d[k].rc = check(&d[k]);
		if (d[k].rc < 0) {
			free(d[k].mem);
			d[k].mem = NULL;
		}
	}
	return 0;
}

int store_chunks_read_direct(struct store *st, struct store_direct *c, size_t n)
{
	bool ok[STORE_DIRECT_MAX];
	size_t i = 0;

	if (n > STORE_DIRECT_MAX)
		return -E2BIG;
	for (size_t k = 0; k < n; k++) {
		struct store_chunk_loc *l = &c[k].loc;

		c[k].mem = NULL;
		c[k].data = NULL;
		c[k].rc = -EOPNOTSUPP;
		ok[k] = store_chunk_locate(st, &c[k].id, l) == 0 && l->codec == CODEC_RAW &&
			l->raw_len == c[k].raw_len && l->stored_len <= PACK_REC_MAX &&
			l->stored_len >= l->raw_len;
	}
	while (i < n) {
		size_t j = i + 1;
		int rc;

		if (!ok[i]) {
			i++;
			continue;
		}
		/* the run: records right after each other, each starting in a later block */
		while (j < n && ok[j] && c[j].loc.pack == c[i].loc.pack &&
		       c[j].loc.off == rec_end(&c[j - 1]) &&
		       al_down(c[j].loc.off) > al_down(c[j - 1].loc.off))
			j++;
		rc = read_run(st, c + i, j - i);
		if (rc < 0) {
			drop(c, n, -EOPNOTSUPP);
			return rc;
		}
		i = j;
	}
	return 0;
}
