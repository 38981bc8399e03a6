/*
 * pack.c - pack file headers and records: encoding, checked reads, scans.
 *
 * Writers (store.c) append encoded records with sio_pwrite and make them durable before
 * the index names them (commit protocol: docs/ARCHITECTURE.md#commit). Readers check
 * every record's checksum before its payload is used, and every length before it is
 * trusted, so corrupt bytes become -EBADMSG, never a crash.
 *
 * Threads: stateless. Errors: see pack.h.
 *
 * SPDX-License-Identifier: MIT
 */
#include "pack.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sio.h"

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

ssize_t pack_src_pread(const struct pack_src *src, void *buf, size_t len, uint64_t off)
{
	if (src->fd >= 0)
		return sio_pread(src->fd, buf, len, (off_t)off);
	return src->pread(src->arg, src->id, buf, len, off);
}

int pack_path(const char *store_dir, uint32_t id, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/packs/%02x/%08" PRIx32 ".pack", store_dir, id & 0xffu, id);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

bool pack_name_parse(const char *name, uint32_t *id)
{
	unsigned long v;
	char *end;

	if (strlen(name) != 13 || strcmp(name + 8, ".pack") != 0 || name[0] == '-' ||
	    name[0] == '+' || name[0] == ' ')
		return false;
	v = strtoul(name, &end, 16);
	if (end != name + 8)
		return false;
	*id = (uint32_t)v;
	return true;
}

int pack_dir_path(const char *store_dir, uint32_t id, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/packs/%02x", store_dir, id & 0xffu);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static uint64_t rec_checksum(const uint8_t *hdr, const void *payload, size_t len)
{
	uint64_t h1 = fp_xxh3(hdr, PACK_REC_HDR - 8);
	uint64_t h2 = fp_xxh3(payload, len);

	return h1 ^ ((h2 << 17) | (h2 >> 47));
}

void pack_blocks_table(const void *data, uint32_t len, unsigned shift, uint8_t *table)
{
	const uint8_t *p = data;
	uint32_t bs = 1u << shift;

	for (uint32_t at = 0, i = 0; at < len; at += bs, i++)
		put_le64(table + 8 * (size_t)i, fp_xxh3(p + at, len - at < bs ? len - at : bs));
}

/* Are blocks [@first, ...) of a version 2 record, @n bytes from block @first's start at
 * @data, those its @table names? */
static bool blocks_check(const struct pack_rec *r, const uint8_t *table, uint32_t first,
			 const uint8_t *data, size_t n)
{
	uint32_t bs = 1u << r->shift;

	for (size_t at = 0, i = first; at < n; at += bs, i++)
		if (get_le64(table + 8 * i) != fp_xxh3(data + at, n - at < bs ? n - at : bs))
			return false;
	return true;
}

void pack_rec_encode(const struct pack_rec *r, const void *payload, uint8_t hdr[PACK_REC_HDR])
{
	put_le32(hdr, PACK_REC_MAGIC);
	hdr[4] = r->shift ? PACK_REC_VERSION_BLOCKS : PACK_REC_VERSION;
	hdr[5] = r->type;
	hdr[6] = r->codec;
	hdr[7] = r->shift;
	put_le32(hdr + 8, r->raw_len);
	put_le32(hdr + 12, r->stored_len);
	memcpy(hdr + 16, r->id.b, FP_LEN);
	put_le64(hdr + 48, rec_checksum(hdr, payload,
					r->shift ? pack_rec_table_len(r) : r->stored_len));
}

int pack_rec_decode(const uint8_t hdr[PACK_REC_HDR], struct pack_rec *r)
{
	if (get_le32(hdr) != PACK_REC_MAGIC)
		return -EBADMSG;
	if (hdr[4] != PACK_REC_VERSION && hdr[4] != PACK_REC_VERSION_BLOCKS)
		return -EPROTONOSUPPORT;
	r->type = hdr[5];
	r->codec = hdr[6];
	r->shift = hdr[7];
	r->raw_len = get_le32(hdr + 8);
	r->stored_len = get_le32(hdr + 12);
	memcpy(r->id.b, hdr + 16, FP_LEN);
	if (r->type != PACK_REC_CHUNK && r->type != PACK_REC_META)
		return -EBADMSG;
	if (r->codec > 1)
		return -EBADMSG;
	if (r->raw_len > PACK_REC_MAX || r->stored_len > PACK_REC_MAX)
		return -EBADMSG;
	if (hdr[4] == PACK_REC_VERSION) {
		if (r->shift != 0 || (r->codec == 0 && r->raw_len != r->stored_len))
			return -EBADMSG;
		return 0;
	}
	/* version 2: a raw chunk in blocks, the table before the raw bytes */
	if (r->type != PACK_REC_CHUNK || r->codec != 0 || r->shift < PACK_BLOCK_SHIFT_MIN ||
	    r->shift > PACK_BLOCK_SHIFT_MAX || r->raw_len == 0 ||
	    (uint64_t)r->stored_len != (uint64_t)r->raw_len + pack_rec_table_len(r))
		return -EBADMSG;
	return 0;
}

bool pack_rec_check(const uint8_t hdr[PACK_REC_HDR], const void *payload, size_t len)
{
	struct pack_rec r;
	uint32_t tlen;

	if (hdr[4] != PACK_REC_VERSION_BLOCKS)
		return get_le64(hdr + 48) == rec_checksum(hdr, payload, len);
	if (pack_rec_decode(hdr, &r) < 0 || len != r.stored_len)
		return false;
	tlen = pack_rec_table_len(&r);
	return get_le64(hdr + 48) == rec_checksum(hdr, payload, tlen) &&
	       blocks_check(&r, payload, 0, (const uint8_t *)payload + tlen, r.raw_len);
}

/* Header: magic[8] | u32 version | u32 id | u32 config_len | config | u64 xxh3 */
int pack_header_encode(uint32_t id, const void *config, size_t config_len, struct dfs_buf *out)
{
	uint8_t magic[8] = { 0 };
	size_t start = out->len;

	if (config_len > PACK_CONFIG_MAX)
		return -EINVAL;
	memcpy(magic, PACK_MAGIC, sizeof(PACK_MAGIC));
	dfs_buf_append(out, magic, sizeof(magic));
	dfs_buf_put_u32(out, PACK_VERSION);
	dfs_buf_put_u32(out, id);
	dfs_buf_put_u32(out, (uint32_t)config_len);
	dfs_buf_append(out, config, config_len);
	if (out->err)
		return out->err;
	return dfs_buf_put_u64(out, fp_xxh3(out->data + start, out->len - start));
}

int pack_header_read(const struct pack_src *src, uint32_t *id, uint64_t *header_len, struct dfs_buf *config)
{
	uint8_t buf[20 + PACK_CONFIG_MAX + 8];
	uint32_t clen;
	ssize_t n;

	n = pack_src_pread(src, buf, sizeof(buf), 0);
	if (n < 0)
		return (int)n;
	if (n < 28 || memcmp(buf, PACK_MAGIC, sizeof(PACK_MAGIC)) != 0)
		return -EBADMSG;
	if (get_le32(buf + 8) != PACK_VERSION)
		return -EPROTONOSUPPORT;
	clen = get_le32(buf + 16);
	if (clen > PACK_CONFIG_MAX || (size_t)n < 20 + (size_t)clen + 8)
		return -EBADMSG;
	if (get_le64(buf + 20 + clen) != fp_xxh3(buf, 20 + clen))
		return -EBADMSG;
	*id = get_le32(buf + 12);
	*header_len = 20 + (uint64_t)clen + 8;
	if (config) {
		dfs_buf_clear(config);
		return dfs_buf_append(config, buf + 20, clen);
	}
	return 0;
}

static int bad_record(uint32_t pack_id, uint64_t off, int rc)
{
	dfs_err("pack %08" PRIx32 " @%" PRIu64 ": %s", pack_id, off,
		rc == -EPROTONOSUPPORT ? "record of an unknown version" : "bad record (checksum)");
	return rc;
}

int pack_read_record(const struct pack_src *src, uint32_t pack_id, uint64_t off, struct pack_rec *r,
		     struct dfs_buf *payload)
{
	uint8_t hdr[PACK_REC_HDR];
	ssize_t n;
	int rc;

	n = pack_src_pread(src, hdr, sizeof(hdr), off);
	if (n < 0) {
		if (src->fd >= 0)	/* a remote backend logs its failures once */
			dfs_err("pack %08" PRIx32 " @%" PRIu64 ": read failed: %s", pack_id,
				off, dfs_strerror((int)n));
		return (int)n;
	}
	if ((size_t)n < sizeof(hdr)) {
		rc = -EBADMSG;
		goto out_bad;
	}
	rc = pack_rec_decode(hdr, r);
	if (rc < 0)
		goto out_bad;
	dfs_buf_clear(payload);
	rc = dfs_buf_reserve(payload, r->stored_len);
	if (rc < 0)
		return rc;
	n = pack_src_pread(src, payload->data, r->stored_len, (off + PACK_REC_HDR));
	if (n < 0)
		return (int)n;
	if ((size_t)n != r->stored_len) {
		rc = -EBADMSG;
		goto out_bad;
	}
	payload->len = r->stored_len;
	if (!pack_rec_check(hdr, payload->data, payload->len)) {
		rc = -EBADMSG;
		goto out_bad;
	}
	return 0;
out_bad:
	return bad_record(pack_id, off, rc);
}

int pack_read_record_into(const struct pack_src *src, uint32_t pack_id, uint64_t off,
			  uint32_t stored_len, struct pack_rec *r, void *payload)
{
	uint8_t hdr[PACK_REC_HDR];
	ssize_t n;
	int rc;

	if (src->fd >= 0) {
		n = sio_pread2(src->fd, hdr, sizeof(hdr), payload, stored_len, (off_t)off);
	} else {
		n = pack_src_pread(src, hdr, sizeof(hdr), off);
		if (n == (ssize_t)sizeof(hdr)) {
			ssize_t m = pack_src_pread(src, payload, stored_len, off + sizeof(hdr));

			n = m < 0 ? m : n + m;
		}
	}
	if (n < 0) {
		if (src->fd >= 0)	/* a remote backend logs its failures once */
			dfs_err("pack %08" PRIx32 " @%" PRIu64 ": read failed: %s", pack_id,
				off, dfs_strerror((int)n));
		return (int)n;
	}
	rc = -EBADMSG;
	if ((size_t)n < sizeof(hdr))
		goto out_bad;
	rc = pack_rec_decode(hdr, r);
	if (rc < 0)
		goto out_bad;
	rc = -EBADMSG;
	if (r->stored_len != stored_len || (size_t)n != sizeof(hdr) + stored_len ||
	    !pack_rec_check(hdr, payload, stored_len))
		goto out_bad;
	return 0;
out_bad:
	return bad_record(pack_id, off, rc);
}

/* @len bytes at @off into @a then @b: one read from a descriptor, else two. */
static ssize_t src_pread2(const struct pack_src *src, void *a, size_t alen, void *b,
			  size_t blen, uint64_t off)
{
	ssize_t n, m;

	if (src->fd >= 0)
		return sio_pread2(src->fd, a, alen, b, blen, (off_t)off);
	n = pack_src_pread(src, a, alen, off);
	if (n != (ssize_t)alen || !blen)
		return n;
	m = pack_src_pread(src, b, blen, off + alen);
	return m < 0 ? m : n + m;
}

static void read_failed(const struct pack_src *src, uint32_t pack_id, uint64_t off, ssize_t n)
{
	if (src->fd >= 0)	/* a remote backend logs its failures once */
		dfs_err("pack %08" PRIx32 " @%" PRIu64 ": read failed: %s", pack_id, off,
			dfs_strerror((int)n));
}

/* Decodes a version 2 header and checks it against the index's lengths and its table. */
static int head_check(const uint8_t *head, uint32_t stored_len, uint32_t raw_len,
		      struct pack_rec *r)
{
	int rc = pack_rec_decode(head, r);

	if (rc < 0)
		return rc;
	if (!r->shift || r->stored_len != stored_len || r->raw_len != raw_len ||
	    get_le64(head + 48) != rec_checksum(head, head + PACK_REC_HDR, pack_rec_table_len(r)))
		return -EBADMSG;
	return 0;
}

int pack_read_chunk_into(const struct pack_src *src, uint32_t pack_id, uint64_t off,
			 uint32_t stored_len, uint32_t raw_len, struct pack_rec *r, void *dst)
{
	size_t hlen = PACK_REC_HDR + (size_t)(stored_len - raw_len);
	uint8_t small[PACK_REC_HDR + 512], *head = small;
	ssize_t n;
	int rc;

	if (stored_len == raw_len)
		return pack_read_record_into(src, pack_id, off, stored_len, r, dst);
	if (stored_len < raw_len)
		return bad_record(pack_id, off, -EBADMSG);
	if (hlen > sizeof(small) && !(head = malloc(hlen)))
		return -ENOMEM;
	n = src_pread2(src, head, hlen, dst, raw_len, off);
	if (n < 0) {
		read_failed(src, pack_id, off, n);
		rc = (int)n;
		goto out;
	}
	rc = -EBADMSG;
	if ((size_t)n != hlen + raw_len)
		goto out_bad;
	rc = head_check(head, stored_len, raw_len, r);
	if (rc < 0)
		goto out_bad;
	rc = -EBADMSG;
	if (!blocks_check(r, head + PACK_REC_HDR, 0, dst, raw_len))
		goto out_bad;
	rc = 0;
	goto out;
out_bad:
	rc = bad_record(pack_id, off, rc);
out:
	if (head != small)
		free(head);
	return rc;
}

int pack_read_part(const struct pack_src *src, uint32_t pack_id, uint64_t off,
		   uint32_t stored_len, uint32_t raw_len, uint64_t from, size_t len,
		   size_t one_read, struct pack_rec *r, void *dst)
{
	size_t tlen = stored_len - raw_len, hlen = PACK_REC_HDR + tlen, dlen, got;
	unsigned shift = PACK_BLOCK_SHIFT, tries = 0;
	uint64_t d0, d1;
	uint32_t b0;
	uint8_t *buf, *data;
	ssize_t n;
	int rc;

	if (stored_len <= raw_len)
		return bad_record(pack_id, off, -EBADMSG);
	if (len == 0 || from > raw_len || len > raw_len - from)
		return -EINVAL;
	/* the blocks are located with the writer's shift; a record (valid, not ours) with
	 * another one is read again with the shift its checked header gives */
again:
	r->shift = (uint8_t)shift;
	r->raw_len = raw_len;
	b0 = (uint32_t)(from >> r->shift);
	d0 = (uint64_t)b0 << r->shift;
	d1 = ((from + len - 1) >> r->shift) + 1;
	d1 = d1 << r->shift < raw_len ? d1 << r->shift : raw_len;
	dlen = (size_t)(d1 - d0);
	/* the header and table, then the blocks; together when they are near */
	got = d0 <= one_read ? hlen + (size_t)d1 : hlen;
	buf = malloc(d0 <= one_read ? got : hlen + dlen);
	if (!buf)
		return -ENOMEM;
	/* two reads: the blocks' is started now, so that both are in flight together */
	if (got == hlen && src->fd >= 0)
		sio_willneed(src->fd, (off_t)(off + hlen + d0), dlen);
	n = pack_src_pread(src, buf, got, off);
	if (n >= 0 && (size_t)n == got && got == hlen) {
		n = pack_src_pread(src, buf + hlen, dlen, off + hlen + d0);
		n = n < 0 ? n : (ssize_t)(hlen + (size_t)n);
		got = hlen + dlen;
		data = buf + hlen;
	} else {
		data = buf + hlen + d0;
	}
	if (n < 0) {
		read_failed(src, pack_id, off, n);
		rc = (int)n;
		goto out;
	}
	rc = -EBADMSG;
	if ((size_t)n != got)
		goto out_bad;
	rc = head_check(buf, stored_len, raw_len, r);
	if (rc < 0)
		goto out_bad;
	if (r->shift != shift && tries++ == 0) {
		shift = r->shift;
		free(buf);
		goto again;
	}
	rc = -EBADMSG;
	if (r->shift != shift || !blocks_check(r, buf + PACK_REC_HDR, b0, data, dlen))
		goto out_bad;
	memcpy(dst, data + (from - d0), len);
	rc = 0;
	goto out;
out_bad:
	rc = bad_record(pack_id, off, rc);
out:
	free(buf);
	return rc;
}

int pack_scan(const struct pack_src *src, uint32_t pack_id, uint64_t off,
	      int (*fn)(void *arg, uint64_t off, const struct pack_rec *r, const uint8_t *payload),
	      void *arg, uint64_t *end, bool *torn)
{
	struct dfs_buf payload;
	uint8_t hdr[PACK_REC_HDR];
	struct pack_rec r;
	int rc = 0;

	dfs_buf_init(&payload, PACK_REC_MAX);
	*torn = false;
	for (;;) {
		ssize_t n = pack_src_pread(src, hdr, sizeof(hdr), off);

		if (n < 0) {
			rc = (int)n;
			break;
		}
		if (n == 0)
			break;
		if ((size_t)n < sizeof(hdr) || pack_rec_decode(hdr, &r) < 0) {
			*torn = true;
			break;
		}
		dfs_buf_clear(&payload);
		rc = dfs_buf_reserve(&payload, r.stored_len);
		if (rc < 0)
			break;
		n = pack_src_pread(src, payload.data, r.stored_len, (off + PACK_REC_HDR));
		if (n < 0) {
			rc = (int)n;
			break;
		}
		if ((size_t)n != r.stored_len || !pack_rec_check(hdr, payload.data, r.stored_len)) {
			*torn = true;
			break;
		}
		rc = fn(arg, off, &r, payload.data);
		if (rc)
			break;
		off += PACK_REC_HDR + r.stored_len;
	}
	(void)pack_id;
	*end = off;
	dfs_buf_release(&payload);
	return rc;
}
