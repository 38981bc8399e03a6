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

void pack_rec_encode(const struct pack_rec *r, const void *payload, uint8_t hdr[PACK_REC_HDR])
{
	put_le32(hdr, PACK_REC_MAGIC);
	hdr[4] = PACK_REC_VERSION;
	hdr[5] = r->type;
	hdr[6] = r->codec;
	hdr[7] = 0;
	put_le32(hdr + 8, r->raw_len);
	put_le32(hdr + 12, r->stored_len);
	memcpy(hdr + 16, r->id.b, FP_LEN);
	put_le64(hdr + 48, rec_checksum(hdr, payload, r->stored_len));
}

int pack_rec_decode(const uint8_t hdr[PACK_REC_HDR], struct pack_rec *r)
{
	if (get_le32(hdr) != PACK_REC_MAGIC)
		return -EBADMSG;
	if (hdr[4] != PACK_REC_VERSION)
		return -EPROTONOSUPPORT;
	if (hdr[7] != 0)
		return -EBADMSG;
	r->type = hdr[5];
	r->codec = hdr[6];
	r->raw_len = get_le32(hdr + 8);
	r->stored_len = get_le32(hdr + 12);
	memcpy(r->id.b, hdr + 16, FP_LEN);
	if (r->type != PACK_REC_CHUNK && r->type != PACK_REC_META)
		return -EBADMSG;
	if (r->codec > 1)
		return -EBADMSG;
	if (r->raw_len > PACK_REC_MAX || r->stored_len > PACK_REC_MAX)
		return -EBADMSG;
	if (r->codec == 0 && r->raw_len != r->stored_len)
		return -EBADMSG;
	return 0;
}

bool pack_rec_check(const uint8_t hdr[PACK_REC_HDR], const void *payload, size_t len)
{
	return get_le64(hdr + 48) == rec_checksum(hdr, payload, len);
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
