/*
 * fuzz_pack.c - the pack record header decoder and checksum on arbitrary bytes, and a
 * record built from the input: decoding must never crash, a record we encode must
 * decode and check, and any single flipped bit must fail the check.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/pack.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t hdr[PACK_REC_HDR];
	struct pack_rec r, d;

	if (size >= PACK_REC_HDR && pack_rec_decode(data, &r) == 0)
		(void)pack_rec_check(data, data + PACK_REC_HDR,
				     size - PACK_REC_HDR < r.stored_len ? size - PACK_REC_HDR
									 : r.stored_len);
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
	}
	return 0;
}
