/*
 * fuzz_pack.c - the pack record header decoder and checksum on arbitrary bytes, and
 * records built from the input: decoding must never crash, a record we encode (version 1,
 * and version 2 with a checksum per block) must decode and check, any single flipped bit
 * must fail the check, and a part read of a version 2 record (pack_read_part) must give
 * the input's bytes, or fail when a block it reads is damaged.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/pack.h"

struct mem {
	const uint8_t *p;
	size_t len;
};

static ssize_t mem_pread(void *arg, uint32_t id, void *buf, size_t len, uint64_t off)
{
	const struct mem *m = arg;

	(void)id;
	if (off >= m->len)
		return 0;
	if (len > m->len - off)
		len = m->len - (size_t)off;
	memcpy(buf, m->p + off, len);
	return (ssize_t)len;
}

/* A version 2 record of @data in blocks of 4 KiB: header, table, bytes, in one buffer. */
static uint8_t *blocks_record(const uint8_t *data, size_t size, struct pack_rec *r, size_t *len)
{
	uint32_t tlen;
	uint8_t *rec;

	memset(r, 0, sizeof(*r));
	r->type = PACK_REC_CHUNK;
	r->shift = PACK_BLOCK_SHIFT_MIN;
	r->raw_len = (uint32_t)size;
	tlen = pack_rec_table_len(r);
	r->stored_len = (uint32_t)size + tlen;
	fp_sha256(data, size, &r->id);
	*len = PACK_REC_HDR + r->stored_len;
	rec = malloc(*len);
	if (!rec)
		abort();
	pack_blocks_table(data, (uint32_t)size, r->shift, rec + PACK_REC_HDR);
	memcpy(rec + PACK_REC_HDR + tlen, data, size);
	pack_rec_encode(r, rec + PACK_REC_HDR, rec);
	return rec;
}

static void fuzz_blocks(const uint8_t *data, size_t size)
{
	struct pack_rec r, d;
	struct mem m;
	struct pack_src src = { .fd = -1, .pread = mem_pread, .arg = &m };
	size_t len, from, n, bit, one;
	uint8_t *rec, *out;

	rec = blocks_record(data, size, &r, &len);
	if (pack_rec_decode(rec, &d) != 0 || d.shift != r.shift ||
	    !pack_rec_check(rec, rec + PACK_REC_HDR, r.stored_len))
		abort();
	m = (struct mem){ rec, len };
	out = malloc(size + 1);
	if (!out)
		abort();
	/* the part reads' two ways: header and blocks in one read, or two */
	one = data[size / 3] % 3 == 0 ? 0 : data[size / 3] % 3 == 1 ? PACK_ONE_READ : SIZE_MAX;
	from = ((size_t)data[0] << 8 | data[size - 1]) % size;
	n = 1 + ((size_t)data[size / 2] * 257u) % (size - from);
	if (pack_read_part(&src, 1, 0, r.stored_len, r.raw_len, from, n, one, &d, out) != 0 ||
	    memcmp(out, data + from, n) != 0)
		abort();
	if (pack_read_chunk_into(&src, 1, 0, r.stored_len, r.raw_len, &d, out) != 0 ||
	    memcmp(out, data, size) != 0)
		abort();
	/* a flipped bit anywhere after the magic: the whole check fails, and so does any
	 * read that uses the byte (the header, the table, or a block it reads) */
	bit = 32 + (size * 7919u) % ((len - 4) * 8);
	rec[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	if (pack_rec_check(rec, rec + PACK_REC_HDR, r.stored_len) ||
	    pack_read_chunk_into(&src, 1, 0, r.stored_len, r.raw_len, &d, out) == 0)
		abort();
	if (bit / 8 >= PACK_REC_HDR + pack_rec_table_len(&r)) {
		size_t at = bit / 8 - PACK_REC_HDR - pack_rec_table_len(&r);

		if (pack_read_part(&src, 1, 0, r.stored_len, r.raw_len, at, 1, one, &d, out) == 0)
			abort();	/* the damaged byte was served */
	} else if (pack_read_part(&src, 1, 0, r.stored_len, r.raw_len, from, n, one, &d, out) == 0) {
		abort();	/* a damaged header or table went unnoticed */
	}
	free(out);
	free(rec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t hdr[PACK_REC_HDR];
	struct pack_rec r, d;

	if (size >= PACK_REC_HDR && pack_rec_decode(data, &r) == 0) {
		struct mem m = { data, size };
		struct pack_src src = { .fd = -1, .pread = mem_pread, .arg = &m };
		uint8_t *out = malloc(r.raw_len ? r.raw_len : 1);

		(void)pack_rec_check(data, data + PACK_REC_HDR,
				     size - PACK_REC_HDR < r.stored_len ? size - PACK_REC_HDR
									 : r.stored_len);
		if (out && r.raw_len)	/* a part read of whatever the bytes claim */
			(void)pack_read_part(&src, 1, 0, r.stored_len, r.raw_len, r.raw_len / 2,
					     r.raw_len - r.raw_len / 2,
					     size % 2 ? PACK_ONE_READ : SIZE_MAX, &d, out);
		free(out);
	}
	memset(&r, 0, sizeof(r));
	r.type = PACK_REC_CHUNK;
	r.codec = 0;
	r.raw_len = r.stored_len = (uint32_t)size;
	fp_sha256(data, size, &r.id);
	pack_rec_encode(&r, data, hdr);
	if (pack_rec_decode(hdr, &d) != 0 || !pack_rec_check(hdr, data, size))
		abort();
	if (size) {
		uint8_t *copy = malloc(size);
		size_t bit = (size * 7919u) % (size * 8);

		memcpy(copy, data, size);
		copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		if (pack_rec_check(hdr, copy, size))
			abort();	/* a flipped payload bit went unnoticed */
		free(copy);
		fuzz_blocks(data, size);
	}
	return 0;
}
