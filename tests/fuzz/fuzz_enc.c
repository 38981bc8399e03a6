/*
 * fuzz_enc.c - every index value decoder on arbitrary bytes: it must accept or reject,
 * never crash or read out of bounds; what it accepts must re-encode to a value that
 * decodes to the same thing.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/enc.h"

static int count(void *arg, uint8_t cf, uint8_t op, const uint8_t *k, size_t kl,
		 const uint8_t *v, size_t vl)
{
	(void)cf; (void)op; (void)k; (void)kl; (void)v; (void)vl;
	(*(size_t *)arg)++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct store_inode in, again;
	struct store_chunk_loc l;
	struct store_source s;
	struct enc_content_head h;
	struct enc_extent *ext;
	struct dfs_buf b;
	uint64_t u, seq;
	uint8_t t;
	size_t n = 0;
	bool sealed;

	if (dec_inode(1, data, size, &in) == 0) {
		dfs_buf_init(&b, 1u << 26);
		if (enc_inode(&in, &b) == 0) {
			if (dec_inode(1, b.data, b.len, &again) != 0)
				abort();	/* "Corruption!": accepted but not round-tripped */
			if (again.size != in.size || again.mode != in.mode ||
			    again.nxattrs != in.nxattrs)
				abort();
			store_inode_release(&again);
		}
		dfs_buf_release(&b);
		store_inode_release(&in);
	}
	dec_dirent_val(data, size, &u, &t);
	dec_chunk_loc(data, size, &l);
	if (dec_source(data, size, &s) == 0)
		store_source_release(&s);
	dec_u64_val(data, size, &u);
	dec_pack_val(data, size, &u, &sealed);
	if (dec_content_head(data, size, &h) == 0) {
		if (!h.is_inline && !h.nblocks &&
		    dec_extents(h.extents, h.extents_len, false, &ext, &n) == 0)
			free(ext);
		enc_content_head_release(&h);
	}
	if (dec_extents(data, size, true, &ext, &n) == 0)
		free(ext);
	n = 0;
	dec_oplog(data, size, &seq, count, &n);
	return 0;
}
